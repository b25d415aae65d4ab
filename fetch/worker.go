package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/registry"
)

// errStalled is the error of a request that yielded no byte for StallTimeout.
var errStalled = errors.New("stalled: no data received")

// worker is one connection: it downloads parts until there are none left.
func (r *run) worker() {
	buf := make([]byte, r.e.bufSize)
	for {
		p := r.s.next(r.ctx)
		if p == nil {
			return
		}
		err := r.fetchPart(p, buf)
		r.s.release(p)
		p.f.poke()
		if err != nil {
			r.fail(fmt.Errorf("download %s: %w", p.f.file.Path, err))
		}
	}
}

// fetchPart downloads a part, retrying failed requests from where they got
// to, until it is complete, the run stops, or the part fails for good.
func (r *run) fetchPart(p *part, buf []byte) error {
	ft := p.f
	attempt := 0
	for {
		ft.mu.Lock()
		off, end := p.start+p.written, p.end
		ft.mu.Unlock()
		if off >= end {
			return nil
		}
		got, err := r.request(p, off, end, buf)
		if err == nil {
			return nil
		}
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		var local *localError
		if errors.As(err, &local) || registry.IsPermanent(err) || errors.Is(err, cache.ErrNoSpace) {
			return err
		}
		if got > 0 {
			attempt = 0
		}
		attempt++
		if attempt >= r.e.o.MaxAttempts {
			return fmt.Errorf("giving up after %d attempts without progress at offset %d: %w", attempt, off+got, err)
		}
		delay := r.e.retry().Delay(attempt, err)
		r.ev.emit(Event{Kind: EventRetry, File: ft.file, Attempt: attempt, Delay: delay, Err: err})
		t := time.NewTimer(delay)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return r.ctx.Err()
		case <-t.C:
		}
	}
}

// request makes one ranged request for [off, end) of the part's file and
// writes what it yields, returning how many bytes reached the file. It
// returns nil once the part is complete; the part's end may move closer
// meanwhile (splitting), and the request then stops there.
func (r *run) request(p *part, off, end int64, buf []byte) (got int64, err error) {
	ft := p.f
	stall := r.e.o.StallTimeout
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	var stalled atomic.Bool
	watchdog := time.AfterFunc(stall, func() {
		stalled.Store(true)
		cancel()
	})
	defer watchdog.Stop()
	defer func() {
		if err != nil && stalled.Load() && r.ctx.Err() == nil {
			err = fmt.Errorf("%w for %s (at offset %d)", errStalled, stall, off+got)
		}
	}()

	body, err := r.src.Open(ctx, ft.file, off, end-off)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	watchdog.Reset(stall)

	pos := off // file offset of buf[0]
	filled := 0
	lastFlush := time.Now()
	flush := func() error {
		if filled == 0 {
			return nil
		}
		if _, err := r.e.writeAt(ft.fd, buf[:filled], pos); err != nil {
			return writeError(err)
		}
		ft.claim(p, int64(filled))
		r.ev.progress(ft, int64(filled), false)
		pos += int64(filled)
		got += int64(filled)
		filled = 0
		lastFlush = time.Now()
		return nil
	}
	for {
		// Reserve the bytes the next Read may bring, so that a split never
		// hands them to another worker.
		ft.mu.Lock()
		left := p.end - (pos + int64(filled))
		k := int(min(int64(len(buf)-filled), int64(maxRead), left))
		if r.e.limiter != nil {
			k = min(k, r.e.burst)
		}
		if left > 0 {
			p.reserved = pos + int64(filled) + int64(k)
		}
		ft.mu.Unlock()
		if left <= 0 {
			break
		}
		n, rerr := body.Read(buf[filled : filled+k])
		if n > 0 {
			filled += n
			watchdog.Reset(stall)
			if r.e.limiter != nil {
				watchdog.Stop()
				if werr := r.e.limiter.WaitN(ctx, n); werr != nil && rerr == nil {
					rerr = werr
				}
				watchdog.Reset(stall)
			}
		}
		if rerr != nil || filled == len(buf) || time.Since(lastFlush) >= flushEvery {
			if werr := flush(); werr != nil {
				return got, werr
			}
		}
		if rerr == io.EOF {
			ft.mu.Lock()
			complete := pos >= p.end
			ft.mu.Unlock()
			if complete {
				break
			}
			return got, fmt.Errorf("body ended at offset %d, before %d: %w", pos, end, io.ErrUnexpectedEOF)
		}
		if rerr != nil {
			return got, rerr
		}
	}
	if err := flush(); err != nil {
		return got, err
	}
	// The last part of a file: a source that has more bytes than the
	// listing said serves a different file.
	ft.mu.Lock()
	atEOF := p.end == end && end == ft.file.Size
	ft.mu.Unlock()
	if atEOF {
		var one [1]byte
		for range 3 {
			n, err := body.Read(one[:])
			if n > 0 {
				return got, &registry.Permanent{Err: fmt.Errorf("%w: the source has more than the %d bytes its listing gives",
					registry.ErrSizeMismatch, ft.file.Size)}
			}
			if err != nil {
				break
			}
		}
	}
	return got, nil
}
