package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/registry"
)

// memTarget is an in-memory registry.Target with injectable faults. It
// records the order of Puts and the Commit.
type memTarget struct {
	mu        sync.Mutex
	blobs     map[string][]byte // by sha256
	putErr    func(f registry.File, nth int) error
	puts      map[string]int // Put calls by path
	order     []string       // "put:<path>" and "commit"
	committed *registry.Manifest
}

func newMemTarget() *memTarget {
	return &memTarget{blobs: map[string][]byte{}, puts: map[string]int{}}
}

func (t *memTarget) Stat(ctx context.Context, f registry.File) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.blobs[f.SHA256]
	return ok && int64(len(b)) == f.Size, nil
}

func (t *memTarget) Put(ctx context.Context, f registry.File, r io.ReaderAt) error {
	t.mu.Lock()
	nth := t.puts[f.Path]
	t.puts[f.Path]++
	t.mu.Unlock()
	if t.putErr != nil {
		if err := t.putErr(f, nth); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.NewSectionReader(r, 0, f.Size)); err != nil {
		return err
	}
	if got := sha256Hex(buf.Bytes()); got != f.SHA256 {
		return &registry.Permanent{Err: fmt.Errorf("%w: %s", registry.ErrDigestMismatch, f.Path)}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.blobs[f.SHA256] = buf.Bytes()
	t.order = append(t.order, "put:"+f.Path)
	return nil
}

func (t *memTarget) Commit(ctx context.Context, m *registry.Manifest) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, f := range m.Files {
		if _, ok := t.blobs[f.SHA256]; !ok {
			return fmt.Errorf("commit before %s arrived", f.Path)
		}
	}
	t.order = append(t.order, "commit")
	t.committed = m
	return nil
}

// mirrorFixture puts the files of a fixture manifest into a fresh store.
func mirrorFixture(t *testing.T, specs ...spec) (*cache.Store, *registry.Manifest, *memSource) {
	t.Helper()
	m, src := fixture(t, specs...)
	store := newStore(t)
	for i, f := range m.Files {
		if _, err := store.PutBlob(src.files[f.Path]); err != nil {
			t.Fatal(err)
		}
		m.Files[i].SHA256 = sha256Hex(src.files[f.Path])
	}
	return store, m, src
}

func TestMirrorSkipsWhatTheTargetHas(t *testing.T) {
	store, m, src := mirrorFixture(t, spec{"a.safetensors", 200 << 10, withSHA256}, spec{"b.safetensors", 100 << 10, withSHA256},
		spec{"c.json", 100, withSHA256})
	dst := newMemTarget()
	have, _ := m.Lookup("b.safetensors")
	dst.blobs[have.SHA256] = src.files[have.Path]
	rec := &recorder{t: t}
	res, err := testEngine(Options{}).Mirror(context.Background(), store, m, dst, rec.cb)
	if err != nil {
		t.Fatal(err)
	}
	if res.Uploaded != 2 || res.Skipped != 1 || res.Bytes != m.TotalSize()-have.Size {
		t.Errorf("result %+v", res)
	}
	if dst.puts[have.Path] != 0 {
		t.Errorf("%s was uploaded although the target had it", have.Path)
	}
	if rec.count(EventFileCached) != 1 || rec.count(EventFileDone) != 2 || rec.count(EventDone) != 1 {
		t.Errorf("events: cached %d, done %d, all done %d", rec.count(EventFileCached), rec.count(EventFileDone), rec.count(EventDone))
	}
	if last := rec.events[len(rec.events)-1]; last.Kind != EventDone || last.Done != m.TotalSize() {
		t.Errorf("last event %+v", last)
	}
	for _, f := range m.Files {
		if !bytes.Equal(dst.blobs[f.SHA256], src.files[f.Path]) {
			t.Errorf("%s: target content differs", f.Path)
		}
	}
	// Again: nothing to upload, still committed.
	res, err = testEngine(Options{}).Mirror(context.Background(), store, m, dst, nil)
	if err != nil || res.Uploaded != 0 || res.Skipped != 3 {
		t.Errorf("second mirror: %+v %v", res, err)
	}
}

func TestMirrorRetriesTemporaryPutErrors(t *testing.T) {
	store, m, _ := mirrorFixture(t, spec{"a.safetensors", 64 << 10, withSHA256}, spec{"b.json", 10, withSHA256})
	dst := newMemTarget()
	dst.putErr = func(f registry.File, nth int) error {
		if f.Path == "a.safetensors" && nth < 2 {
			return &registry.HTTPError{Op: "put", URL: "mem://a", Status: 503, RetryAfter: time.Millisecond}
		}
		return nil
	}
	rec := &recorder{t: t}
	res, err := testEngine(Options{Backoff: time.Millisecond}).Mirror(context.Background(), store, m, dst, rec.cb)
	if err != nil {
		t.Fatal(err)
	}
	if dst.puts["a.safetensors"] != 3 || res.Uploaded != 2 {
		t.Errorf("puts %v, result %+v", dst.puts, res)
	}
	if rec.count(EventRetry) != 2 {
		t.Errorf("%d retry events, want 2", rec.count(EventRetry))
	}
	if dst.committed == nil {
		t.Error("not committed")
	}
}

func TestMirrorCommitsLastAndNotOnFailure(t *testing.T) {
	store, m, _ := mirrorFixture(t, spec{"a.safetensors", 300 << 10, withSHA256}, spec{"b.safetensors", 200 << 10, withSHA256},
		spec{"c.json", 10, withSHA256})
	dst := newMemTarget()
	if _, err := testEngine(Options{Connections: 3}).Mirror(context.Background(), store, m, dst, nil); err != nil {
		t.Fatal(err)
	}
	if len(dst.order) != 4 || dst.order[3] != "commit" {
		t.Errorf("order %v: commit must come last", dst.order)
	}

	// A permanent error on one file: no retry, no commit.
	dst = newMemTarget()
	dst.putErr = func(f registry.File, nth int) error {
		if f.Path == "b.safetensors" {
			return &registry.HTTPError{Op: "put", URL: "mem://b", Status: 403}
		}
		return nil
	}
	_, err := testEngine(Options{Backoff: time.Millisecond}).Mirror(context.Background(), store, m, dst, nil)
	if !errors.Is(err, registry.ErrForbidden) || !strings.Contains(err.Error(), "b.safetensors") {
		t.Errorf("permanent put error: %v", err)
	}
	if dst.puts["b.safetensors"] != 1 {
		t.Errorf("a permanent error was retried: %d puts", dst.puts["b.safetensors"])
	}
	if dst.committed != nil {
		t.Error("committed although a file failed")
	}

	// Temporary errors that never stop: give up after MaxAttempts.
	dst = newMemTarget()
	dst.putErr = func(f registry.File, nth int) error {
		return &registry.HTTPError{Op: "put", URL: "mem://x", Status: 500}
	}
	_, err = testEngine(Options{Backoff: time.Millisecond, MaxAttempts: 3}).Mirror(context.Background(), store, m, dst, nil)
	if err == nil || dst.committed != nil {
		t.Errorf("endless 500s: %v, committed %v", err, dst.committed != nil)
	}
	for p, n := range dst.puts {
		if n > 3 {
			t.Errorf("%s: %d puts, MaxAttempts is 3", p, n)
		}
	}
}

func TestMirrorMissingBlobFails(t *testing.T) {
	store, m, _ := mirrorFixture(t, spec{"a.safetensors", 1000, withSHA256})
	extra := content("b.safetensors", 500)
	// The missing file comes first: see TestMirrorChecksEveryBlobBeforeUploading
	// for the other order.
	m.Files = append([]registry.File{{Path: "b.safetensors", Size: 500, SHA256: sha256Hex(extra)}}, m.Files...)
	dst := newMemTarget()
	_, err := testEngine(Options{}).Mirror(context.Background(), store, m, dst, nil)
	if !errors.Is(err, registry.ErrNotFound) || !strings.Contains(err.Error(), "b.safetensors") {
		t.Fatalf("mirror with a blob missing from the cache: %v", err)
	}
	dst.mu.Lock()
	defer dst.mu.Unlock()
	if len(dst.puts) != 0 || dst.committed != nil {
		t.Errorf("uploaded %v / committed before finding the gap", dst.puts)
	}
	// A file without a sha256 cannot be mirrored either.
	m.Files = m.Files[1:]
	m.Files[0].SHA256 = ""
	if _, err := testEngine(Options{}).Mirror(context.Background(), store, m, newMemTarget(), nil); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("file without sha256: %v", err)
	}
}

// A blob missing from the cache must stop the mirror before any upload, and
// Mirror must not return while uploads still run.
func TestMirrorChecksEveryBlobBeforeUploading(t *testing.T) {
	store, m, _ := mirrorFixture(t, spec{"a.safetensors", 1000, withSHA256})
	extra := content("b.safetensors", 500)
	m.Files = append(m.Files, registry.File{Path: "b.safetensors", Size: 500, SHA256: sha256Hex(extra)})
	dst := newMemTarget()
	_, err := testEngine(Options{}).Mirror(context.Background(), store, m, dst, nil)
	if !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("mirror with a blob missing from the cache: %v", err)
	}
	time.Sleep(50 * time.Millisecond) // an upload still running after Mirror returned would land now
	dst.mu.Lock()
	defer dst.mu.Unlock()
	if len(dst.puts) != 0 || dst.committed != nil {
		t.Errorf("uploaded %v before finding the gap", dst.puts)
	}
}

func TestMirrorCancel(t *testing.T) {
	store, m, _ := mirrorFixture(t, spec{"a.safetensors", 1000, withSHA256})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dst := newMemTarget()
	if _, err := testEngine(Options{}).Mirror(ctx, store, m, dst, nil); err == nil || dst.committed != nil {
		t.Errorf("cancelled mirror: %v, committed %v", err, dst.committed != nil)
	}
}
