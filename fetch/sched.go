package fetch

import (
	"context"
	"slices"
	"sync"
)

// sched hands parts to workers and admits files, in manifest order.
//
// A file is admitted (its parts queued) only while fewer parts than
// connections wait in the queue, so the files download roughly one after the
// other, each from its start, with the next one starting as soon as the
// current one no longer fills the connections. A worker that finds the queue
// empty, and no file waiting to be admitted, splits the in-flight part with
// the most bytes left (straggler splitting).
//
// Lock order: sched.mu, then a fileTask's mu.
type sched struct {
	mu        sync.Mutex
	conns     int
	minSplit  int64
	queue     []*part // waiting for a worker, in order
	inflight  []*part // owned by a worker
	waiting   map[int]bool
	admitting bool
	closed    bool
	changed   chan struct{} // closed and replaced on every change
	splits    int64
}

func newSched(conns int, minSplit int64) *sched {
	return &sched{conns: conns, minSplit: minSplit, waiting: map[int]bool{}, changed: make(chan struct{})}
}

func (s *sched) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// wait releases s.mu until something changes or ctx ends, then retakes it.
func (s *sched) wait(ctx context.Context) bool {
	ch := s.changed
	s.mu.Unlock()
	select {
	case <-ch:
		s.mu.Lock()
		return true
	case <-ctx.Done():
		s.mu.Lock()
		return false
	}
}

// next returns the next part for a worker, or nil when there is no more work
// (the run is closed) or ctx ended.
func (s *sched) next(ctx context.Context) *part {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ctx.Err() == nil {
		if len(s.queue) > 0 {
			p := s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			s.inflight = append(s.inflight, p)
			s.broadcastLocked() // room for admission
			return p
		}
		if len(s.waiting) == 0 && !s.admitting {
			if q := s.splitLocked(); q != nil {
				s.inflight = append(s.inflight, q)
				return q
			}
		}
		if s.closed {
			return nil
		}
		if !s.wait(ctx) {
			break
		}
	}
	return nil
}

// splitLocked cuts the in-flight part with the most unwritten bytes in two
// and returns the second half, or nil when no part has minSplit bytes left.
// The first half keeps every byte its worker may already be writing (below
// p.reserved), so two workers never write the same byte.
func (s *sched) splitLocked() *part {
	var best *part
	var bestLeft int64
	for _, p := range s.inflight {
		p.f.mu.Lock()
		left := p.end - max(p.reserved, p.start+p.written)
		p.f.mu.Unlock()
		if left > bestLeft {
			best, bestLeft = p, left
		}
	}
	if best == nil || bestLeft < s.minSplit {
		return nil
	}
	ft := best.f
	ft.mu.Lock()
	defer ft.mu.Unlock()
	from := max(best.reserved, best.start+best.written)
	left := best.end - from
	if left < s.minSplit { // it moved on meanwhile
		return nil
	}
	mid := from + left/2
	mid = min(best.end-left/4, (mid+4095)&^4095) // page-align when it costs little
	q := &part{f: ft, start: mid, end: best.end, reserved: mid}
	best.end = mid
	i := slices.Index(ft.parts, best)
	ft.parts = slices.Insert(ft.parts, i+1, q)
	s.splits++
	return q
}

// release returns a part from a worker (complete, failed or cancelled).
func (s *sched) release(p *part) {
	s.mu.Lock()
	if i := slices.Index(s.inflight, p); i >= 0 {
		s.inflight = slices.Delete(s.inflight, i, i+1)
	}
	s.broadcastLocked()
	s.mu.Unlock()
}

// admit waits until file idx may queue its parts: it is the first waiting
// file, no other file is being admitted, and the queue has room. The caller
// must call endAdmit (or, having got nothing to queue, endAdmit(nil)).
func (s *sched) admit(ctx context.Context, idx int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiting[idx] = true
	for {
		if !s.admitting && len(s.queue) < s.conns && s.firstWaitingLocked() == idx {
			delete(s.waiting, idx)
			s.admitting = true
			return nil
		}
		if !s.wait(ctx) {
			delete(s.waiting, idx)
			s.broadcastLocked()
			return ctx.Err()
		}
	}
}

func (s *sched) firstWaitingLocked() int {
	first := -1
	for i := range s.waiting {
		if first < 0 || i < first {
			first = i
		}
	}
	return first
}

// endAdmit queues the admitted file's parts.
func (s *sched) endAdmit(parts []*part) {
	s.mu.Lock()
	s.queue = append(s.queue, parts...)
	s.admitting = false
	s.broadcastLocked()
	s.mu.Unlock()
}

// close says no file will queue parts any more: idle workers exit.
func (s *sched) close() {
	s.mu.Lock()
	s.closed = true
	s.broadcastLocked()
	s.mu.Unlock()
}
