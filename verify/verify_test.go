package verify

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/registry"
)

func sha256Hex(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func gitSHA1(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// contents of the test model: weights without a git blob id (LFS on the
// Hub), small files with one, an empty file, and two paths sharing a blob.
var contents = map[string][]byte{
	"config.json":                      []byte(`{"model_type":"gpt_oss"}`),
	"model-00000-of-00001.safetensors": bytes.Repeat([]byte("weights!"), 300_000), // > the 1 MiB hash buffer
	"original/model.safetensors":       bytes.Repeat([]byte{1, 2, 3}, 1000),
	"tokenizer.json":                   []byte(`{"version":"1.0"}`),
	"empty.txt":                        {},
	"original/config.json":             []byte(`{"model_type":"gpt_oss"}`), // same blob as config.json
}

func isLFS(p string) bool { return strings.HasSuffix(p, ".safetensors") }

type fixture struct {
	s *cache.Store
	e *cache.Entry
	m *registry.Manifest
}

// build publishes the files and commits a manifest, as a pull does.
// mutate, when set, edits the manifest before the commit.
func build(t *testing.T, mutate func(*registry.Manifest)) fixture {
	t.Helper()
	s, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := &registry.Manifest{Name: "openai/gpt-oss-20b", Revision: strings.Repeat("c0ffee", 6) + "c0ff", Format: "hf", Source: "test"}
	for p, b := range contents {
		sum := sha256Hex(b)
		f := registry.File{Path: p, Size: int64(len(b)), SHA256: sum, Role: registry.RoleOf(p)}
		if !isLFS(p) {
			f.GitSHA1 = gitSHA1(b)
		}
		if !s.HasBlob(sum, f.Size) {
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
		m.Files = append(m.Files, f)
	}
	m.SortFiles()
	if mutate != nil {
		mutate(m)
	}
	if _, err := s.Commit(m, "main"); err != nil {
		t.Fatal(err)
	}
	e, err := s.Find(m.Name, "hf", "main")
	if err != nil {
		t.Fatal(err)
	}
	return fixture{s: s, e: e, m: m}
}

func (fx fixture) blob(p string) string { return fx.s.BlobPath(sha256Hex(contents[p])) }
func (fx fixture) snap(p string) string {
	return filepath.Join(fx.s.SnapshotDir(fx.m), filepath.FromSlash(p))
}

func (fx fixture) verify(t *testing.T) *Report {
	t.Helper()
	r, err := Entry(context.Background(), fx.s, *fx.e, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Files) != len(fx.m.Files) || r.Name != fx.m.Name || r.Format != "hf" || r.Revision != fx.m.Revision {
		t.Fatalf("report header: %+v", r)
	}
	return r
}

// expect checks the status of every file: bad maps a path to its status,
// the rest must be OK.
func expect(t *testing.T, r *Report, bad map[string]string) {
	t.Helper()
	for _, f := range r.Files {
		want := OK
		if s, ok := bad[f.Path]; ok {
			want = s
		}
		if f.Status != want {
			t.Errorf("%s: %q (%s), want %q", f.Path, f.Status, f.Detail, want)
		}
		if f.Status != OK && f.Detail == "" {
			t.Errorf("%s: %q without detail", f.Path, f.Status)
		}
	}
	if r.OK != (len(bad) == 0) {
		t.Errorf("report OK %v with %d problems", r.OK, len(bad))
	}
}

func makeWritable(t *testing.T, p string) {
	t.Helper()
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAllOK(t *testing.T) {
	fx := build(t, nil)
	var hashed atomic.Int64
	r, err := Entry(context.Background(), fx.s, *fx.e, func(n int64) { hashed.Add(n) })
	if err != nil {
		t.Fatal(err)
	}
	expect(t, r, nil)
	for i, f := range r.Files {
		if f.Path != fx.m.Files[i].Path || f.Size != fx.m.Files[i].Size || f.SHA256 != fx.m.Files[i].SHA256 {
			t.Errorf("result %d: %+v", i, f)
		}
	}
	// Every blob hashed once; hard-linked snapshots are not read again.
	if hashed.Load() != fx.m.TotalSize() {
		t.Errorf("progress %d bytes, manifest %d", hashed.Load(), fx.m.TotalSize())
	}
}

func TestCorruptBlob(t *testing.T) {
	fx := build(t, nil)
	for _, p := range []string{"model-00000-of-00001.safetensors", "tokenizer.json"} {
		b := fx.blob(p)
		makeWritable(t, b)
		fh, err := os.OpenFile(b, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		one := []byte{0}
		off := int64(len(contents[p]) / 2)
		fh.ReadAt(one, off)
		one[0] ^= 0x01
		fh.WriteAt(one, off)
		fh.Close()
	}
	r := fx.verify(t)
	expect(t, r, map[string]string{"model-00000-of-00001.safetensors": DigestMismatch, "tokenizer.json": DigestMismatch})
}

func TestTruncatedBlob(t *testing.T) {
	fx := build(t, nil)
	p := "original/model.safetensors"
	makeWritable(t, fx.blob(p))
	if err := os.Truncate(fx.blob(p), 100); err != nil {
		t.Fatal(err)
	}
	expect(t, fx.verify(t), map[string]string{p: SizeMismatch})
}

func TestMissingBlob(t *testing.T) {
	fx := build(t, nil)
	if err := os.Remove(fx.blob("tokenizer.json")); err != nil {
		t.Fatal(err)
	}
	// The shared blob: both paths that use it are missing.
	if err := os.Remove(fx.blob("config.json")); err != nil {
		t.Fatal(err)
	}
	expect(t, fx.verify(t), map[string]string{"tokenizer.json": Missing, "config.json": Missing, "original/config.json": Missing})
}

func TestSnapshotReplaced(t *testing.T) {
	fx := build(t, nil)
	// Same size, other bytes: only a hash tells.
	p := "original/model.safetensors"
	if err := os.Remove(fx.snap(p)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fx.snap(p), bytes.Repeat([]byte{3, 2, 1}, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	// A symlink to another file.
	q := "tokenizer.json"
	os.Remove(fx.snap(q))
	if err := os.Symlink(fx.blob("config.json"), fx.snap(q)); err != nil {
		t.Fatal(err)
	}
	// Replaced by a directory.
	d := "empty.txt"
	os.Remove(fx.snap(d))
	os.Mkdir(fx.snap(d), 0o755)
	// Copies with the right content, and a symlink to the right blob, are fine.
	c := "config.json"
	os.Remove(fx.snap(c))
	os.WriteFile(fx.snap(c), contents[c], 0o644)
	w := "model-00000-of-00001.safetensors"
	os.Remove(fx.snap(w))
	rel, _ := filepath.Rel(filepath.Dir(fx.snap(w)), fx.blob(w))
	if err := os.Symlink(rel, fx.snap(w)); err != nil {
		t.Fatal(err)
	}
	expect(t, fx.verify(t), map[string]string{p: SnapshotMismatch, q: SnapshotMismatch, d: SnapshotMismatch})
}

func TestSnapshotMissing(t *testing.T) {
	fx := build(t, nil)
	if err := os.Remove(fx.snap("original/config.json")); err != nil {
		t.Fatal(err)
	}
	expect(t, fx.verify(t), map[string]string{"original/config.json": SnapshotMissing})
}

func TestWrongGitSHA1(t *testing.T) {
	fx := build(t, func(m *registry.Manifest) {
		for i := range m.Files {
			if m.Files[i].Path == "tokenizer.json" {
				m.Files[i].GitSHA1 = gitSHA1([]byte("something else"))
			}
			if m.Files[i].Path == "original/model.safetensors" {
				// A git sha1 recorded for a weights file is checked too.
				m.Files[i].GitSHA1 = gitSHA1(contents["original/model.safetensors"])
			}
		}
	})
	r := fx.verify(t)
	expect(t, r, map[string]string{"tokenizer.json": DigestMismatch})
	for _, f := range r.Files {
		if f.Path == "tokenizer.json" && !strings.Contains(f.Detail, "git") {
			t.Errorf("detail %q does not name the git blob id", f.Detail)
		}
	}
}

func TestCancelled(t *testing.T) {
	fx := build(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Entry(ctx, fx.s, *fx.e, nil); err == nil {
		t.Fatal("Entry with a cancelled context succeeded")
	}
}

type fileState struct {
	mode  fs.FileMode
	size  int64
	mtime time.Time
	sum   string
	link  string
}

func tree(t *testing.T, root string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fileState{mode: fi.Mode(), size: fi.Size(), mtime: fi.ModTime()}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			st.link, _ = os.Readlink(p)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			st.sum = sha256Hex(b)
		}
		out[p] = st
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Verification only reads: not the blobs, the snapshots, the index or the
// locks change, whether it finds problems or not.
func TestModifiesNothing(t *testing.T) {
	fx := build(t, nil)
	// Some damage for it to find (and not repair).
	makeWritable(t, fx.blob("tokenizer.json"))
	os.WriteFile(fx.blob("tokenizer.json"), []byte(`{"version":"2.0"}`), 0o644)
	os.Remove(fx.snap("empty.txt"))
	os.Remove(fx.blob("original/model.safetensors"))
	before := tree(t, fx.s.Root)
	time.Sleep(10 * time.Millisecond) // so that a rewrite would show in mtimes
	for i := 0; i < 2; i++ {
		r := fx.verify(t)
		expect(t, r, map[string]string{"tokenizer.json": DigestMismatch, "empty.txt": SnapshotMissing, "original/model.safetensors": Missing})
	}
	after := tree(t, fx.s.Root)
	for p, b := range before {
		a, ok := after[p]
		if !ok {
			t.Errorf("%s removed", p)
		} else if a != b {
			t.Errorf("%s changed: %+v → %+v", p, b, a)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s created", p)
		}
	}
}
