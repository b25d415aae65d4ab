package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in, repo, rev, scheme string
		catalog               bool
	}{
		{"20b", "openai/gpt-oss-20b", "", SchemeHF, true},
		{"120b", "openai/gpt-oss-120b", "", SchemeHF, true},
		{"gpt-oss-20b", "openai/gpt-oss-20b", "", SchemeHF, true},
		{"openai/gpt-oss-20b", "openai/gpt-oss-20b", "", SchemeHF, true},
		{"OpenAI/GPT-OSS-120B", "openai/gpt-oss-120b", "", SchemeHF, true},
		{"20b@main", "openai/gpt-oss-20b", "main", SchemeHF, true},
		{"hf://openai/gpt-oss-20b@6cee5e81ee83917806bbde320786a8fb61efebee", "openai/gpt-oss-20b", "6cee5e81ee83917806bbde320786a8fb61efebee", SchemeHF, true},
		{"hf://someone/tiny-model", "someone/tiny-model", "", SchemeHF, false},
		{"someone/tiny-model@refs/pr/1", "someone/tiny-model", "refs/pr/1", SchemeHF, false},
		{"./models/x", "./models/x", "", SchemeLocal, false},
		{"/abs/dir", "/abs/dir", "", SchemeLocal, false},
		{"file:///abs/dir", "/abs/dir", "", SchemeLocal, false},
	}
	for _, c := range cases {
		r, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if r.Repo != c.repo || r.Revision != c.rev || r.Scheme != c.scheme || (r.Model != nil) != c.catalog {
			t.Errorf("Parse(%q) = %+v", c.in, r)
		}
	}
	for _, bad := range []string{"", "nonsense", "a/b/c", "org/../x", "20b@", "s3://bucket/x", "org/na me", "org/x@a..b"} {
		if _, err := Parse(bad); !errors.Is(err, ErrInvalidRef) {
			t.Errorf("Parse(%q) = %v, want ErrInvalidRef", bad, err)
		}
	}
}

func TestCleanPathRejectsHostilePaths(t *testing.T) {
	for _, p := range []string{"../etc/passwd", "a/../../b", "/etc/passwd", "a//b", "./a", "a/./b", "a\\..\\b",
		"C:/x", "a\x00b", "a\nb", "", "a/"} {
		if _, err := CleanPath(p); !errors.Is(err, ErrInvalidManifest) {
			t.Errorf("CleanPath(%q) accepted", p)
		}
	}
	for _, p := range []string{"config.json", "original/model.safetensors", "a-b_c.d/e"} {
		if _, err := CleanPath(p); err != nil {
			t.Errorf("CleanPath(%q): %v", p, err)
		}
	}
}

func TestValidate(t *testing.T) {
	good := Manifest{Name: "x/y", Files: []File{{Path: "a", Size: 1}, {Path: "d/b", Size: 2, SHA256: strings.Repeat("a", 64)}}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []Manifest{
		{Name: "x/y"},
		{Name: "x/y", Files: []File{{Path: "../a", Size: 1}}},
		{Name: "x/y", Files: []File{{Path: "a", Size: -1}}},
		{Name: "x/y", Files: []File{{Path: "a", Size: 1 << 50}}},
		{Name: "x/y", Files: []File{{Path: "a", Size: 1}, {Path: "a", Size: 1}}},
		{Name: "x/y", Files: []File{{Path: "a", Size: 1}, {Path: "a/b", Size: 1}}},
		{Name: "x/y", Files: []File{{Path: "a", Size: 1, SHA256: "XYZ"}}},
	}
	for i, m := range bad {
		if err := m.Validate(); !errors.Is(err, ErrInvalidManifest) {
			t.Errorf("case %d: Validate = %v", i, err)
		}
	}
}

func TestMatch(t *testing.T) {
	cases := []struct {
		pat, name string
		want      bool
	}{
		{"*.json", "config.json", true},
		{"*.json", "original/config.json", true}, // fnmatch: * crosses /
		{"model-*.safetensors", "model-00000-of-00002.safetensors", true},
		{"model-*.safetensors", "original/model.safetensors", false},
		{"original/", "original/config.json", true},
		{"original/*", "metal/model.bin", false},
		{"tokenizer?json", "tokenizer.json", true},
		{"[ab].txt", "a.txt", true},
		{"[!ab].txt", "a.txt", false},
		{"a.b", "aXb", false},
	}
	for _, c := range cases {
		if got := Match(c.pat, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v", c.pat, c.name, got)
		}
	}
}

// memSource is a Source over in-memory files, for selection tests.
type memSource map[string]string

func (m memSource) Resolve(ctx context.Context, ref Ref) (*Manifest, error) {
	out := &Manifest{Name: ref.Name(), Revision: strings.Repeat("1", 40)}
	for p, c := range m {
		out.Files = append(out.Files, File{Path: p, Size: int64(len(c))})
	}
	out.SortFiles()
	return out, nil
}

func (m memSource) Open(ctx context.Context, f File, off, n int64) (io.ReadCloser, error) {
	c, ok := m[f.Path]
	if !ok {
		return nil, ErrNotFound
	}
	if n < 0 {
		n = int64(len(c)) - off
	}
	return io.NopCloser(strings.NewReader(c[off : off+n])), nil
}

func gptossRepo(shards ...string) memSource {
	wm := []string{}
	for i, s := range shards {
		wm = append(wm, fmt.Sprintf("%q: %q", fmt.Sprintf("t%d", i), s))
	}
	src := memSource{
		".gitattributes": "x", "LICENSE": "apache", "README.md": "# hi", "USAGE_POLICY": "p",
		"config.json": "{}", "generation_config.json": "{}", "tokenizer.json": "{}", "tokenizer_config.json": "{}",
		"special_tokens_map.json": "{}", "chat_template.jinja": "{{x}}",
		"model.safetensors.index.json":     `{"metadata":{},"weight_map":{` + strings.Join(wm, ",") + `}}`,
		"model-00000-of-00001.safetensors": "w0", "model-00001-of-00001.safetensors": "w1",
		"model-00009-of-00009.safetensors": "stale",
		"original/config.json":             "{}", "original/model.safetensors": "o", "original/dtypes.json": "{}",
		"metal/model.bin": "m",
	}
	return src
}

func paths(m *Manifest) string {
	var p []string
	for _, f := range m.Files {
		p = append(p, f.Path)
	}
	return strings.Join(p, " ")
}

func TestSelectFormats(t *testing.T) {
	ctx := context.Background()
	src := gptossRepo("model-00000-of-00001.safetensors", "model-00001-of-00001.safetensors")
	ref, _ := Parse("20b")
	all, _ := src.Resolve(ctx, ref)
	m, err := SelectFiles(ctx, src, ref, all)
	if err != nil {
		t.Fatal(err)
	}
	want := "LICENSE README.md USAGE_POLICY chat_template.jinja config.json generation_config.json " +
		"model-00000-of-00001.safetensors model-00001-of-00001.safetensors model.safetensors.index.json " +
		"special_tokens_map.json tokenizer.json tokenizer_config.json"
	if got := paths(m); got != want || m.Format != "hf" {
		t.Errorf("hf selection:\n got %s\nwant %s", got, want)
	}
	ref.Format = "original"
	m, err = SelectFiles(ctx, src, ref, all)
	if err != nil {
		t.Fatal(err)
	}
	if got := paths(m); !strings.Contains(got, "original/model.safetensors") || strings.Contains(got, "model-0000") || strings.Contains(got, "metal") {
		t.Errorf("original selection: %s", got)
	}
	ref.Format = "metal"
	if m, err = SelectFiles(ctx, src, ref, all); err != nil || !strings.Contains(paths(m), "metal/model.bin") {
		t.Errorf("metal selection: %v %v", err, m)
	}
	ref.Format = "nope"
	if _, err := SelectFiles(ctx, src, ref, all); !errors.Is(err, ErrUnsupported) {
		t.Errorf("unknown format: %v", err)
	}
	// include/exclude on top of the format
	ref.Format, ref.Include, ref.Exclude = "", nil, []string{"*.md", "LICENSE"}
	m, _ = SelectFiles(ctx, src, ref, all)
	if strings.Contains(paths(m), "README") || strings.Contains(paths(m), "LICENSE") {
		t.Errorf("exclude ignored: %s", paths(m))
	}
	// Include alone on a catalog model means custom selection.
	ref.Exclude, ref.Include = nil, []string{"*.json"}
	m, _ = SelectFiles(ctx, src, ref, all)
	if m.Format != "custom" || strings.Contains(paths(m), "safetensors\x20") || !strings.Contains(paths(m), "original/config.json") {
		t.Errorf("include: %s %s", m.Format, paths(m))
	}
}

func TestSelectIndexNamesMissingShard(t *testing.T) {
	ctx := context.Background()
	src := gptossRepo("model-00000-of-00001.safetensors", "model-00005-of-00009.safetensors")
	ref, _ := Parse("20b")
	all, _ := src.Resolve(ctx, ref)
	if _, err := SelectFiles(ctx, src, ref, all); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "model-00005") {
		t.Errorf("missing shard: %v", err)
	}
	bad := gptossRepo("../../etc/passwd")
	all, _ = bad.Resolve(ctx, ref)
	if _, err := SelectFiles(ctx, bad, ref, all); !errors.Is(err, ErrInvalidManifest) {
		t.Errorf("hostile index: %v", err)
	}
}

func TestOCIRoundTrip(t *testing.T) {
	m := &Manifest{Name: "openai/gpt-oss-20b", Revision: strings.Repeat("a", 40), Format: "hf", Source: "hf://x",
		Files: []File{
			{Path: "model-00000-of-00001.safetensors", Size: 10, SHA256: strings.Repeat("b", 64), Role: RoleWeights},
			{Path: "config.json", Size: 2, SHA256: strings.Repeat("c", 64), GitSHA1: strings.Repeat("d", 40)},
		}}
	man, cfg, err := m.ToOCI(testTime)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(man), ArtifactTypeModel) || !strings.Contains(string(man), MediaTypeWeightRaw) ||
		!strings.Contains(string(cfg), `"quantization":"mxfp4"`) {
		t.Errorf("manifest: %s\nconfig: %s", man, cfg)
	}
	back, err := FromOCI(man)
	if err != nil {
		t.Fatal(err)
	}
	if back.Name != m.Name || back.Revision != m.Revision || back.Format != "hf" || len(back.Files) != 2 ||
		back.Files[0].Path != "config.json" || back.Files[0].GitSHA1 != m.Files[1].GitSHA1 {
		t.Errorf("round trip: %+v", back)
	}
	hostile := strings.Replace(string(man), "config.json", "../../config.json", 1)
	if _, err := FromOCI([]byte(hostile)); !errors.Is(err, ErrInvalidManifest) {
		t.Errorf("hostile OCI manifest accepted: %v", err)
	}
}

var testTime = mustTime("2026-01-02T03:04:05Z")
