package fetch

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/registry"
)

func TestFetchManyFilesManyParts(t *testing.T) {
	m, src := fixture(t,
		spec{"empty.txt", 0, withSHA256},
		spec{"one.txt", 1, gitOnly},
		spec{"config.json", 100 << 10, noDigest},
		spec{"model-00001-of-00002.safetensors", 5<<20 + 123, withSHA256},
		spec{"model-00002-of-00002.safetensors", 3<<20 + 7, both},
		spec{"sub/dir/tokenizer.json", 300 << 10, gitOnly},
	)
	s := newStore(t)
	rec := &recorder{t: t}
	e := testEngine(Options{Connections: 6, PartSize: 256 << 10})
	if err := e.Fetch(context.Background(), src, m, s, rec.cb); err != nil {
		t.Fatal(err)
	}
	checkPublished(t, s, m, src)
	total := m.TotalSize()
	if got := src.servedTotal(); got != total {
		t.Errorf("served %d bytes, want exactly %d", got, total)
	}
	for _, c := range src.openCalls() {
		if c.N <= 0 || c.N > 256<<10 || c.Off+c.N > int64(len(src.files[c.Path])) {
			t.Errorf("bad range request %+v", c)
		}
	}
	if len(rec.events) == 0 || rec.events[0].Kind != EventPlan || rec.events[len(rec.events)-1].Kind != EventDone {
		t.Fatalf("events do not start with plan and end with done: %v", rec.events)
	}
	last := rec.events[len(rec.events)-1]
	if last.Total != total || last.Done != total {
		t.Errorf("done event: %d/%d, want %d/%d", last.Done, last.Total, total, total)
	}
	var progress int64
	for _, ev := range rec.events {
		if ev.Kind == EventProgress {
			progress += ev.Bytes
		}
	}
	if progress != total {
		t.Errorf("progress events add up to %d, want %d", progress, total)
	}
	if n := rec.count(EventFileDone); n != len(m.Files) {
		t.Errorf("%d file_done events, want %d", n, len(m.Files))
	}
	// Files with only a git blob id are now known by their sha256.
	for _, f := range m.Files {
		if f.GitSHA1 != "" {
			if sha, ok := s.Alias(f.GitSHA1); !ok || sha != f.SHA256 {
				t.Errorf("%s: alias %q %v, want %s", f.Path, sha, ok, f.SHA256)
			}
		}
	}
}

func TestCachedFilesAndGitAliasesAreSkipped(t *testing.T) {
	m, src := fixture(t,
		spec{"a.safetensors", 700 << 10, withSHA256},
		spec{"README.md", 10 << 10, gitOnly},
		spec{"config.json", 2 << 10, both},
	)
	listing := copyManifest(m)
	s := newStore(t)
	e := testEngine(Options{Connections: 4, PartSize: 256 << 10})
	if err := e.Fetch(context.Background(), src, m, s, nil); err != nil {
		t.Fatal(err)
	}
	src.reset()
	again := copyManifest(listing)
	rec := &recorder{t: t}
	plan, err := e.Plan(again, s)
	if err != nil {
		t.Fatal(err)
	}
	if plan.NeedBytes != 0 || plan.CachedBytes != m.TotalSize() {
		t.Errorf("plan of a cached model: %+v", plan)
	}
	if err := e.Fetch(context.Background(), src, again, s, rec.cb); err != nil {
		t.Fatal(err)
	}
	if got := src.servedTotal(); got != 0 || len(src.openCalls()) != 0 {
		t.Errorf("a cached model was downloaded again: %d bytes, %d requests", got, len(src.openCalls()))
	}
	if n := rec.count(EventFileCached); n != 3 {
		t.Errorf("%d file_cached events, want 3", n)
	}
	for i, f := range again.Files {
		if f.SHA256 != m.Files[i].SHA256 {
			t.Errorf("%s: sha256 %q not filled in from the cache", f.Path, f.SHA256)
		}
	}
}

// Two paths with the same content are downloaded once.
func TestDuplicateContentDownloadedOnce(t *testing.T) {
	m, src := fixture(t, spec{"LICENSE", 200 << 10, gitOnly}, spec{"original/LICENSE", 200 << 10, gitOnly})
	src.files["original/LICENSE"] = src.files["LICENSE"]
	m.Files[1].GitSHA1 = m.Files[0].GitSHA1
	s := newStore(t)
	if err := testEngine(Options{Connections: 4, PartSize: 64 << 10}).Fetch(context.Background(), src, m, s, nil); err != nil {
		t.Fatal(err)
	}
	checkPublished(t, s, m, src)
	if got := src.servedTotal(); got != 200<<10 {
		t.Errorf("served %d bytes, want the content once (%d)", got, 200<<10)
	}
}

func TestResumeAfterCancel(t *testing.T) {
	m, src := fixture(t,
		spec{"model-00001-of-00002.safetensors", 4 << 20, withSHA256},
		spec{"model-00002-of-00002.safetensors", 4<<20 + 5, gitOnly},
		spec{"config.json", 3 << 10, noDigest},
	)
	src.fault = func(openCall) fault { return fault{delay: 2 * time.Millisecond} }
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	total := m.TotalSize()
	rec := &recorder{t: t, hook: func(ev Event) {
		if ev.Done >= total*2/5 {
			cancel()
		}
	}}
	e := testEngine(Options{Connections: 4, PartSize: 256 << 10})
	err := e.Fetch(ctx, src, m, s, rec.cb)
	if err != context.Canceled {
		t.Fatalf("cancelled fetch returned %v, want context.Canceled", err)
	}
	first := src.servedTotal()
	left := notJournaled(t, s, copyManifest(m))
	t.Logf("first run: served %d of %d; %d not journaled", first, total, left)
	if left >= total || left == 0 {
		t.Fatalf("nothing (or everything) was journaled: %d of %d left", left, total)
	}
	// Every byte served reached the file and the journal before Fetch
	// returned.
	if left != total-first {
		t.Errorf("%d bytes served but %d journaled", first, total-left)
	}
	// What Plan sees matches the journals; preallocated partials need no
	// more disk.
	plan, err := e.Plan(copyManifest(m), s)
	if err != nil {
		t.Fatal(err)
	}
	if plan.NeedBytes != left {
		t.Errorf("plan needs %d bytes, journals say %d", plan.NeedBytes, left)
	}
	if plan.DiskBytes > plan.NeedBytes {
		t.Errorf("plan: disk %d > need %d", plan.DiskBytes, plan.NeedBytes)
	}

	// The second run uses another part size: the journal's ranges still apply.
	src.reset()
	src.fault = nil
	rec2 := &recorder{t: t}
	m2 := copyManifest(m)
	if err := testEngine(Options{Connections: 3, PartSize: 1 << 20}).Fetch(context.Background(), src, m2, s, rec2.cb); err != nil {
		t.Fatal(err)
	}
	checkPublished(t, s, m2, src)
	second := src.servedTotal()
	t.Logf("second run: served %d", second)
	if second > left {
		t.Errorf("resumed fetch downloaded %d bytes, but only %d were not journaled", second, left)
	}
	if ev := rec2.events[0]; ev.Kind != EventPlan || ev.Resumed != plan.ResumedBytes || ev.Done != total-left {
		t.Errorf("plan event %+v, want resumed %d done %d", ev, plan.ResumedBytes, total-left)
	}
}

// A crash (kill -9) leaves the journal and the partial as they were at some
// instant. Copy them mid-download (the journal first: it never claims bytes
// the partial lacks) and resume from the copy in a fresh cache.
func TestResumeAfterCrash(t *testing.T) {
	m, src := fixture(t,
		spec{"model-00001-of-00002.safetensors", 3 << 20, withSHA256},
		spec{"model-00002-of-00002.safetensors", 3<<20 + 1, both},
	)
	src.fault = func(openCall) fault { return fault{delay: time.Millisecond} }
	s := newStore(t)
	crash := t.TempDir()
	captured := false
	total := m.TotalSize()
	rec := &recorder{t: t, hook: func(ev Event) {
		// The workers go on writing (the ones not reporting progress)
		// while this copies.
		if !captured && ev.Kind == EventProgress && ev.Done >= total/3 {
			captured = snapshotPartials(t, s, crash) > 0
		}
	}}
	if err := testEngine(Options{Connections: 4, PartSize: 256 << 10}).Fetch(context.Background(), src, copyManifest(m), s, rec.cb); err != nil {
		t.Fatal(err)
	}

	s2 := newStore(t)
	ents, _ := os.ReadDir(crash)
	if len(ents) == 0 {
		t.Fatal("no partial state was captured")
	}
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(crash, e.Name()))
		if err := os.WriteFile(filepath.Join(s2.Root, "partial", e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	left := notJournaled(t, s2, m)
	t.Logf("crash image: %v; %d of %d bytes not journaled", names(ents), left, total)
	if left == total {
		t.Fatal("the crash image journals nothing")
	}
	src.reset()
	src.fault = nil
	m2 := copyManifest(m)
	if err := testEngine(Options{Connections: 4, PartSize: 256 << 10}).Fetch(context.Background(), src, m2, s2, nil); err != nil {
		t.Fatal(err)
	}
	checkPublished(t, s2, m2, src)
	if got := src.servedTotal(); got > left {
		t.Errorf("resumed fetch downloaded %d bytes, only %d were not journaled", got, left)
	}
}

func names(ents []os.DirEntry) []string {
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// snapshotPartials copies every journal, then every partial whose journal
// was copied, from s into dir, and returns how many it copied.
func snapshotPartials(t *testing.T, s *cache.Store, dir string) int {
	pdir := filepath.Join(s.Root, "partial")
	ents, _ := os.ReadDir(pdir)
	var keys []string
	n := 0
	for _, e := range ents {
		if key, ok := strings.CutSuffix(e.Name(), ".journal"); ok {
			if b, err := os.ReadFile(filepath.Join(pdir, e.Name())); err == nil {
				os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644)
				keys = append(keys, key)
			}
		}
	}
	for _, key := range keys {
		b, err := os.ReadFile(filepath.Join(pdir, key+".part"))
		if err != nil { // published meanwhile
			os.Remove(filepath.Join(dir, key+".journal"))
			continue
		}
		os.WriteFile(filepath.Join(dir, key+".part"), b, 0o644)
		n++
	}
	return n
}

func TestRetryAfterIsHonoured(t *testing.T) {
	m, src := fixture(t, spec{"model.safetensors", 1 << 20, withSHA256})
	const asked = 300 * time.Millisecond
	src.fault = func(c openCall) fault {
		if c.Nth == 0 {
			return fault{openErr: &registry.HTTPError{Op: "download", URL: "mem://x", Status: 503, RetryAfter: asked}}
		}
		return fault{}
	}
	s := newStore(t)
	rec := &recorder{t: t}
	if err := testEngine(Options{Connections: 1, Backoff: time.Millisecond}).Fetch(context.Background(), src, m, s, rec.cb); err != nil {
		t.Fatal(err)
	}
	checkPublished(t, s, m, src)
	calls := src.openCalls()
	if len(calls) < 2 {
		t.Fatalf("%d requests, want a retry", len(calls))
	}
	if waited := calls[1].At.Sub(calls[0].At); waited < asked {
		t.Errorf("retried after %s, the server asked for %s", waited, asked)
	}
	if rec.count(EventRetry) != 1 {
		t.Fatalf("%d retry events, want 1", rec.count(EventRetry))
	}
	for _, ev := range rec.events {
		if ev.Kind == EventRetry && (ev.Attempt != 1 || ev.Delay < asked || ev.Err == nil) {
			t.Errorf("retry event %+v", ev)
		}
	}
}

func TestRetryAfterIsCapped(t *testing.T) {
	m, src := fixture(t, spec{"model.safetensors", 100 << 10, withSHA256})
	src.fault = func(c openCall) fault {
		if c.Nth == 0 {
			return fault{openErr: &registry.HTTPError{Op: "download", Status: 429, RetryAfter: time.Hour}}
		}
		return fault{}
	}
	rec := &recorder{t: t}
	e := testEngine(Options{Connections: 1, Backoff: time.Millisecond, MaxRetryAfter: 20 * time.Millisecond})
	if err := e.Fetch(context.Background(), src, m, newStore(t), rec.cb); err != nil {
		t.Fatal(err)
	}
	for _, ev := range rec.events {
		if ev.Kind == EventRetry && ev.Delay > 20*time.Millisecond {
			t.Errorf("retry delay %s exceeds MaxRetryAfter", ev.Delay)
		}
	}
}

func TestTransientFailuresAreResumed(t *testing.T) {
	m, src := fixture(t,
		spec{"a.safetensors", 1 << 20, withSHA256},
		spec{"b.safetensors", 1 << 20, gitOnly},
		spec{"c.safetensors", 1 << 20, noDigest},
		spec{"d.safetensors", 1 << 20, withSHA256},
	)
	src.fault = func(c openCall) fault {
		if c.Nth >= 6 {
			return fault{}
		}
		switch c.Path {
		case "a.safetensors": // connection cut mid-body
			return fault{failAfter: 100 << 10, failErr: io.ErrUnexpectedEOF}
		case "b.safetensors":
			return fault{failAfter: 70 << 10, failErr: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}
		case "c.safetensors": // body ends early without an error
			return fault{truncAfter: 50 << 10}
		default:
			return fault{openErr: &registry.HTTPError{Op: "download", Status: 503}}
		}
	}
	s := newStore(t)
	rec := &recorder{t: t}
	if err := testEngine(Options{Connections: 4, PartSize: 256 << 10, Backoff: time.Millisecond}).Fetch(context.Background(), src, m, s, rec.cb); err != nil {
		t.Fatal(err)
	}
	checkPublished(t, s, m, src)
	// Every retry resumes at the offset reached: no byte is fetched twice.
	if got, want := src.servedTotal(), m.TotalSize(); got != want {
		t.Errorf("served %d bytes, want exactly %d", got, want)
	}
	retried := map[string]int{}
	for _, ev := range rec.events {
		if ev.Kind == EventRetry {
			retried[ev.File.Path]++
		}
	}
	if len(retried) != 4 {
		t.Errorf("retries per file: %v", retried)
	}
}

func TestPermanentErrorStopsEverything(t *testing.T) {
	m, src := fixture(t,
		spec{"missing.json", 64 << 10, withSHA256},
		spec{"big.safetensors", 4 << 20, withSHA256},
	)
	src.fault = func(c openCall) fault {
		if c.Path == "missing.json" {
			return fault{openDelay: 300 * time.Millisecond,
				openErr: &registry.HTTPError{Op: "download", URL: "mem://missing.json", Status: 404}}
		}
		return fault{delay: 20 * time.Millisecond}
	}
	s := newStore(t)
	e := testEngine(Options{Connections: 4, PartSize: 1 << 20, Backoff: time.Millisecond})
	err := e.Fetch(context.Background(), src, m, s, nil)
	if !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), "download missing.json") {
		t.Errorf("error does not name the file: %v", err)
	}
	n := 0
	for _, c := range src.openCalls() {
		if c.Path == "missing.json" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("a 404 was requested %d times", n)
	}
	// The big file's progress is kept for the next run.
	key := FileKey(m, m.Files[1])
	jp, _ := s.PartialPath(key, ".journal")
	j, err := readJournal(jp, key, m.Files[1])
	if err != nil || j == nil || j.doneBytes() == 0 {
		t.Errorf("no resumable state for the interrupted file: %v %v", j, err)
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	m, src := fixture(t, spec{"model.safetensors", 64 << 10, withSHA256})
	src.fault = func(openCall) fault { return fault{openErr: &registry.HTTPError{Op: "download", Status: 502}} }
	err := testEngine(Options{Connections: 2, MaxAttempts: 3, Backoff: time.Millisecond}).Fetch(context.Background(), src, m, newStore(t), nil)
	var h *registry.HTTPError
	if !errors.As(err, &h) || h.Status != 502 || !strings.Contains(err.Error(), "3 attempts") {
		t.Fatalf("err = %v", err)
	}
	if n := len(src.openCalls()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

func TestWrongBytesAreNeverPublished(t *testing.T) {
	cases := []struct {
		name   string
		digest int
		f      fault
		want   error
		msg    string
	}{
		{"sha256", withSHA256, fault{corrupt: true}, registry.ErrDigestMismatch, "expected " + ""},
		{"git sha1", gitOnly, fault{corrupt: true}, registry.ErrDigestMismatch, "git blob sha1"},
		{"trailing bytes", withSHA256, fault{extra: 10}, registry.ErrSizeMismatch, "more than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, src := fixture(t, spec{"model.safetensors", 600 << 10, tc.digest})
			src.fault = func(openCall) fault { return tc.f }
			s := newStore(t)
			err := testEngine(Options{Connections: 3, PartSize: 256 << 10}).Fetch(context.Background(), src, m, s, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), "download model.safetensors") || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("unclear error: %v", err)
			}
			if tc.want == registry.ErrDigestMismatch {
				want := m.Files[0].SHA256
				if want == "" {
					want = m.Files[0].GitSHA1
				}
				if !strings.Contains(err.Error(), "expected "+want) {
					t.Errorf("error does not give the expected digest: %v", err)
				}
			}
			blobs, _ := os.ReadDir(filepath.Join(s.Root, "blobs", "sha256"))
			if len(blobs) != 0 {
				t.Errorf("something was published: %v", names(blobs))
			}
			if tc.want == registry.ErrDigestMismatch {
				if left := partials(t, s); len(left) != 0 {
					t.Errorf("bad download kept: %v", left)
				}
			}
		})
	}
}

func TestPlanRefusesWithoutSpace(t *testing.T) {
	m, src := fixture(t, spec{"a.safetensors", 3 << 20, withSHA256}, spec{"b.json", 1 << 10, gitOnly})
	s := newStore(t)
	e := testEngine(Options{})
	e.freeSpace = func(*cache.Store) (int64, error) { return 1 << 20, nil }
	p, err := e.Plan(m, s)
	if !errors.Is(err, cache.ErrNoSpace) {
		t.Fatalf("Plan: err = %v, want ErrNoSpace", err)
	}
	if want := "need 3.0 MiB more, 1.0 MiB free on " + s.Root; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if p.DiskBytes != m.TotalSize() || p.FreeBytes != 1<<20 || p.NeedBytes != m.TotalSize() {
		t.Errorf("plan %+v", p)
	}
	if err := e.Fetch(context.Background(), src, m, s, nil); !errors.Is(err, cache.ErrNoSpace) {
		t.Fatalf("Fetch: err = %v, want ErrNoSpace", err)
	}
	if n := len(src.openCalls()); n != 0 {
		t.Errorf("%d requests made without disk space", n)
	}
	if left := partials(t, s); len(left) != 0 {
		t.Errorf("files created: %v", left)
	}
}

func TestFullDiskKeepsPartial(t *testing.T) {
	m, src := fixture(t, spec{"model.safetensors", 2 << 20, withSHA256})
	s := newStore(t)
	e := testEngine(Options{Connections: 2, PartSize: 256 << 10})
	var written atomic.Int64
	e.writeAt = func(f *os.File, b []byte, off int64) (int, error) {
		if written.Add(int64(len(b))) > 1<<20 {
			return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
		}
		return f.WriteAt(b, off)
	}
	err := e.Fetch(context.Background(), src, m, s, nil)
	if !errors.Is(err, cache.ErrNoSpace) || !strings.Contains(err.Error(), "download model.safetensors") {
		t.Fatalf("err = %v, want ErrNoSpace", err)
	}
	left := notJournaled(t, s, m)
	if left >= m.TotalSize() {
		t.Fatalf("nothing kept for resume")
	}
	src.reset()
	m2 := copyManifest(m)
	if err := testEngine(Options{Connections: 2, PartSize: 256 << 10}).Fetch(context.Background(), src, m2, s, nil); err != nil {
		t.Fatal(err)
	}
	checkPublished(t, s, m2, src)
	if got := src.servedTotal(); got > left {
		t.Errorf("resume downloaded %d, %d were not journaled", got, left)
	}
}

func TestStalledRequestsAreRetried(t *testing.T) {
	m, src := fixture(t,
		spec{"body-stalls.safetensors", 512 << 10, withSHA256},
		spec{"open-stalls.json", 10 << 10, withSHA256},
	)
	src.fault = func(c openCall) fault {
		if c.Nth > 0 {
			return fault{}
		}
		if c.Path == "open-stalls.json" {
			return fault{openStall: true}
		}
		return fault{stallAfter: 64 << 10}
	}
	const stall = 150 * time.Millisecond
	rec := &recorder{t: t}
	s := newStore(t)
	start := time.Now()
	if err := testEngine(Options{Connections: 2, StallTimeout: stall, Backoff: time.Millisecond}).Fetch(context.Background(), src, m, s, rec.cb); err != nil {
		t.Fatal(err)
	}
	checkPublished(t, s, m, src)
	if el := time.Since(start); el < stall {
		t.Errorf("finished in %s, before the stall timeout", el)
	}
	stalls := 0
	for _, ev := range rec.events {
		if ev.Kind == EventRetry && errors.Is(ev.Err, errStalled) {
			stalls++
		}
	}
	if stalls != 2 {
		t.Errorf("%d stall retries, want 2", stalls)
	}
	if got, want := src.servedTotal(), m.TotalSize(); got != want {
		t.Errorf("served %d, want %d (a stalled request resumes where it stopped)", got, want)
	}
}

func TestStragglerIsSplit(t *testing.T) {
	m, src := fixture(t, spec{"model.safetensors", 4 << 20, withSHA256})
	// the first request for the first part is slow, whichever of the
	// parallel requests reaches the server first (Nth counts them all)
	var slowTaken atomic.Bool
	src.fault = func(c openCall) fault {
		if c.Off == 0 && slowTaken.CompareAndSwap(false, true) {
			return fault{delay: 20 * time.Millisecond} // 32 KiB per 20 ms
		}
		return fault{}
	}
	s := newStore(t)
	e := testEngine(Options{Connections: 4, PartSize: 1 << 20})
	if err := e.Fetch(context.Background(), src, m, s, nil); err != nil {
		t.Fatal(err)
	}
	checkPublished(t, s, m, src)
	if e.splits.Load() == 0 {
		t.Fatal("no part was split")
	}
	inside := 0
	for _, c := range src.openCalls() {
		if c.Off > 0 && c.Off < 1<<20 {
			inside++
		}
	}
	if inside == 0 {
		t.Errorf("no request inside the slow part: %+v", src.openCalls())
	}
	if got, want := src.servedTotal(), m.TotalSize(); got != want {
		t.Errorf("served %d, want %d: split ranges overlap", got, want)
	}
}

func TestLimitRate(t *testing.T) {
	m, src := fixture(t, spec{"model.safetensors", 512 << 10, withSHA256})
	const limit = 512 << 10 // bytes/s
	e := testEngine(Options{Connections: 4, PartSize: 128 << 10, LimitRate: limit})
	start := time.Now()
	if err := e.Fetch(context.Background(), src, m, newStore(t), nil); err != nil {
		t.Fatal(err)
	}
	// The burst (limit/8) may go at once; the rest at the cap.
	min := time.Duration(float64(512<<10-limit/8) / limit * float64(time.Second))
	if el := time.Since(start); el < min {
		t.Errorf("512 KiB at %d B/s took %s, want at least %s", limit, el, min)
	}
}

// A file that another process is downloading is waited for, without holding
// up the other files, and then taken from the cache.
func TestWaitsForAnotherProcess(t *testing.T) {
	m, src := fixture(t, spec{"a.safetensors", 1 << 20, withSHA256}, spec{"b.safetensors", 1 << 20, withSHA256})
	s := newStore(t)
	unlock, err := s.Lock(context.Background(), "blob-"+FileKey(m, m.Files[0]))
	if err != nil {
		t.Fatal(err)
	}
	bDone := make(chan struct{})
	rec := &recorder{t: t, hook: func(ev Event) {
		if ev.Kind == EventFileDone && ev.File.Path == "b.safetensors" {
			close(bDone)
		}
	}}
	res := make(chan error, 1)
	go func() {
		res <- testEngine(Options{Connections: 4, PartSize: 256 << 10}).Fetch(context.Background(), src, m, s, rec.cb)
	}()
	select {
	case <-bDone:
	case err := <-res:
		t.Fatalf("fetch returned while a file was locked: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the unlocked file was not downloaded while the other waited")
	}
	// The "other process" finishes a.safetensors and lets go.
	if _, err := s.PutBlob(src.files["a.safetensors"]); err != nil {
		t.Fatal(err)
	}
	unlock()
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	checkPublished(t, s, m, src)
	if got := src.servedOf("a.safetensors"); got != 0 {
		t.Errorf("downloaded %d bytes of a file another process fetched", got)
	}
	if rec.count(EventFileCached) != 1 {
		t.Errorf("%d file_cached events, want 1", rec.count(EventFileCached))
	}
}

func TestConcurrentFetchesDownloadEachFileOnce(t *testing.T) {
	m, src := fixture(t,
		spec{"a.safetensors", 1 << 20, withSHA256},
		spec{"b.safetensors", 1 << 20, gitOnly},
		spec{"c.safetensors", 1 << 20, withSHA256},
	)
	src.fault = func(openCall) fault { return fault{delay: time.Millisecond} }
	s := newStore(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	ms := []*registry.Manifest{copyManifest(m), copyManifest(m)}
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = testEngine(Options{Connections: 3, PartSize: 256 << 10}).Fetch(context.Background(), src, ms[i], s, nil)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkPublished(t, s, ms[0], src)
	checkPublished(t, s, ms[1], src)
	if got, want := src.servedTotal(), m.TotalSize(); got != want {
		t.Errorf("two concurrent fetches downloaded %d bytes, want %d (each file once)", got, want)
	}
}

func TestUnusableJournalIsDiscarded(t *testing.T) {
	for name, journal := range map[string]string{
		"garbage":       "{not json",
		"other size":    `{"version":1,"key":"KEY","size":5,"partSize":65536,"done":[[0,5]],"hashed":0}`,
		"beyond prefix": `{"version":1,"key":"KEY","size":SIZE,"partSize":65536,"done":[[0,100]],"hashed":200}`,
		"lost states":   `{"version":1,"key":"KEY","size":SIZE,"partSize":65536,"done":[[0,100]],"hashed":100}`,
		"overlapping":   `{"version":1,"key":"KEY","size":SIZE,"partSize":65536,"done":[[0,100],[50,200]],"hashed":0}`,
	} {
		t.Run(name, func(t *testing.T) {
			m, src := fixture(t, spec{"model.safetensors", 300 << 10, withSHA256})
			s := newStore(t)
			key := FileKey(m, m.Files[0])
			pp, _ := s.PartialPath(key, ".part")
			jp, _ := s.PartialPath(key, ".journal")
			os.WriteFile(pp, make([]byte, 300<<10), 0o644) // zeros: trusting them would fail the digest
			j := strings.ReplaceAll(strings.ReplaceAll(journal, "KEY", key), "SIZE", "307200")
			os.WriteFile(jp, []byte(j), 0o644)
			if err := testEngine(Options{Connections: 2}).Fetch(context.Background(), src, m, s, nil); err != nil {
				t.Fatal(err)
			}
			checkPublished(t, s, m, src)
			if got := src.servedTotal(); got != m.TotalSize() {
				t.Errorf("served %d, want %d", got, m.TotalSize())
			}
		})
	}
}

func TestCancelBeforeStart(t *testing.T) {
	m, src := fixture(t, spec{"model.safetensors", 1 << 10, withSHA256})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := New(Options{}).Fetch(ctx, src, m, newStore(t), nil); err != context.Canceled {
		t.Fatalf("err = %v", err)
	}
}

func TestBackoffIsBoundedAndJittered(t *testing.T) {
	e := New(Options{Backoff: 100 * time.Millisecond})
	for attempt := 1; attempt < 40; attempt++ {
		d := e.retry().Backoff(attempt)
		if d < 0 || d > maxBackoff {
			t.Fatalf("attempt %d: backoff %s", attempt, d)
		}
	}
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[e.retry().Backoff(5)] = true
	}
	if len(seen) < 2 {
		t.Error("backoff has no jitter")
	}
}

// The engine's memory does not grow with the file: a fixed buffer per
// connection and one hashing buffer per file being downloaded.
func TestMemoryDoesNotGrowWithFileSize(t *testing.T) {
	m, src := fixture(t, spec{"model.safetensors", 64 << 20, withSHA256})
	s := newStore(t)
	e := New(Options{Connections: 4, PartSize: 4 << 20})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := e.Fetch(context.Background(), src, m, s, nil); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %s for a %s file", HumanBytes(int64(alloc)), HumanBytes(m.TotalSize()))
	if alloc > 16<<20 {
		t.Errorf("allocated %s downloading %s", HumanBytes(int64(alloc)), HumanBytes(m.TotalSize()))
	}
}

// A process killed while it rewrote a journal leaves the temp file of that
// atomic write; the next download of that file (holding the blob's lock)
// removes it, so partial/ is empty once the files are published — also for
// files with digests, which have no finished record (seen in CI: a journal
// .tmp left after a resumed S3 pull).
func TestStaleJournalTempRemoved(t *testing.T) {
	m, src := fixture(t, spec{"model.safetensors", 1 << 20, withSHA256})
	s := newStore(t)
	writeStaleJournalTemp(t, s, m, 0)
	if err := testEngine(Options{Connections: 2, PartSize: 256 << 10}).Fetch(context.Background(), src, copyManifest(m), s, nil); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(s.Root, "partial"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ents {
		t.Errorf("left in partial/ after the download: %s", d.Name())
	}
}
