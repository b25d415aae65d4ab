package fetch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/registry"
)

// MirrorResult says what Mirror did.
type MirrorResult struct {
	Uploaded, Skipped int
	Bytes             int64 // bytes uploaded
}

// Mirror copies a cached model to a Target: files the target already has
// are skipped (Stat), the others are uploaded with up to Connections files
// in flight, each retried with the engine's backoff on temporary errors, and
// the manifest is committed last, so the mirror is visible only when
// complete. Every blob is read from the cache, where it was verified when it
// arrived. progress gets EventFileCached for skipped files, EventFileDone
// for uploaded ones, EventRetry and EventDone; it is called one event at a
// time.
func (e *Engine) Mirror(ctx context.Context, store *cache.Store, m *registry.Manifest, dst registry.Target, progress func(Event)) (*MirrorResult, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	var (
		mu   sync.Mutex
		res  MirrorResult
		done int64
	)
	total := m.TotalSize()
	emit := func(ev Event) {
		if progress == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		ev.Total, ev.Done = total, done
		progress(ev)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, max(1, min(e.o.Connections, 8)))
	var wg sync.WaitGroup
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	for _, f := range m.Files {
		if !registry.IsSHA256Hex(f.SHA256) || !store.HasBlob(f.SHA256, f.Size) {
			return nil, fmt.Errorf("mirror %s: %s is not in the cache: %w", m.Name, f.Path, registry.ErrNotFound)
		}
	}
	for _, f := range m.Files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			uploaded, err := e.mirrorFile(ctx, store, f, dst, emit)
			if err != nil {
				fail(fmt.Errorf("mirror %s: %w", f.Path, err))
				return
			}
			mu.Lock()
			done += f.Size
			if uploaded {
				res.Uploaded++
				res.Bytes += f.Size
			} else {
				res.Skipped++
			}
			mu.Unlock()
			kind := EventFileDone
			if !uploaded {
				kind = EventFileCached
			}
			emit(Event{Kind: kind, File: f})
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return &res, firstErr
	}
	if err := ctx.Err(); err != nil {
		return &res, err
	}
	if err := dst.Commit(ctx, m); err != nil {
		return &res, fmt.Errorf("mirror %s: commit: %w", m.Name, err)
	}
	emit(Event{Kind: EventDone})
	return &res, nil
}

// mirrorFile uploads one file unless the target has it, retrying temporary
// failures with backoff (and the server's Retry-After).
func (e *Engine) mirrorFile(ctx context.Context, store *cache.Store, f registry.File, dst registry.Target, emit func(Event)) (bool, error) {
	r := e.retry()
	r.OnRetry = func(attempt int, d time.Duration, err error) {
		emit(Event{Kind: EventRetry, File: f, Attempt: attempt, Delay: d, Err: err})
	}
	uploaded := false
	err := r.Do(ctx, func() error {
		exists, err := dst.Stat(ctx, f)
		if err != nil || exists {
			return err
		}
		if err := putBlob(ctx, store, f, dst); err != nil {
			return err
		}
		uploaded = true
		return nil
	})
	return uploaded, err
}

func putBlob(ctx context.Context, store *cache.Store, f registry.File, dst registry.Target) error {
	fh, err := os.Open(store.BlobPath(f.SHA256))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return &registry.Permanent{Err: fmt.Errorf("%w: blob %s", registry.ErrNotFound, f.SHA256)}
		}
		return err
	}
	defer fh.Close()
	return dst.Put(ctx, f, fh)
}
