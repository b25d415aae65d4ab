package objstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/gptoss/gptoss/registry"
)

// PartOptions steer UploadParts. Zero values take the defaults.
type PartOptions struct {
	PartSize    int64         // bytes per part (default 64 MiB), raised so that at most MaxParts parts are needed
	MaxParts    int           // the store's limit (default 10 000, S3's; Azure allows 50 000 blocks)
	Concurrency int           // parts in flight (default 8)
	Attempts    int           // tries per part (default 5)
	Backoff     time.Duration // first retry delay, doubled per attempt with full jitter (default 250 ms)
}

const (
	DefaultPartSize    = 64 << 20
	DefaultMaxParts    = 10_000
	DefaultConcurrency = 8
	DefaultAttempts    = 5
)

func (o PartOptions) withDefaults() PartOptions {
	if o.PartSize <= 0 {
		o.PartSize = DefaultPartSize
	}
	if o.MaxParts <= 0 {
		o.MaxParts = DefaultMaxParts
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.Backoff <= 0 {
		o.Backoff = 250 * time.Millisecond
	}
	return o
}

// PartSize returns the part size UploadParts uses for size bytes: the
// requested size, raised so the object fits in MaxParts parts.
func (o PartOptions) PartSizeFor(size int64) int64 {
	o = o.withDefaults()
	ps := o.PartSize
	if need := (size + int64(o.MaxParts) - 1) / int64(o.MaxParts); need > ps {
		ps = need
	}
	return ps
}

// NumParts is the number of parts UploadParts cuts size bytes into (at
// least one, so an empty object is one empty part).
func (o PartOptions) NumParts(size int64) int {
	ps := o.PartSizeFor(size)
	if size == 0 {
		return 1
	}
	return int((size + ps - 1) / ps)
}

// UploadParts calls put for every part of an object of size bytes, up to
// Concurrency at a time, retrying each part on its own with exponential
// backoff and full jitter (honouring a server's Retry-After) while the
// error is not permanent (registry.IsPermanent). Parts are numbered from 0
// in offset order. The first part that fails for good cancels the others
// and its error is returned; the caller then aborts the upload.
func UploadParts(ctx context.Context, size int64, o PartOptions, put func(ctx context.Context, part int, off, n int64) error) error {
	o = o.withDefaults()
	ps := o.PartSizeFor(size)
	nparts := o.NumParts(size)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan int)
	for range min(o.Concurrency, nparts) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				off := int64(i) * ps
				n := min(ps, size-off)
				if err := retryPart(ctx, o, func() error { return put(ctx, i, off, n) }); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("part %d of %d: %w", i+1, nparts, err)
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for i := range nparts {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func retryPart(ctx context.Context, o PartOptions, do func() error) error {
	return registry.Retry{Attempts: o.Attempts, Base: o.Backoff, Max: 30 * time.Second}.Do(ctx, do)
}
