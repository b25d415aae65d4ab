package server

import (
	"context"
	"errors"
	"sync"

	"github.com/gptoss/gptoss/runtime/chat"
)

var (
	// errQueueFull: every session is busy and the waiting line is full.
	errQueueFull = errors.New("the server is busy: too many requests are waiting")
	// errClosing: the server is shutting down.
	errClosing = errors.New("the server is shutting down")
)

// scheduler hands sessions (sequences with their KV caches) to requests,
// first come first served. A request that cannot get one at once waits in a
// FIFO line of at most maxQueue; when a session frees, the longest waiting
// request gets it. Among free sessions, a request gets the one whose cache
// shares the longest prefix with its prompt.
type scheduler struct {
	mu       sync.Mutex
	free     []*chat.Session
	all      []*chat.Session
	waiting  []*waiter
	maxQueue int
	closed   bool
	busy     int
	idle     chan struct{} // closed when busy drops to 0 after close
}

type waiter struct {
	prompt []int32
	got    chan *chat.Session // buffered: release never blocks
}

func newScheduler(sessions []*chat.Session, maxQueue int) *scheduler {
	return &scheduler{free: append([]*chat.Session(nil), sessions...), all: sessions, maxQueue: maxQueue}
}

// acquire returns a session for prompt, waiting in line if none is free.
func (q *scheduler) acquire(ctx context.Context, prompt []int32) (*chat.Session, error) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil, errClosing
	}
	if len(q.free) > 0 && len(q.waiting) == 0 {
		s := q.take(prompt)
		q.mu.Unlock()
		return s, nil
	}
	if len(q.waiting) >= q.maxQueue {
		q.mu.Unlock()
		return nil, errQueueFull
	}
	w := &waiter{prompt: prompt, got: make(chan *chat.Session, 1)}
	q.waiting = append(q.waiting, w)
	q.mu.Unlock()
	select {
	case s := <-w.got:
		if s == nil {
			return nil, errClosing
		}
		return s, nil
	case <-ctx.Done():
		q.mu.Lock()
		for i, x := range q.waiting {
			if x == w {
				q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
				q.mu.Unlock()
				return nil, ctx.Err()
			}
		}
		q.mu.Unlock()
		// Handed a session as the context ended: give it back.
		if s := <-w.got; s != nil {
			q.release(s)
		}
		return nil, ctx.Err()
	}
}

// take removes the free session best for prompt. Call with mu held.
func (q *scheduler) take(prompt []int32) *chat.Session {
	best := 0
	for i, s := range q.free {
		if s.CommonPrefix(prompt) > q.free[best].CommonPrefix(prompt) {
			best = i
		}
	}
	s := q.free[best]
	q.free = append(q.free[:best], q.free[best+1:]...)
	q.busy++
	return s
}

// release gives a session back: to the first waiting request, else to the
// free list.
func (q *scheduler) release(s *chat.Session) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.busy--
	q.free = append(q.free, s)
	if len(q.waiting) > 0 && !q.closed {
		w := q.waiting[0]
		q.waiting = q.waiting[1:]
		w.got <- q.take(w.prompt)
		return
	}
	if q.closed && q.busy == 0 && q.idle != nil {
		close(q.idle)
		q.idle = nil
	}
}

// queued is the number of requests waiting for a session.
func (q *scheduler) queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting)
}

// inUse is the number of sessions generating.
func (q *scheduler) inUse() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.busy
}

// close refuses new requests and turns away those waiting; it returns a
// channel closed once no session is in use.
func (q *scheduler) close() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		for _, w := range q.waiting {
			w.got <- nil
		}
		q.waiting = nil
	}
	done := make(chan struct{})
	if q.busy == 0 {
		close(done)
	} else {
		if q.idle != nil {
			// Already waited on: chain onto it.
			prev := q.idle
			go func() { <-prev; close(done) }()
			return done
		}
		q.idle = done
	}
	return done
}
