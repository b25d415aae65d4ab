package ocilayout_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/fetch"
	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/ocilayout"
	"github.com/gptoss/gptoss/registry/sources"
)

func randBytes(seed string, n int) []byte {
	var s [32]byte
	copy(s[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

func sha(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// cached puts a small model into a fresh cache and commits it as "main".
func cached(t *testing.T, name string) (*cache.Store, *registry.Manifest, map[string][]byte) {
	t.Helper()
	store, err := cache.Open(filepath.Join(t.TempDir(), "home"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"config.json":          []byte(`{"model_type":"gpt_oss"}`),
		"model-0.safetensors":  randBytes(name+"0", 300<<10),
		"sub/weights.bin":      randBytes(name+"1", 70<<10+3),
		"empty.txt":            {},
		"tokenizer/vocab.json": []byte(`{"a":1}`),
	}
	m := &registry.Manifest{Name: name, Revision: strings.Repeat("c0", 20), Format: "custom", Source: "test"}
	for p, b := range files {
		if _, err := store.PutBlob(b); err != nil {
			t.Fatal(err)
		}
		m.Files = append(m.Files, registry.File{Path: p, Size: int64(len(b)), SHA256: sha(b), Role: registry.RoleOf(p)})
	}
	m.SortFiles()
	if _, err := store.Commit(m, "main"); err != nil {
		t.Fatal(err)
	}
	return store, m, files
}

func engine() *fetch.Engine {
	return fetch.New(fetch.Options{Connections: 4, Backoff: time.Millisecond, MaxAttempts: 2})
}

func refFor(name string) registry.Ref {
	return registry.Ref{Scheme: registry.SchemeHF, Repo: name, Format: "custom", Revision: "main"}
}

func export(t *testing.T, store *cache.Store, m *registry.Manifest, to string) *fetch.MirrorResult {
	t.Helper()
	tg, err := ocilayout.NewTarget(to)
	if err != nil {
		t.Fatal(err)
	}
	tg.Requested = "main"
	res, err := engine().Mirror(context.Background(), store, m, tg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha(b)
}

func TestRoundTripDirAndTar(t *testing.T) {
	store, m, files := cached(t, "org/model")
	for _, kind := range []string{"dir", "tar"} {
		t.Run(kind, func(t *testing.T) {
			to := filepath.Join(t.TempDir(), "out")
			if kind == "tar" {
				to += ".tar"
			}
			res := export(t, store, m, to)
			if res.Uploaded != len(m.Files) || res.Skipped != 0 {
				t.Fatalf("first export: %+v", res)
			}
			if !ocilayout.Is(to) {
				t.Fatalf("%s not recognised as a layout", to)
			}
			var before string
			if kind == "tar" {
				before = fileSHA(t, to)
				if _, err := os.Stat(to + ".staging"); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("staging dir left behind: %v", err)
				}
			}
			// Again: everything is there already.
			if res := export(t, store, m, to); res.Uploaded != 0 || res.Skipped != len(m.Files) {
				t.Fatalf("re-export: %+v", res)
			}
			if kind == "tar" {
				if after := fileSHA(t, to); after != before {
					t.Errorf("re-export changed the tar")
				}
				// Reproducible: a fresh export gives the same bytes.
				other := filepath.Join(t.TempDir(), "again.tar")
				export(t, store, m, other)
				if fileSHA(t, other) != before {
					t.Errorf("two exports of the same model differ")
				}
				checkTarShape(t, to)
			}

			src, err := ocilayout.NewSource(to)
			if err != nil {
				t.Fatal(err)
			}
			ms, err := src.Models()
			if err != nil || len(ms) != 1 {
				t.Fatalf("models: %v %v", ms, err)
			}
			if ms[0].Name != m.Name || ms[0].Requested != "main" || ms[0].Revision != m.Revision || ms[0].RefName != "org/model:custom" {
				t.Errorf("model %+v", ms[0])
			}
			dst, err := cache.Open(filepath.Join(t.TempDir(), "home2"))
			if err != nil {
				t.Fatal(err)
			}
			pr, err := engine().Pull(context.Background(), src, refFor(m.Name), dst, fetch.PullOptions{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if pr.Manifest.Revision != m.Revision {
				t.Errorf("revision %s, want %s", pr.Manifest.Revision, m.Revision)
			}
			for p, b := range files {
				got, err := os.ReadFile(filepath.Join(dst.SnapshotDir(pr.Manifest), filepath.FromSlash(p)))
				if err != nil || !bytes.Equal(got, b) {
					t.Errorf("%s: imported copy differs (%v)", p, err)
				}
			}
			if _, err := dst.Find(m.Name, "custom", "main"); err != nil {
				t.Errorf("imported model not found as main: %v", err)
			}
		})
	}
}

// checkTarShape asserts sorted names, fixed times and owners, and only
// directories and regular files.
func checkTarShape(t *testing.T, p string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(time.Unix(0, 0)) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: mtime %v uid %d gid %d %q %q", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeDir {
			t.Errorf("%s: type %c", h.Name, h.Typeflag)
		}
	}
	if !sort.StringsAreSorted(names) {
		t.Errorf("entries not sorted: %v", names)
	}
	if names[len(names)-1] != "oci-layout" || names[len(names)-2] != "index.json" {
		t.Errorf("entries: %v", names)
	}
}

func TestExportAddsModelsAndPicks(t *testing.T) {
	storeA, a, _ := cached(t, "org/a")
	storeB, b, _ := cached(t, "org/b")
	for _, to := range []string{filepath.Join(t.TempDir(), "two"), filepath.Join(t.TempDir(), "two.tar")} {
		export(t, storeA, a, to)
		export(t, storeB, b, to)
		src, err := ocilayout.NewSource(to)
		if err != nil {
			t.Fatal(err)
		}
		ms, err := src.Models()
		if err != nil || len(ms) != 2 {
			t.Fatalf("%s: %d models, %v", to, len(ms), err)
		}
		got, err := src.Resolve(context.Background(), refFor("org/b"))
		if err != nil || got.Name != "org/b" {
			t.Fatalf("resolve org/b: %v %v", got, err)
		}
		_, err = src.Resolve(context.Background(), refFor("org/c"))
		if !errors.Is(err, registry.ErrNotFound) || !strings.Contains(err.Error(), "org/a (custom)") {
			t.Errorf("missing model: %v", err)
		}
		// A bare path reference (gptoss pull ./two.tar) names no model:
		// it takes the newest, then the last in index.json.
		if _, err := src.Resolve(context.Background(), registry.Ref{Scheme: registry.SchemeLocal, Repo: to}); err != nil {
			t.Errorf("bare path: %v", err)
		}
	}
}

type entry struct {
	hdr  tar.Header
	data []byte
}

func writeTar(t *testing.T, p string, ents []entry) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		if h.Typeflag == tar.TypeReg || h.Typeflag == 0 {
			h.Size = int64(len(e.data))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if len(e.data) > 0 {
			tw.Write(e.data)
		}
	}
	tw.Close()
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func reg(name, data string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg}, data: []byte(data)}
}

func TestHostileTarsAreRefused(t *testing.T) {
	base := []entry{reg("oci-layout", `{"imageLayoutVersion":"1.0.0"}`), reg("index.json", `{"schemaVersion":2,"manifests":[]}`)}
	cases := []struct {
		name string
		bad  entry
		want string
	}{
		{"parent", reg("../evil", "x"), "unsafe name"},
		{"nested parent", reg("blobs/../../evil", "x"), "unsafe name"},
		{"absolute", reg("/etc/evil", "x"), "unsafe name"},
		{"symlink", entry{hdr: tar.Header{Name: "blobs/sha256/" + strings.Repeat("a", 64), Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}}, "symbolic link"},
		{"hard link", entry{hdr: tar.Header{Name: "blobs/sha256/" + strings.Repeat("b", 64), Typeflag: tar.TypeLink, Linkname: "/etc/shadow"}}, "hard link"},
		{"char device", entry{hdr: tar.Header{Name: "dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}, "device"},
		{"block device", entry{hdr: tar.Header{Name: "disk", Typeflag: tar.TypeBlock, Devmajor: 8}}, "device"},
		{"fifo", entry{hdr: tar.Header{Name: "fifo", Typeflag: tar.TypeFifo}}, "FIFO"},
		{"duplicate", reg("index.json", `{"schemaVersion":2,"manifests":[]}`), "appears twice"},
		{"duplicate via ./", reg("./oci-layout", `{}`), "appears twice"},
		{"backslash", reg(`blobs\..\evil`, "x"), "unsafe name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "evil.tar")
			writeTar(t, p, append(append([]entry{}, base...), c.bad))
			_, err := ocilayout.NewSource(p)
			if err == nil || !errors.Is(err, registry.ErrInvalidManifest) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an invalid-manifest error saying %q", err, c.want)
			}
			if !strings.Contains(err.Error(), "refusing") {
				t.Errorf("error does not say the archive is refused: %v", err)
			}
			// Nor can it be exported into.
			if _, err := ocilayout.NewTarget(p); err == nil {
				t.Errorf("NewTarget accepted a hostile tar")
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Errorf("something was written beside the tar: %v", ents)
			}
		})
	}
}

func TestLyingDigestIsNeverPublished(t *testing.T) {
	store, m, _ := cached(t, "org/model")
	victim, _ := m.Lookup("model-0.safetensors")
	for _, kind := range []string{"dir", "tar"} {
		t.Run(kind, func(t *testing.T) {
			to := filepath.Join(t.TempDir(), "out")
			if kind == "tar" {
				to += ".tar"
			}
			export(t, store, m, to)
			if kind == "dir" {
				p := filepath.Join(to, "blobs", "sha256", victim.SHA256)
				if err := os.WriteFile(p, randBytes("other", int(victim.Size)), 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				flipInTar(t, to, "blobs/sha256/"+victim.SHA256)
			}
			src, err := ocilayout.NewSource(to)
			if err != nil {
				t.Fatal(err)
			}
			dst, err := cache.Open(filepath.Join(t.TempDir(), "home2"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = engine().Pull(context.Background(), src, refFor(m.Name), dst, fetch.PullOptions{}, nil)
			if !errors.Is(err, registry.ErrDigestMismatch) {
				t.Fatalf("pull of a lying layout: %v, want a digest mismatch", err)
			}
			if dst.HasBlob(victim.SHA256, victim.Size) {
				t.Error("the lying blob was published")
			}
			if es, _ := dst.List(); len(es) != 0 {
				t.Errorf("a manifest was committed: %v", es)
			}
		})
	}
}

// flipInTar changes one byte of an entry's data in place.
func flipInTar(t *testing.T, p, name string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in %s: %v", name, p, err)
		}
		if h.Name != name {
			continue
		}
		off, _ := f.Seek(0, io.SeekCurrent)
		var b [1]byte
		f.ReadAt(b[:], off+10)
		b[0] ^= 0xff
		if _, err := f.WriteAt(b[:], off+10); err != nil {
			t.Fatal(err)
		}
		return
	}
}

func TestBadIndexAndManifest(t *testing.T) {
	store, m, _ := cached(t, "org/model")
	to := filepath.Join(t.TempDir(), "out")
	export(t, store, m, to)
	idxPath := filepath.Join(to, "index.json")
	good, _ := os.ReadFile(idxPath)

	// index.json too large.
	os.WriteFile(idxPath, append(bytes.Repeat([]byte(" "), ocilayout.MaxIndexSize), good...), 0o644)
	if src, err := ocilayout.NewSource(to); err == nil {
		if _, err := src.Models(); err == nil || !strings.Contains(err.Error(), "at most") {
			t.Errorf("oversized index.json: %v", err)
		}
	}
	// A descriptor whose digest is not its manifest's.
	var idx struct {
		SchemaVersion int                   `json:"schemaVersion"`
		Manifests     []registry.Descriptor `json:"manifests"`
	}
	json.Unmarshal(good, &idx)
	other := registry.Digest([]byte("{}"))
	os.WriteFile(filepath.Join(to, "blobs", "sha256", strings.TrimPrefix(other, "sha256:")), []byte("{}"), 0o644)
	idx.Manifests[0].Digest = other
	b, _ := json.Marshal(idx)
	os.WriteFile(idxPath, b, 0o644)
	src, err := ocilayout.NewSource(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Models(); !errors.Is(err, registry.ErrDigestMismatch) {
		t.Errorf("manifest not matching its descriptor: %v", err)
	}
	// A manifest with an unsafe file path.
	om := registry.OCIManifest{SchemaVersion: 2, MediaType: registry.MediaTypeOCIManifest, ArtifactType: registry.ArtifactTypeModel,
		Annotations: map[string]string{registry.AnnotationName: "org/model"},
		Layers: []registry.Descriptor{{MediaType: registry.MediaTypeWeightRaw, Digest: "sha256:" + strings.Repeat("a", 64), Size: 1,
			Annotations: map[string]string{registry.AnnotationFilepath: "../../etc/passwd"}}}}
	mb, _ := json.Marshal(om)
	d := registry.Digest(mb)
	os.WriteFile(filepath.Join(to, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")), mb, 0o644)
	idx.Manifests[0].Digest, idx.Manifests[0].Size = d, int64(len(mb))
	b, _ = json.Marshal(idx)
	os.WriteFile(idxPath, b, 0o644)
	if _, err := src.Models(); !errors.Is(err, registry.ErrInvalidManifest) {
		t.Errorf("manifest with ../ path: %v", err)
	}
	// Not a layout at all.
	if _, err := ocilayout.NewSource(t.TempDir()); !errors.Is(err, ocilayout.ErrNotLayout) {
		t.Errorf("empty dir: %v", err)
	}
	junk := filepath.Join(t.TempDir(), "junk.tar")
	os.WriteFile(junk, []byte("not a tar at all, just text that is long enough"), 0o644)
	if _, err := ocilayout.NewSource(junk); err == nil {
		t.Error("junk tar accepted")
	}
	// Export refuses to write into a directory that is not a layout.
	busy := t.TempDir()
	os.WriteFile(filepath.Join(busy, "precious"), []byte("x"), 0o644)
	if _, err := ocilayout.NewTarget(busy); !errors.Is(err, ocilayout.ErrNotLayout) {
		t.Errorf("export into a non-empty directory: %v", err)
	}
}

func TestTheCacheIsALayout(t *testing.T) {
	store, m, _ := cached(t, "org/model")
	if !ocilayout.Is(store.Root) {
		t.Fatal("the cache is not recognised as an OCI layout")
	}
	src, err := ocilayout.NewSource(store.Root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := src.Resolve(context.Background(), refFor(m.Name))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Files) != len(m.Files) {
		t.Errorf("%d files, want %d", len(got.Files), len(m.Files))
	}
}

func TestTargetRejectsWrongBytes(t *testing.T) {
	to := filepath.Join(t.TempDir(), "out")
	tg, err := ocilayout.NewTarget(to)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("hello")
	f := registry.File{Path: "a.txt", Size: 5, SHA256: sha([]byte("HELLO"))}
	err = tg.Put(context.Background(), f, bytes.NewReader(data))
	if !errors.Is(err, registry.ErrDigestMismatch) || !registry.IsPermanent(err) {
		t.Fatalf("put of wrong bytes: %v", err)
	}
	if ok, _ := tg.Stat(context.Background(), f); ok {
		t.Error("wrong bytes published")
	}
	ents, _ := os.ReadDir(to)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temp file left: %s", e.Name())
		}
	}
	// Commit without the blobs fails and writes no index.
	m := &registry.Manifest{Name: "org/x", Revision: strings.Repeat("1", 40), Format: "custom", Files: []registry.File{f}}
	if err := tg.Commit(context.Background(), m); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("commit without blobs: %v", err)
	}
	if _, err := os.Stat(filepath.Join(to, "index.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("index.json written for an incomplete model")
	}
	// An unfinished export is a layout without index.json: said so.
	if _, err := ocilayout.NewSource(to); !errors.Is(err, registry.ErrNotFound) || !strings.Contains(err.Error(), "did not finish") {
		t.Errorf("unfinished export: %v", err)
	}
}

func TestSourcesForPicksTheLayout(t *testing.T) {
	store, m, _ := cached(t, "org/model")
	dir := filepath.Join(t.TempDir(), "layout")
	tarPath := filepath.Join(t.TempDir(), "model.tar")
	export(t, store, m, dir)
	export(t, store, m, tarPath)
	plain := t.TempDir()
	os.WriteFile(filepath.Join(plain, "config.json"), []byte("{}"), 0o644)
	ref, err := registry.Parse("20b")
	if err != nil {
		t.Fatal(err)
	}
	for from, want := range map[string]bool{dir: true, tarPath: true, "file://" + tarPath: true, store.Root: true, plain: false} {
		src, got, err := sources.For(ref, from, sources.Options{})
		if err != nil {
			t.Errorf("%s: %v", from, err)
			continue
		}
		if _, ok := src.(*ocilayout.Source); ok != want {
			t.Errorf("%s: source %T", from, src)
		}
		if got.Scheme != registry.SchemeLocal || got.Model == nil {
			t.Errorf("%s: ref %+v", from, got)
		}
	}
}

// Tars written by other tools: GNU tar's "./"-prefixed names with a root
// entry, and PAX headers before every entry. The offsets found by the scan
// must still point at the data.
func TestForeignTars(t *testing.T) {
	store, m, files := cached(t, "org/model")
	dir := filepath.Join(t.TempDir(), "layout")
	export(t, store, m, dir)
	pull := func(t *testing.T, p string) {
		t.Helper()
		src, err := ocilayout.NewSource(p)
		if err != nil {
			t.Fatal(err)
		}
		dst, err := cache.Open(filepath.Join(t.TempDir(), "home"))
		if err != nil {
			t.Fatal(err)
		}
		pr, err := engine().Pull(context.Background(), src, refFor(m.Name), dst, fetch.PullOptions{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for path, b := range files {
			got, err := os.ReadFile(filepath.Join(dst.SnapshotDir(pr.Manifest), filepath.FromSlash(path)))
			if err != nil || !bytes.Equal(got, b) {
				t.Errorf("%s differs (%v)", path, err)
			}
		}
	}
	t.Run("pax", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "pax.tar")
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, Format: tar.FormatPAX})
		filepath.WalkDir(dir, func(fp string, d os.DirEntry, err error) error {
			if err != nil || fp == dir {
				return err
			}
			rel, _ := filepath.Rel(dir, fp)
			h := &tar.Header{Name: "./" + filepath.ToSlash(rel), Mode: 0o644, Format: tar.FormatPAX,
				PAXRecords: map[string]string{"comment": strings.Repeat("x", 700)}, ModTime: time.Unix(1, 5e8)}
			if d.IsDir() {
				h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
				return tw.WriteHeader(h)
			}
			b, err := os.ReadFile(fp)
			if err != nil {
				return err
			}
			h.Typeflag, h.Size = tar.TypeReg, int64(len(b))
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			_, err = tw.Write(b)
			return err
		})
		tw.Close()
		os.WriteFile(p, buf.Bytes(), 0o644)
		pull(t, p)
	})
	t.Run("gnu tar", func(t *testing.T) {
		bin, err := exec.LookPath("tar")
		if err != nil {
			t.Skip("no tar command")
		}
		p := filepath.Join(t.TempDir(), "gnu.tar")
		if out, err := exec.Command(bin, "-C", dir, "-cf", p, ".").CombinedOutput(); err != nil {
			t.Skipf("tar: %v: %s", err, out)
		}
		pull(t, p)
	})
}
