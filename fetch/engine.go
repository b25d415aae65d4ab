package fetch

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/registry"
)

// Engine downloads manifests into a cache. It is safe for concurrent use;
// concurrent Fetches share its bandwidth cap (but not its connections).
type Engine struct {
	o       Options
	limiter *rate.Limiter // nil: no cap
	burst   int

	// Seams for tests; New sets the defaults.
	bufSize   int
	minSplit  int64
	freeSpace func(*cache.Store) (int64, error)
	writeAt   func(f *os.File, b []byte, off int64) (int, error)

	splits atomic.Int64 // parts split so far (all runs)
}

// New returns an engine with these options (zero fields take defaults).
func New(o Options) *Engine {
	o = o.withDefaults()
	e := &Engine{
		o:         o,
		bufSize:   defaultBufSize,
		minSplit:  defaultMinSplit,
		freeSpace: (*cache.Store).Free,
		writeAt:   (*os.File).WriteAt,
	}
	if o.LimitRate > 0 {
		// Reads are cut to the burst so that WaitN never asks for more.
		e.burst = int(min(max(o.LimitRate/8, 4<<10), maxRead))
		e.limiter = rate.NewLimiter(rate.Limit(o.LimitRate), e.burst)
	}
	return e
}

// Options returns the engine's options with defaults filled in.
func (e *Engine) Options() Options { return e.o }

// retry is the engine's retry policy (registry.Retry with its options).
func (e *Engine) retry() registry.Retry {
	return registry.Retry{Attempts: e.o.MaxAttempts, Base: e.o.Backoff, Max: maxBackoff, MaxRetryAfter: e.o.MaxRetryAfter}
}

// Fetch downloads every file of m that dst lacks, verifies it and publishes
// it into dst. It fills in m.Files[i].SHA256 for files that lacked one. It
// does not write the manifest: the caller commits it to the cache after.
//
// Before the first byte Fetch checks free space (see Plan). Files are
// fetched in parallel ranged parts over o.Connections requests in total;
// every byte is hashed as it lands, every request is retried with backoff
// and resumed where it stopped, and the resume journal under dst's partial/
// lets a later Fetch continue after a crash. A permanent error (a 404, a
// wrong digest, a full disk) stops the whole Fetch and keeps what can be
// resumed. When ctx ends, Fetch saves its state and returns ctx.Err().
//
// progress (which may be nil) receives events, one at a time.
func (e *Engine) Fetch(ctx context.Context, src registry.Source, m *registry.Manifest, dst *cache.Store, progress func(Event)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	plan, err := e.Plan(m, dst)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &run{
		e: e, ctx: rctx, cancel: cancel, src: src, m: m, dst: dst,
		s:           newSched(e.o.Connections, e.minSplit),
		ev:          &emitter{cb: progress, total: plan.TotalBytes, done: plan.CachedBytes + plan.ResumedBytes},
		workersDone: make(chan struct{}),
	}
	r.ev.emit(Event{Kind: EventPlan, Resumed: plan.ResumedBytes})

	// Every file to download waits for admission from the start, so they
	// are admitted in manifest order whatever order their goroutines run in.
	for i, fp := range plan.Files {
		if !fp.Cached {
			r.s.waiting[i] = true
		}
	}
	var workers sync.WaitGroup
	for range e.o.Connections {
		workers.Add(1)
		go func() {
			defer workers.Done()
			r.worker()
		}()
	}
	var files sync.WaitGroup
	for i := range plan.Files {
		files.Add(1)
		go func() {
			defer files.Done()
			if err := r.file(i, plan.Files[i]); err != nil {
				r.fail(err)
			}
		}()
	}
	go func() {
		files.Wait()
		r.s.close()
	}()
	workers.Wait()
	close(r.workersDone)
	files.Wait()
	e.splits.Add(r.s.splits)

	if err := ctx.Err(); err != nil {
		return err
	}
	if r.err != nil {
		return r.err
	}
	r.ev.emit(Event{Kind: EventDone})
	return nil
}

// run is the state of one Fetch.
type run struct {
	e      *Engine
	ctx    context.Context // cancelled on the first error
	cancel context.CancelFunc
	src    registry.Source
	m      *registry.Manifest
	dst    *cache.Store
	s      *sched
	ev     *emitter

	workersDone chan struct{} // closed once no worker touches a file

	errOnce sync.Once
	err     error
}

// fail records the first error and stops the run.
func (r *run) fail(err error) {
	if errors.Is(err, context.Canceled) && r.ctx.Err() != nil {
		return // a consequence of another failure or of the caller's cancel
	}
	r.errOnce.Do(func() {
		r.err = err
		r.cancel()
	})
}

// emitter serializes events and keeps the aggregate count.
type emitter struct {
	mu    sync.Mutex
	cb    func(Event)
	total int64
	done  int64
}

func (em *emitter) emit(ev Event) {
	em.mu.Lock()
	defer em.mu.Unlock()
	em.emitLocked(ev)
}

func (em *emitter) emitLocked(ev Event) {
	if em.cb == nil {
		return
	}
	ev.Total, ev.Done = em.total, em.done
	em.cb(ev)
}

// adjust changes the aggregate count without an event of its own (the next
// event carries it).
func (em *emitter) adjust(n int64) {
	em.mu.Lock()
	em.done += n
	em.mu.Unlock()
}

// progress counts n new bytes of ft and reports them at most every
// progressEvery per file (or when flush is set).
func (em *emitter) progress(ft *fileTask, n int64, flush bool) {
	em.mu.Lock()
	defer em.mu.Unlock()
	em.done += n
	ft.evPending += n
	if ft.evPending == 0 || em.cb == nil {
		return
	}
	now := time.Now()
	if !flush && now.Sub(ft.evLast) < progressEvery {
		return
	}
	ft.evLast = now
	b := ft.evPending
	ft.evPending = 0
	em.emitLocked(Event{Kind: EventProgress, File: ft.file, Bytes: b})
}
