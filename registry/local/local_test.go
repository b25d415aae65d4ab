package local

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/registry"
)

func write(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// model lays out a directory with visible files, hidden ones, symlinks and
// things that are not regular files.
func model(t *testing.T) (dir string, want map[string][]byte) {
	t.Helper()
	root := t.TempDir()
	dir = filepath.Join(root, "gpt-oss-20b")
	outside := filepath.Join(root, "outside")
	want = map[string][]byte{
		"config.json":                      []byte(`{"model_type":"gpt_oss"}`),
		"model-00000-of-00001.safetensors": bytes.Repeat([]byte{7}, 100_000),
		"original/model.safetensors":       bytes.Repeat([]byte{9}, 4097),
		"empty.txt":                        {},
		"deep/a/b/c.bin":                   []byte("c"),
	}
	for p, b := range want {
		write(t, filepath.Join(dir, filepath.FromSlash(p)), b)
	}
	// Hidden entries: skipped, at any depth.
	write(t, filepath.Join(dir, ".gitattributes"), []byte("*.safetensors filter=lfs"))
	write(t, filepath.Join(dir, ".git", "HEAD"), []byte("ref: refs/heads/main"))
	write(t, filepath.Join(dir, ".cache", "huggingface", "download", "config.json.metadata"), []byte("x"))
	write(t, filepath.Join(dir, "original", ".hidden"), []byte("h"))
	write(t, filepath.Join(dir, "deep", ".d", "x"), []byte("x"))
	// Symlinks: to a file (followed, also outside the directory), to a
	// directory (not walked), dangling (skipped).
	write(t, filepath.Join(outside, "weights.bin"), []byte("linked weights"))
	os.MkdirAll(filepath.Join(outside, "dir"), 0o755)
	write(t, filepath.Join(outside, "dir", "inner.txt"), []byte("inner"))
	must(t, os.Symlink(filepath.Join(outside, "weights.bin"), filepath.Join(dir, "linked.bin")))
	must(t, os.Symlink("../config.json", filepath.Join(dir, "original", "config-link.json")))
	must(t, os.Symlink(filepath.Join(outside, "dir"), filepath.Join(dir, "linkdir")))
	must(t, os.Symlink(filepath.Join(root, "nowhere"), filepath.Join(dir, "dangling")))
	want["linked.bin"] = []byte("linked weights")
	want["original/config-link.json"] = want["config.json"]
	return dir, want
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestResolveListing(t *testing.T) {
	dir, want := model(t)
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Describe() != dir {
		t.Errorf("Describe %q", s.Describe())
	}
	m, err := s.Resolve(context.Background(), registry.Ref{Scheme: registry.SchemeLocal, Repo: dir})
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "local/gpt-oss-20b" || m.Source != dir || m.Revision != "" {
		t.Errorf("manifest %q %q %q", m.Name, m.Source, m.Revision)
	}
	var got []string
	for _, f := range m.Files {
		got = append(got, f.Path)
		b, ok := want[f.Path]
		if !ok {
			t.Errorf("unexpected file %q", f.Path)
			continue
		}
		if f.Size != int64(len(b)) || f.SHA256 != "" || f.GitSHA1 != "" || f.Role != registry.RoleOf(f.Path) {
			t.Errorf("%s: %+v", f.Path, f)
		}
	}
	if len(m.Files) != len(want) {
		t.Errorf("listed %v, want %d files", got, len(want))
	}
	for i := 1; i < len(got); i++ {
		if got[i-1] >= got[i] {
			t.Errorf("not sorted: %v", got)
		}
	}
	// A catalog ref names the manifest after the catalog repo.
	ref, _ := registry.Parse("20b")
	if m, err := s.Resolve(context.Background(), ref); err != nil || m.Name != "openai/gpt-oss-20b" {
		t.Errorf("catalog name: %v %v", m, err)
	}
	// A cancelled context stops the walk.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Resolve(ctx, ref); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Resolve: %v", err)
	}
}

func TestOpenRanges(t *testing.T) {
	dir, want := model(t)
	s, _ := New(dir)
	m, err := s.Resolve(context.Background(), registry.Ref{Scheme: registry.SchemeLocal, Repo: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		b := want[f.Path]
		size := f.Size
		for _, c := range []struct{ off, n int64 }{
			{0, -1}, {0, size}, {0, min(1, size)}, {size / 2, -1}, {size / 3, size / 3}, {max(size-1, 0), -1}, {size, 0}, {size, -1},
		} {
			rc, err := s.Open(context.Background(), f, c.off, c.n)
			if err != nil {
				t.Fatalf("%s [%d,+%d): %v", f.Path, c.off, c.n, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			end := size
			if c.n >= 0 {
				end = c.off + c.n
			}
			if err != nil || !bytes.Equal(got, b[c.off:end]) {
				t.Errorf("%s [%d,+%d): %d bytes, %v", f.Path, c.off, c.n, len(got), err)
			}
		}
	}
	f, _ := m.Lookup("config.json")
	for _, c := range []struct{ off, n int64 }{{-1, 1}, {0, f.Size + 1}, {f.Size + 1, -1}, {f.Size - 1, 2}} {
		if _, err := s.Open(context.Background(), f, c.off, c.n); err == nil || !registry.IsPermanent(err) {
			t.Errorf("range %d+%d outside the file: %v", c.off, c.n, err)
		}
	}
}

func TestOpenChecks(t *testing.T) {
	dir, _ := model(t)
	s, _ := New(dir)
	m, err := s.Resolve(context.Background(), registry.Ref{Scheme: registry.SchemeLocal, Repo: dir})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := m.Lookup("original/model.safetensors")
	// The file changed size since the listing.
	p := filepath.Join(dir, "original", "model.safetensors")
	must(t, os.WriteFile(p, []byte("shorter"), 0o644))
	_, err = s.Open(context.Background(), f, 0, -1)
	if !errors.Is(err, registry.ErrSizeMismatch) || !registry.IsPermanent(err) {
		t.Errorf("changed size: %v", err)
	}
	// Removed since the listing.
	must(t, os.Remove(p))
	if _, err := s.Open(context.Background(), f, 0, -1); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("removed: %v", err)
	}
	// Paths that leave the directory are refused before touching the disk.
	write(t, filepath.Join(filepath.Dir(dir), "secret"), []byte("s"))
	for _, bad := range []string{"../secret", "/etc/passwd", "a/../../secret", ""} {
		_, err := s.Open(context.Background(), registry.File{Path: bad, Size: 1}, 0, -1)
		if !errors.Is(err, registry.ErrInvalidManifest) || !registry.IsPermanent(err) {
			t.Errorf("path %q: %v", bad, err)
		}
	}
}

func TestNew(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	write(t, file, []byte("x"))
	if _, err := New(file); !errors.Is(err, registry.ErrInvalidRef) || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file: %v", err)
	}
	if _, err := New(filepath.Join(root, "missing")); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	// A relative directory becomes absolute; ~/ is the home directory.
	t.Chdir(root)
	os.Mkdir(filepath.Join(root, "rel"), 0o755)
	if s, err := New("./rel"); err != nil || s.Dir != filepath.Join(root, "rel") {
		t.Errorf("relative: %v %v", s, err)
	}
	t.Setenv("HOME", root)
	if s, err := New("~/rel"); err != nil || s.Dir != filepath.Join(root, "rel") {
		t.Errorf("~/: %v %v", s, err)
	}
	// A directory with nothing but hidden files has no model.
	empty := filepath.Join(root, "empty")
	write(t, filepath.Join(empty, ".git", "config"), []byte("x"))
	s, err := New(empty)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(context.Background(), registry.Ref{Scheme: registry.SchemeLocal, Repo: empty}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("empty directory: %v", err)
	}
}

func TestOpenFileShrinksWhileRead(t *testing.T) {
	dir, _ := model(t)
	s, _ := New(dir)
	m, err := s.Resolve(context.Background(), registry.Ref{Scheme: registry.SchemeLocal, Repo: dir})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := m.Lookup("model-00000-of-00001.safetensors")
	rc, err := s.Open(context.Background(), f, 10, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	must(t, os.Truncate(filepath.Join(dir, f.Path), 1000))
	b, err := io.ReadAll(rc)
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(b) != 990 {
		t.Errorf("file shrank during the read: %d bytes, %v", len(b), err)
	}
}
