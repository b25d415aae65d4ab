package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// pool is a small persistent set of worker goroutines. For splits [0,n)
// into chunks that the workers (and the caller, as worker 0) take from an
// atomic counter; one channel send per worker per call, no goroutine per
// task. Calls are serialized (a mutex), so worker w's scratch buffers are
// its own for the duration of a call.
type pool struct {
	mu      sync.Mutex
	n       int
	wake    []chan *job
	stopped bool
}

type job struct {
	fn    func(w, lo, hi int)
	n     int
	chunk int
	next  atomic.Int64
	wg    sync.WaitGroup
}

func newPool(threads int) *pool {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &pool{n: threads}
	for w := 1; w < threads; w++ {
		ch := make(chan *job, 1)
		p.wake = append(p.wake, ch)
		go func(w int) {
			for j := range ch {
				j.run(w)
				j.wg.Done()
			}
		}(w)
	}
	return p
}

func (j *job) run(w int) {
	for {
		lo := int(j.next.Add(int64(j.chunk))) - j.chunk
		if lo >= j.n {
			return
		}
		j.fn(w, lo, min(lo+j.chunk, j.n))
	}
}

// For runs fn over [0,n) in chunks of at least grain items (about four
// chunks per worker when n allows).
func (p *pool) For(n, grain int, fn func(w, lo, hi int)) {
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	chunk := max(grain, (n+4*p.n-1)/(4*p.n))
	p.mu.Lock()
	defer p.mu.Unlock()
	if chunk >= n || p.n == 1 {
		fn(0, 0, n)
		return
	}
	j := &job{fn: fn, n: n, chunk: chunk}
	helpers := min(len(p.wake), (n+chunk-1)/chunk-1)
	j.wg.Add(helpers)
	for w := 0; w < helpers; w++ {
		p.wake[w] <- j
	}
	j.run(0)
	j.wg.Wait()
}

// Close stops the workers.
func (p *pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.stopped = true
	for _, ch := range p.wake {
		close(ch)
	}
}

var (
	defOnce sync.Once
	defPool *pool
)

// shared is the pool the exported ops use (GOMAXPROCS workers).
func shared() *pool {
	defOnce.Do(func() { defPool = newPool(0) })
	return defPool
}
