package fetch

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/registry"
)

// memSource is an in-memory registry.Source with injectable faults. It
// counts every byte its bodies hand out.
type memSource struct {
	files  map[string][]byte
	chunk  int                    // largest Read (default 32 KiB)
	fault  func(c openCall) fault // nil: no faults
	onOpen func(c openCall)       // called after recording a call

	mu     sync.Mutex
	calls  []openCall
	nopen  map[string]int
	served map[string]int64
	total  atomic.Int64
}

// openCall is one Open: the n-th (from 0) of this path.
type openCall struct {
	Path   string
	Off, N int64
	Nth    int
	At     time.Time
}

// fault says how one Open misbehaves. Zero fields mean "no".
type fault struct {
	openErr    error         // Open fails with this
	openDelay  time.Duration // Open takes this long first
	openStall  bool          // Open blocks until its context ends
	failAfter  int64         // the body fails with failErr after this many bytes
	failErr    error
	truncAfter int64         // the body ends (io.EOF) after this many bytes
	stallAfter int64         // the body blocks after this many bytes until its context ends
	delay      time.Duration // each Read of the body sleeps this long
	corrupt    bool          // the body's bytes are wrong
	extra      int           // bytes beyond the end of the file, if the range reaches it
}

func newMemSource(files map[string][]byte) *memSource {
	return &memSource{files: files, chunk: 32 << 10, nopen: map[string]int{}, served: map[string]int64{}}
}

func (s *memSource) Resolve(context.Context, registry.Ref) (*registry.Manifest, error) {
	return nil, registry.ErrUnsupported
}

func (s *memSource) Open(ctx context.Context, f registry.File, off, n int64) (io.ReadCloser, error) {
	data, ok := s.files[f.Path]
	if !ok {
		return nil, &registry.HTTPError{Op: "download", URL: "mem://" + f.Path, Status: 404}
	}
	s.mu.Lock()
	c := openCall{Path: f.Path, Off: off, N: n, Nth: s.nopen[f.Path], At: time.Now()}
	s.nopen[f.Path]++
	s.calls = append(s.calls, c)
	s.mu.Unlock()
	if s.onOpen != nil {
		s.onOpen(c)
	}
	var ft fault
	if s.fault != nil {
		ft = s.fault(c)
	}
	if ft.openDelay > 0 {
		if err := sleepCtx(ctx, ft.openDelay); err != nil {
			return nil, err
		}
	}
	if ft.openStall {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if ft.openErr != nil {
		return nil, ft.openErr
	}
	if off < 0 || off > int64(len(data)) {
		return nil, &registry.HTTPError{Op: "download", URL: "mem://" + f.Path, Status: 416}
	}
	end := int64(len(data))
	if n >= 0 {
		end = min(end, off+n)
	}
	b := data[off:end]
	if ft.extra > 0 && end == int64(len(data)) {
		b = append(append([]byte(nil), b...), make([]byte, ft.extra)...)
	}
	return &memBody{ctx: ctx, s: s, path: f.Path, data: b, f: ft}, nil
}

func (s *memSource) servedTotal() int64 { return s.total.Load() }

func (s *memSource) servedOf(path string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served[path]
}

func (s *memSource) openCalls() []openCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]openCall(nil), s.calls...)
}

func (s *memSource) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls, s.nopen, s.served = nil, map[string]int{}, map[string]int64{}
	s.total.Store(0)
}

type memBody struct {
	ctx    context.Context
	s      *memSource
	path   string
	data   []byte
	pos    int64
	f      fault
	closed atomic.Bool
}

func (b *memBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errors.New("read on closed body")
	}
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	f := b.f
	if f.stallAfter > 0 && b.pos >= f.stallAfter {
		<-b.ctx.Done()
		return 0, b.ctx.Err()
	}
	if f.failAfter > 0 && b.pos >= f.failAfter {
		return 0, f.failErr
	}
	if f.truncAfter > 0 && b.pos >= f.truncAfter {
		return 0, io.EOF
	}
	if b.pos >= int64(len(b.data)) {
		return 0, io.EOF
	}
	n := min(int64(len(p)), int64(len(b.data))-b.pos, int64(b.s.chunk))
	for _, lim := range []int64{f.stallAfter, f.failAfter, f.truncAfter} {
		if lim > b.pos {
			n = min(n, lim-b.pos)
		}
	}
	if f.delay > 0 {
		if err := sleepCtx(b.ctx, f.delay); err != nil {
			return 0, err
		}
	}
	copy(p, b.data[b.pos:b.pos+n])
	if f.corrupt {
		p[0] ^= 0xff
	}
	b.pos += n
	b.s.total.Add(n)
	b.s.mu.Lock()
	b.s.served[b.path] += n
	b.s.mu.Unlock()
	return int(n), nil
}

func (b *memBody) Close() error {
	b.closed.Store(true)
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Digest kinds of a test file.
const (
	withSHA256 = iota // the listing gives the sha256
	gitOnly           // only the git blob sha1 (an HF non-LFS file)
	noDigest          // nothing (a plain directory)
	both              // sha256 and git sha1
)

type spec struct {
	path   string
	size   int
	digest int
}

// content returns deterministic pseudo-random bytes for a path.
func content(path string, size int) []byte {
	var seed [32]byte
	copy(seed[:], path)
	b := make([]byte, size)
	rand.NewChaCha8(seed).Read(b)
	return b
}

func sha256Hex(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func gitSHA1Hex(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// fixture builds a manifest and a source for the specs.
func fixture(t testing.TB, specs ...spec) (*registry.Manifest, *memSource) {
	t.Helper()
	m := &registry.Manifest{Name: "openai/gpt-oss-test", Revision: strings.Repeat("ab", 20), Format: "hf", Source: "mem"}
	files := map[string][]byte{}
	for _, sp := range specs {
		b := content(sp.path, sp.size)
		files[sp.path] = b
		f := registry.File{Path: sp.path, Size: int64(sp.size), Role: registry.RoleWeights}
		if sp.digest == withSHA256 || sp.digest == both {
			f.SHA256 = sha256Hex(b)
		}
		if sp.digest == gitOnly || sp.digest == both {
			f.GitSHA1 = gitSHA1Hex(b)
		}
		m.Files = append(m.Files, f)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m, newMemSource(files)
}

// copyManifest returns a copy whose files are as the source lists them.
func copyManifest(m *registry.Manifest) *registry.Manifest {
	c := *m
	c.Files = append([]registry.File(nil), m.Files...)
	return &c
}

func newStore(t testing.TB) *cache.Store {
	t.Helper()
	s, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testEngine is an engine with small buffers, so that small files exercise
// splitting and many flushes.
func testEngine(o Options) *Engine {
	e := New(o)
	e.bufSize = 64 << 10
	e.minSplit = 128 << 10
	return e
}

// checkPublished asserts that every file of m is in the store, byte for
// byte, under its sha256, that m carries the sha256, and that no partial
// download is left.
func checkPublished(t *testing.T, s *cache.Store, m *registry.Manifest, src *memSource) {
	t.Helper()
	for _, f := range m.Files {
		want := src.files[f.Path]
		if f.SHA256 != sha256Hex(want) {
			t.Errorf("%s: manifest sha256 %q, want %s", f.Path, f.SHA256, sha256Hex(want))
			continue
		}
		got, err := os.ReadFile(s.BlobPath(f.SHA256))
		if err != nil {
			t.Errorf("%s: %v", f.Path, err)
			continue
		}
		if string(got) != string(want) {
			t.Errorf("%s: published content differs (%d bytes, want %d)", f.Path, len(got), len(want))
		}
	}
	if left := partials(t, s); len(left) > 0 {
		t.Errorf("partial downloads left: %v", left)
	}
}

// partials lists the .part and .journal files in the store, less the
// finished records of digest-less files (which a Fetch leaves for its
// caller's commit).
func partials(t testing.TB, s *cache.Store) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.Root, "partial"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".journal") {
			var j journal
			if b, err := os.ReadFile(filepath.Join(s.Root, "partial", e.Name())); err == nil && json.Unmarshal(b, &j) == nil && j.Published != "" {
				continue
			}
		}
		if strings.HasSuffix(e.Name(), ".part") || strings.HasSuffix(e.Name(), ".journal") {
			out = append(out, e.Name())
		}
	}
	return out
}

// notJournaled is how many bytes of m a resumed fetch still has to download
// according to the journals in s.
func notJournaled(t testing.TB, s *cache.Store, m *registry.Manifest) int64 {
	t.Helper()
	var n int64
	for _, f := range m.Files {
		if _, ok := cachedSHA(s, m, f, FileKey(m, f)); ok {
			continue
		}
		key := FileKey(m, f)
		jp, _ := s.PartialPath(key, ".journal")
		j, err := readJournal(jp, key, f)
		if err != nil {
			t.Fatalf("%s: %v", f.Path, err)
		}
		n += f.Size
		if j != nil {
			n -= j.doneBytes()
		}
	}
	return n
}

// recorder collects events; it is deliberately not thread-safe, so that the
// race detector catches concurrent callbacks.
type recorder struct {
	events []Event
	inside bool
	t      *testing.T
	hook   func(Event)
}

func (r *recorder) cb(ev Event) {
	if r.inside {
		r.t.Errorf("progress callback called concurrently")
	}
	r.inside = true
	r.events = append(r.events, ev)
	if r.hook != nil {
		r.hook(ev)
	}
	r.inside = false
}

func (r *recorder) count(k EventKind) int {
	n := 0
	for _, ev := range r.events {
		if ev.Kind == k {
			n++
		}
	}
	return n
}
