package testserve

import (
	"context"
	"io"
	"sync"

	"golang.org/x/time/rate"
)

// paceBurst is the most bytes one read passes under a cap.
const paceBurst = 32 << 10

// Pace caps the bytes per second of every reader it wraps, together (the
// test proxies' SetRate). The zero value has no cap.
type Pace struct {
	mu  sync.Mutex
	lim *rate.Limiter // nil: no cap
}

// Set caps the rate at bytesPerSec (<= 0: no cap).
func (p *Pace) Set(bytesPerSec int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if bytesPerSec <= 0 {
		p.lim = nil
		return
	}
	p.lim = rate.NewLimiter(rate.Limit(bytesPerSec), paceBurst)
}

func (p *Pace) limiter() *rate.Limiter {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lim
}

// Reader wraps rc: each read passes at most paceBurst bytes under a cap and
// waits for them (until ctx ends), and count is told the bytes read.
func (p *Pace) Reader(ctx context.Context, rc io.ReadCloser, count func(n int64)) io.ReadCloser {
	return &pacedReader{rc: rc, p: p, ctx: ctx, count: count}
}

type pacedReader struct {
	rc    io.ReadCloser
	p     *Pace
	ctx   context.Context
	count func(int64)
}

func (r *pacedReader) Read(b []byte) (int, error) {
	lim := r.p.limiter()
	if lim != nil && len(b) > paceBurst {
		b = b[:paceBurst]
	}
	n, err := r.rc.Read(b)
	if n > 0 {
		r.count(int64(n))
		if lim != nil {
			if werr := lim.WaitN(r.ctx, n); werr != nil && err == nil {
				err = werr
			}
		}
	}
	return n, err
}

func (r *pacedReader) Close() error { return r.rc.Close() }
