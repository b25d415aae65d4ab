package cache

import (
	"context"
	"os"
	"strings"
	"testing"
)

func TestConvertedRecordAndGC(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	hf := manifest(t, s, "hf", map[string]string{"config.json": `{"a":1}`, "model.safetensors": "hf weights"})
	orig := manifest(t, s, "original", map[string]string{"original/config.json": `{"b":2}`, "original/model.safetensors": "orig weights"})
	ehf, err := s.Commit(hf, "main")
	if err != nil {
		t.Fatal(err)
	}
	eorig, err := s.Commit(orig, "main")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Converted(ehf.Digest, 1); ok {
		t.Fatal("converted before conversion")
	}
	layoutA := put(t, s, "layout bytes A")
	layoutB := put(t, s, "layout bytes B")
	if err := s.SetConverted(ehf.Digest, 1, layoutA.SHA256, layoutA.Size); err != nil {
		t.Fatal(err)
	}
	if err := s.SetConverted("sha256:"+eorig.Digest, 1, layoutB.SHA256, layoutB.Size); err != nil {
		t.Fatal(err)
	}
	if err := s.SetConverted(ehf.Digest, 1, strings.Repeat("0", 64), 3); err == nil {
		t.Error("an unpublished layout was recorded")
	}
	if got, ok := s.Converted("sha256:"+ehf.Digest, 1); !ok || got != layoutA.SHA256 {
		t.Errorf("Converted(hf) = %s %v", got, ok)
	}
	if _, ok := s.Converted(ehf.Digest, 2); ok {
		t.Error("another layout version reported converted")
	}
	// Re-recording replaces, never duplicates.
	if err := s.SetConverted(ehf.Digest, 1, layoutA.SHA256, layoutA.Size); err != nil {
		t.Fatal(err)
	}
	idx, _ := s.readIndex()
	refs, _ := s.readRefs()
	if len(idx.Manifests) != 2 || len(refs.Manifests) != 2 {
		t.Errorf("index has %d entries, referrers %d; want 2 and 2", len(idx.Manifests), len(refs.Manifests))
	}
	// List shows only models.
	all, err := s.List()
	if err != nil || len(all) != 2 {
		t.Fatalf("List: %d entries, %v", len(all), err)
	}
	// GC keeps both layouts while their models exist.
	if _, err := s.GC(context.Background(), GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if !fileExists(s.BlobPath(layoutA.SHA256)) || !fileExists(s.BlobPath(layoutB.SHA256)) {
		t.Fatal("GC removed a live layout")
	}
	// Removing the hf model frees its layout at the next GC, not the other.
	if _, err := s.Remove(func(e Entry) bool { return e.Manifest.Format == "hf" }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(context.Background(), GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if fileExists(s.BlobPath(layoutA.SHA256)) {
		t.Error("the removed model's layout survived GC")
	}
	if _, ok := s.Converted(ehf.Digest, 1); ok {
		t.Error("the removed model is still converted")
	}
	if got, ok := s.Converted(eorig.Digest, 1); !ok || got != layoutB.SHA256 {
		t.Errorf("the other model lost its layout: %s %v", got, ok)
	}
	if refs, _ = s.readRefs(); len(refs.Manifests) != 1 {
		t.Errorf("referrers has %d entries after GC, want 1", len(refs.Manifests))
	}
	if _, err := s.Remove(func(Entry) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(context.Background(), GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if ents, _ := readDirNames(s.Root + "/blobs/sha256"); len(ents) != 0 {
		t.Errorf("blobs left: %v", ents)
	}
}

func readDirNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, err
}
