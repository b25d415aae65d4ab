package registry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Retry is the retry policy every transfer in gptoss shares (the fetch
// engine's parts, metadata reads and mirror uploads, object-store parts,
// backend API calls): up to Attempts tries while the error is temporary,
// waiting an exponential backoff with full jitter (Base doubled per retry,
// at most Max) so that many parts failing together do not retry in step,
// or the server's Retry-After when it sent one (at most MaxRetryAfter).
type Retry struct {
	Attempts      int           // tries in all (≥ 1)
	Base          time.Duration // the first retry's ceiling
	Max           time.Duration // the largest ceiling (0: no cap)
	MaxRetryAfter time.Duration // cap on a server's Retry-After (0: 30 s)
	// Retryable says whether an error is worth another try (nil: every
	// error that is not Permanent).
	Retryable func(error) bool
	// OnRetry, when set, is told of each retry before its wait.
	OnRetry func(attempt int, wait time.Duration, err error)
}

// Backoff is the jittered wait before retry number attempt (1, 2, …).
func (r Retry) Backoff(attempt int) time.Duration {
	d := r.Base
	for i := 1; i < attempt && (r.Max <= 0 || d < r.Max); i++ {
		d *= 2
	}
	if r.Max > 0 {
		d = min(d, max(r.Max, r.Base))
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// Delay is the wait before retry number attempt after err: the server's
// Retry-After when err carries one, else Backoff.
func (r Retry) Delay(attempt int, err error) time.Duration {
	if ra := RetryAfterOf(err); ra > 0 {
		limit := r.MaxRetryAfter
		if limit <= 0 {
			limit = 30 * time.Second
		}
		return min(ra, limit)
	}
	return r.Backoff(attempt)
}

// Do runs do until it succeeds, fails for good, runs out of attempts or ctx
// ends, and returns its last error (ctx.Err() when ctx ended first).
func (r Retry) Do(ctx context.Context, do func() error) error {
	retryable := r.Retryable
	if retryable == nil {
		retryable = func(err error) bool { return !IsPermanent(err) }
	}
	for attempt := 1; ; attempt++ {
		err := do()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil && retryable(err) {
			return ctx.Err()
		}
		if !retryable(err) || attempt >= r.Attempts {
			return err
		}
		d := r.Delay(attempt, err)
		if r.OnRetry != nil {
			r.OnRetry(attempt, d, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
}
