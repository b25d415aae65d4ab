package objstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/fetch"
	"github.com/gptoss/gptoss/internal/s3test"
	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/objstore"
	"github.com/gptoss/gptoss/registry/s3"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestUploadPartsRetriesEachPart(t *testing.T) {
	const size = 10*100 + 37
	o := objstore.PartOptions{PartSize: 100, Concurrency: 3, Attempts: 3, Backoff: 1}
	if n := o.NumParts(size); n != 11 {
		t.Fatalf("NumParts = %d", n)
	}
	var mu sync.Mutex
	calls := map[int]int{}
	got := make([]byte, size)
	err := objstore.UploadParts(context.Background(), size, o, func(ctx context.Context, i int, off, n int64) error {
		mu.Lock()
		calls[i]++
		c := calls[i]
		mu.Unlock()
		if c == 1 && i%2 == 0 { // every even part fails once, temporarily
			return &registry.HTTPError{Op: "upload", URL: "s3://b/k", Status: http.StatusServiceUnavailable}
		}
		for j := off; j < off+n; j++ {
			got[j] = byte(i + 1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 11; i++ {
		want := 1
		if i%2 == 0 {
			want = 2
		}
		if calls[i] != want {
			t.Errorf("part %d: %d calls, want %d", i, calls[i], want)
		}
	}
	for j, b := range got {
		if int(b) != j/100+1 {
			t.Fatalf("byte %d written by part %d", j, b-1)
		}
	}

	// A permanent failure is not retried and stops the rest.
	var n atomic.Int32
	err = objstore.UploadParts(context.Background(), size, objstore.PartOptions{PartSize: 100, Concurrency: 1, Attempts: 5, Backoff: 1},
		func(ctx context.Context, i int, off, _ int64) error {
			n.Add(1)
			if i == 2 {
				return &registry.HTTPError{Op: "upload", URL: "s3://b/k", Status: http.StatusForbidden}
			}
			return nil
		})
	if !errors.Is(err, registry.ErrForbidden) || !strings.Contains(err.Error(), "part 3 of 11") || n.Load() > 4 {
		t.Fatalf("permanent failure: %v after %d calls", err, n.Load())
	}
	// A part that keeps failing temporarily gives up after Attempts.
	n.Store(0)
	err = objstore.UploadParts(context.Background(), 50, objstore.PartOptions{PartSize: 100, Attempts: 3, Backoff: 1},
		func(ctx context.Context, i int, off, _ int64) error {
			n.Add(1)
			return &registry.HTTPError{Op: "upload", URL: "s3://b/k", Status: http.StatusInternalServerError}
		})
	if err == nil || n.Load() != 3 {
		t.Fatalf("temporary failures: %v after %d calls", err, n.Load())
	}
	// Part size grows to respect the part limit.
	if ps := (objstore.PartOptions{PartSize: 10, MaxParts: 4}).PartSizeFor(100); ps != 25 {
		t.Errorf("PartSizeFor = %d, want 25", ps)
	}
}

func bucket(t *testing.T) (*s3test.Server, *s3.Bucket) {
	srv := s3test.Start(t)
	srv.MakeBucket(t, "models")
	srv.Setenv(t, srv.Env())
	b, err := s3.New(context.Background(), "models", s3.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return srv, b
}

// A prefix without a manifest: digests come from object metadata or from
// Known, are checked as the bytes arrive, and the rest is reported.
func TestSourceWithoutManifest(t *testing.T) {
	_, b := bucket(t)
	ctx := context.Background()
	files := map[string][]byte{
		"known.bin":   bytes.Repeat([]byte("k"), 3<<20),
		"wrong.bin":   bytes.Repeat([]byte("w"), 1<<20),
		"meta.bin":    bytes.Repeat([]byte("m"), 1<<20),
		"unknown.txt": []byte("nobody knows me\n"),
	}
	for p, data := range files {
		meta := ""
		if p == "meta.bin" {
			meta = sum(data)
		}
		if err := b.Put(ctx, "snap/"+p, bytes.NewReader(data), int64(len(data)), meta); err != nil {
			t.Fatal(err)
		}
	}
	known := func(name, p string, size int64) (string, bool) {
		switch p {
		case "known.bin":
			return sum(files[p]), true
		case "wrong.bin":
			return sum([]byte("something else")), true
		}
		return "", false
	}
	src, err := objstore.NewSource(b, "snap", objstore.SourceOptions{Known: known})
	if err != nil {
		t.Fatal(err)
	}
	if src.Describe() != "s3://models/snap" {
		t.Errorf("Describe = %q", src.Describe())
	}
	ref := registry.Ref{Scheme: registry.SchemeLocal, Repo: "x/snap"}
	m, err := src.Resolve(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.Revision, "listing-") || registry.IsCommit(m.Revision) {
		t.Errorf("revision %q", m.Revision)
	}
	if u := src.Unchecked(); len(u) != 1 || u[0] != "unknown.txt" || src.HasManifest() {
		t.Errorf("unchecked %v, manifest %v", u, src.HasManifest())
	}
	// Same listing, same revision (resume keys); a changed object, another.
	m2, _ := src.Resolve(ctx, ref)
	if m2.Revision != m.Revision {
		t.Errorf("revision changed without a change: %s %s", m.Revision, m2.Revision)
	}

	store, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	eng := fetch.New(fetch.Options{Connections: 4})
	_, err = eng.Pull(ctx, src, ref, store, fetch.PullOptions{}, nil)
	if !errors.Is(err, registry.ErrDigestMismatch) || !strings.Contains(err.Error(), "wrong.bin") {
		t.Fatalf("pull: %v, want a digest mismatch on wrong.bin", err)
	}
	if store.HasBlob(sum(files["wrong.bin"]), 1<<20) {
		t.Error("wrong.bin was published")
	}
	// Without the bad file, the rest pulls and the content is right.
	if err := b.Delete(ctx, "snap/wrong.bin"); err != nil {
		t.Fatal(err)
	}
	res, err := eng.Pull(ctx, src, ref, store, fetch.PullOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Revision == m.Revision {
		t.Error("the revision did not change when an object went away")
	}
	for p, data := range files {
		if p != "wrong.bin" && !store.HasBlob(sum(data), int64(len(data))) {
			t.Errorf("%s not in the cache", p)
		}
	}
}

func TestTargetAndManifest(t *testing.T) {
	_, b := bucket(t)
	ctx := context.Background()
	tg, err := objstore.NewTarget(b, "/m/")
	if err != nil {
		t.Fatal(err)
	}
	cfg, shard := []byte(`{"a":1}`), bytes.Repeat([]byte{7}, 70<<10)
	f1 := registry.File{Path: "config.json", Size: int64(len(cfg)), SHA256: sum(cfg)}
	f2 := registry.File{Path: "original/model.safetensors", Size: int64(len(shard)), SHA256: sum(shard)}
	hf := &registry.Manifest{Name: "openai/gpt-oss-20b", Revision: strings.Repeat("a", 40), Format: "hf", Source: "https://huggingface.co", Files: []registry.File{f1}}
	orig := &registry.Manifest{Name: "openai/gpt-oss-20b", Revision: hf.Revision, Format: "original", Source: hf.Source, Files: []registry.File{f2}}
	for _, c := range []struct {
		m    *registry.Manifest
		data []byte
	}{{hf, cfg}, {orig, shard}} {
		if err := tg.Prepare(ctx, c.m); err != nil {
			t.Fatal(err)
		}
		f := c.m.Files[0]
		if ok, err := tg.Stat(ctx, f); ok || err != nil {
			t.Fatalf("stat before put: %v %v", ok, err)
		}
		if err := tg.Put(ctx, f, bytes.NewReader(c.data)); err != nil {
			t.Fatal(err)
		}
		if ok, err := tg.Stat(ctx, f); !ok || err != nil {
			t.Fatalf("stat after put: %v %v", ok, err)
		}
		other := f
		other.SHA256 = sum([]byte("other"))
		if ok, _ := tg.Stat(ctx, other); ok {
			t.Fatal("a file with another sha256 counts as present")
		}
		if err := tg.Commit(ctx, c.m); err != nil {
			t.Fatal(err)
		}
	}
	// Two formats of one revision share the prefix: the manifest merges.
	src, _ := objstore.NewSource(b, "m", objstore.SourceOptions{})
	m, err := src.Resolve(ctx, registry.Ref{Scheme: registry.SchemeLocal, Repo: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 2 || m.Format != "custom" || m.Revision != hf.Revision || m.Name != hf.Name || !src.HasManifest() {
		t.Fatalf("merged manifest: %+v", m)
	}
	// Another model is refused before any upload.
	if err := tg.Prepare(ctx, &registry.Manifest{Name: "openai/gpt-oss-120b"}); !errors.Is(err, registry.ErrUnsupported) {
		t.Errorf("another model: %v", err)
	}
	// A pinned revision the prefix does not hold is not found.
	if _, err := src.Resolve(ctx, registry.Ref{Scheme: registry.SchemeLocal, Repo: "m", Revision: "bbbbbbb"}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("other revision: %v", err)
	}
	// A manifest file that went missing: an unfinished mirror.
	if err := b.Delete(ctx, "m/config.json"); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Resolve(ctx, registry.Ref{Scheme: registry.SchemeLocal, Repo: "m"}); !errors.Is(err, registry.ErrNotFound) || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseManifest(t *testing.T) {
	good := &registry.Manifest{Name: "a/b", Revision: "r", Format: "hf", Source: "s",
		Files: []registry.File{{Path: "x.json", Size: 2, SHA256: strings.Repeat("1", 64)}}}
	data, err := objstore.MarshalManifest(good)
	if err != nil {
		t.Fatal(err)
	}
	m, err := objstore.ParseManifest(data)
	if err != nil || m.Name != "a/b" || len(m.Files) != 1 {
		t.Fatalf("round trip: %v %+v", err, m)
	}
	for name, bad := range map[string]string{
		"not json":     `{`,
		"no schema":    `{"name":"a/b","files":[{"path":"x","size":1}]}`,
		"newer schema": `{"schemaVersion":2,"name":"a/b","files":[{"path":"x","size":1}]}`,
		"escape":       `{"schemaVersion":1,"name":"a/b","files":[{"path":"../x","size":1}]}`,
		"bad digest":   `{"schemaVersion":1,"name":"a/b","files":[{"path":"x","size":1,"sha256":"zz"}]}`,
		"lists itself": `{"schemaVersion":1,"name":"a/b","files":[{"path":"gptoss-manifest.json","size":1}]}`,
	} {
		if _, err := objstore.ParseManifest([]byte(bad)); !errors.Is(err, registry.ErrInvalidManifest) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, p := range []string{"a/../b", "/a/./b"} {
		if _, err := objstore.CleanPrefix(p); err == nil {
			t.Errorf("CleanPrefix(%q) accepted", p)
		}
	}
	if p, _ := objstore.CleanPrefix("/a/b/"); p != "a/b/" {
		t.Errorf("CleanPrefix = %q", p)
	}
}
