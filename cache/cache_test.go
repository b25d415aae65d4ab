package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gptoss/gptoss/registry"
)

func put(t *testing.T, s *Store, content string) registry.File {
	t.Helper()
	tmp, _ := s.PartialPath("t-"+sum(content)[:8], ".part")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(tmp, sum(content)); err != nil {
		t.Fatal(err)
	}
	return registry.File{Size: int64(len(content)), SHA256: sum(content)}
}

func sum(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func manifest(t *testing.T, s *Store, format string, files map[string]string) *registry.Manifest {
	m := &registry.Manifest{Name: "openai/gpt-oss-20b", Revision: "0123456789012345678901234567890123456789", Format: format, Source: "test"}
	for p, c := range files {
		f := put(t, s, c)
		f.Path = p
		m.Files = append(m.Files, f)
	}
	return m
}

func TestLayoutCommitListFind(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var layout map[string]string
	b, _ := os.ReadFile(filepath.Join(s.Root, "oci-layout"))
	if json.Unmarshal(b, &layout) != nil || layout["imageLayoutVersion"] != "1.0.0" {
		t.Fatalf("oci-layout: %s", b)
	}
	m := manifest(t, s, "hf", map[string]string{"config.json": "{}", "model-00000-of-00000.safetensors": "weights", "sub/dir/x": "x"})
	if _, err := s.Commit(m, "main"); err != nil {
		t.Fatal(err)
	}
	// The snapshot holds hard links to the blobs.
	got, err := os.ReadFile(filepath.Join(s.SnapshotDir(m), "sub", "dir", "x"))
	if err != nil || string(got) != "x" {
		t.Fatalf("snapshot: %q %v", got, err)
	}
	fi1, _ := os.Stat(filepath.Join(s.SnapshotDir(m), "config.json"))
	fi2, _ := os.Stat(s.BlobPath(sum("{}")))
	if !os.SameFile(fi1, fi2) {
		t.Error("snapshot file is not a hard link to the blob")
	}
	if fi2.Mode().Perm()&0o222 != 0 {
		t.Errorf("blob is writable: %v", fi2.Mode())
	}
	for _, q := range []struct{ format, rev string }{{"hf", "main"}, {"", ""}, {"hf", "0123456"}, {"", "0123456789012345678901234567890123456789"}} {
		if e, err := s.Find(m.Name, q.format, q.rev); err != nil || e.Manifest.Format != "hf" || len(e.Manifest.Files) != 3 {
			t.Errorf("Find(%q,%q): %v", q.format, q.rev, err)
		}
	}
	if _, err := s.Find(m.Name, "original", ""); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Find other format: %v", err)
	}
	if _, err := s.Find(m.Name, "", "dev"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Find other rev: %v", err)
	}
	// Committing twice replaces, not duplicates.
	if _, err := s.Commit(m, "main"); err != nil {
		t.Fatal(err)
	}
	if all, _ := s.List(); len(all) != 1 {
		t.Errorf("entries after recommit: %d", len(all))
	}
}

func TestCommitRefusesMissingBlob(t *testing.T) {
	s, _ := Open(t.TempDir())
	m := &registry.Manifest{Name: "a/b", Revision: "x", Format: "custom",
		Files: []registry.File{{Path: "f", Size: 3, SHA256: sum("abc")}}}
	if _, err := s.Commit(m, ""); err == nil {
		t.Fatal("commit without blob succeeded")
	}
	if all, _ := s.List(); len(all) != 0 {
		t.Fatal("index changed")
	}
}

func TestRemoveAndGC(t *testing.T) {
	s, _ := Open(t.TempDir())
	hf := manifest(t, s, "hf", map[string]string{"config.json": "{}", "LICENSE": "lic", "model.safetensors": "hfw"})
	orig := manifest(t, s, "original", map[string]string{"LICENSE": "lic", "original/model.safetensors": "ow"})
	if _, err := s.Commit(hf, "main"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(orig, "main"); err != nil {
		t.Fatal(err)
	}
	// An orphan blob and a stale partial.
	orphan := put(t, s, "orphan")
	part, _ := s.PartialPath("deadbeef", ".part")
	os.WriteFile(part, []byte("half"), 0o644)

	removed, err := s.Remove(func(e Entry) bool { return e.Manifest.Format == "hf" })
	if err != nil || len(removed) != 1 {
		t.Fatalf("remove: %v %d", err, len(removed))
	}
	dir := s.SnapshotDir(hf)
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); !errors.Is(err, os.ErrNotExist) {
		t.Error("hf file still in snapshot")
	}
	if _, err := os.Stat(filepath.Join(dir, "LICENSE")); err != nil {
		t.Error("LICENSE shared with the original format was removed")
	}
	// GC refuses while a pull holds the cache.
	release, err := s.HoldForPull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(context.Background(), GCOptions{}); !errors.Is(err, ErrBusy) {
		t.Errorf("GC during pull: %v", err)
	}
	release()
	res, err := s.GC(context.Background(), GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{sum("hfw"), sum("{}"), orphan.SHA256} {
		if s.HasBlob(gone, 1) || fileExists(s.BlobPath(gone)) {
			t.Errorf("blob %s survived gc", gone[:8])
		}
	}
	for _, kept := range []string{sum("lic"), sum("ow")} {
		if !fileExists(s.BlobPath(kept)) {
			t.Errorf("live blob %s deleted", kept[:8])
		}
	}
	if !fileExists(part) || res.Partials != 0 {
		t.Error("gc without --partial removed a resumable partial")
	}
	if res, _ = s.GC(context.Background(), GCOptions{Partials: true}); fileExists(part) || res.Partials != 1 {
		t.Error("gc --partial kept the partial")
	}
	// The remaining model still verifies through List.
	if all, err := s.List(); err != nil || len(all) != 1 || all[0].Manifest.Format != "original" {
		t.Errorf("list after gc: %v %v", all, err)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestLocks(t *testing.T) {
	s, _ := Open(t.TempDir())
	u, ok, err := s.TryLock("blob-abc")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	// flock locks are per open file description: a second open conflicts,
	// as a second process would.
	if _, ok2, _ := s.TryLock("blob-abc"); ok2 {
		t.Error("lock taken twice")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Lock(ctx, "blob-abc"); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock on cancelled ctx: %v", err)
	}
	u()
	if u2, ok3, _ := s.TryLock("blob-abc"); !ok3 {
		t.Error("lock not released")
	} else {
		u2()
	}
	if _, _, err := s.TryLock("../x"); err == nil {
		t.Error("bad lock name accepted")
	}
}

func TestDefaultRoot(t *testing.T) {
	t.Setenv("GPTOSS_HOME", "/x/y")
	if r, _ := DefaultRoot(); r != "/x/y" {
		t.Error(r)
	}
	t.Setenv("GPTOSS_HOME", "")
	t.Setenv("XDG_CACHE_HOME", "/c")
	if r, _ := DefaultRoot(); r != "/c/gptoss" {
		t.Error(r)
	}
}
