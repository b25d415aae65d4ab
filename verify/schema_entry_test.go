package verify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/cache"
	fx "github.com/gptoss/gptoss/internal/fixture"
	"github.com/gptoss/gptoss/registry"
)

// commitDir publishes files (paths relative to src, with contents replaced
// by over where given) into s and commits them as one manifest of format.
func commitDir(t *testing.T, s *cache.Store, src, format string, paths []string, over map[string][]byte) cache.Entry {
	t.Helper()
	m := &registry.Manifest{Name: "openai/gpt-oss-20b", Revision: strings.Repeat("ab", 20), Format: format, Source: "test"}
	for _, p := range paths {
		b, ok := over[p]
		if !ok {
			var err error
			if b, err = os.ReadFile(filepath.Join(src, filepath.FromSlash(p))); err != nil {
				t.Fatal(err)
			}
		}
		sum := sha256Hex(b)
		if !s.HasBlob(sum, int64(len(b))) {
			tmp, err := s.PartialPath("t-"+sum[:16], ".part")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(tmp, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := s.Publish(tmp, sum); err != nil {
				t.Fatal(err)
			}
		}
		m.Files = append(m.Files, registry.File{Path: p, Size: int64(len(b)), SHA256: sum, Role: registry.RoleOf(p)})
	}
	m.SortFiles()
	if _, err := s.Commit(m, "main"); err != nil {
		t.Fatal(err)
	}
	e, err := s.Find(m.Name, format, "main")
	if err != nil {
		t.Fatal(err)
	}
	return *e
}

func hfPaths(t *testing.T, src string) []string {
	paths := []string{"config.json", "model.safetensors.index.json"}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".safetensors") {
			paths = append(paths, e.Name())
		}
	}
	return paths
}

func problemLines(r *StructureReport) string {
	var lines []string
	for _, p := range r.Problems {
		lines = append(lines, p.Check+" "+p.Subject+": "+p.Detail)
	}
	return strings.Join(lines, "\n")
}

func TestStructureEntry(t *testing.T) {
	src := fx.Cached(t, fx.Tiny())
	s, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	hf := commitDir(t, s, src, "hf", hfPaths(t, src), nil)
	r := Structure(s, hf)
	if !r.OK || r.Layout != LayoutHF || len(r.Headers) != 2 || r.Schema == nil || !r.Schema.OK || r.Schema.Found != 4*19+3 {
		t.Fatalf("hf: %+v\n%s", r, problemLines(r))
	}
	orig := commitDir(t, s, src, "original", []string{"original/config.json", "original/model.safetensors", "original/dtypes.json"}, nil)
	r = Structure(s, orig)
	if !r.OK || r.Layout != LayoutOriginal || len(r.Headers) != 1 || r.Schema == nil || r.Schema.Found != 4*15+3 || r.Schema.Dir != "original" {
		t.Fatalf("original: %+v\n%s", r, problemLines(r))
	}

	// Another format: headers only.
	s2, _ := cache.Open(t.TempDir())
	custom := commitDir(t, s2, src, "custom", []string{"config.json", "model-00000-of-00001.safetensors", "extra.safetensors"},
		map[string][]byte{"extra.safetensors": []byte("\x04\x00\x00\x00\x00\x00\x00\x00{}  x")})
	r = Structure(s2, custom)
	if r.OK || r.Layout != "" || r.Schema != nil || len(r.Problems) != 1 ||
		problemLines(r) != "header extra.safetensors: invalid header: 1 bytes after the last tensor belong to no tensor" {
		t.Errorf("custom: %+v\n%s", r, problemLines(r))
	}

	// A checkpoint whose index disagrees with its shards: a schema problem.
	s3, _ := cache.Open(t.TempDir())
	idx, _ := os.ReadFile(filepath.Join(src, "model.safetensors.index.json"))
	idx = []byte(strings.Replace(string(idx), `"lm_head.weight"`, `"lm_head.weights"`, 1))
	bad := commitDir(t, s3, src, "hf", hfPaths(t, src), map[string][]byte{"model.safetensors.index.json": idx})
	r = Structure(s3, bad)
	if r.OK || r.Schema != nil || len(r.Problems) != 1 || !strings.Contains(problemLines(r), `schema hf checkpoint: invalid safetensors: tensor "lm_head.weight" is in model-00001-of-00001.safetensors but the index does not list it`) {
		t.Errorf("bad index: %+v\n%s", r, problemLines(r))
	}

	// A missing snapshot file.
	os.Remove(filepath.Join(s.SnapshotDir(hf.Manifest), "model-00000-of-00001.safetensors"))
	r = Structure(s, hf)
	if r.OK || !strings.Contains(problemLines(r), "header model-00000-of-00001.safetensors: missing") ||
		!strings.Contains(problemLines(r), "schema hf checkpoint: not checked: invalid safetensors headers") {
		t.Errorf("missing shard: %+v\n%s", r, problemLines(r))
	}
}
