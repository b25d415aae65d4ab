package registry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRetry(t *testing.T) {
	ctx := context.Background()
	temp := errors.New("temporary")
	fast := Retry{Attempts: 4, Base: time.Millisecond}

	// Temporary failures are retried until success; OnRetry sees each wait.
	calls, retries := 0, 0
	r := fast
	r.OnRetry = func(attempt int, d time.Duration, err error) {
		retries++
		if attempt != retries || err != temp || d < 0 || d > time.Millisecond<<(attempt-1) {
			t.Errorf("OnRetry(%d, %s, %v)", attempt, d, err)
		}
	}
	if err := r.Do(ctx, func() error {
		if calls++; calls < 3 {
			return temp
		}
		return nil
	}); err != nil || calls != 3 || retries != 2 {
		t.Fatalf("err %v after %d calls, %d retries", err, calls, retries)
	}
	// Attempts bound the calls; the last error is returned.
	calls = 0
	if err := fast.Do(ctx, func() error { calls++; return temp }); err != temp || calls != 4 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	// A permanent error (or one Retryable refuses) is not retried.
	calls = 0
	perm := &Permanent{Err: temp}
	if err := fast.Do(ctx, func() error { calls++; return perm }); err != perm || calls != 1 {
		t.Fatalf("permanent: err %v after %d calls", err, calls)
	}
	calls = 0
	r = fast
	r.Retryable = func(error) bool { return false }
	if err := r.Do(ctx, func() error { calls++; return temp }); err != temp || calls != 1 {
		t.Fatalf("not retryable: err %v after %d calls", err, calls)
	}
	// A cancelled context ends the loop with ctx.Err().
	cctx, cancel := context.WithCancel(ctx)
	calls = 0
	if err := fast.Do(cctx, func() error { calls++; cancel(); return temp }); err != context.Canceled || calls != 1 {
		t.Fatalf("cancelled: err %v after %d calls", err, calls)
	}
}

func TestRetryDelay(t *testing.T) {
	r := Retry{Base: 100 * time.Millisecond, Max: time.Second, MaxRetryAfter: 2 * time.Second}
	seen := map[time.Duration]bool{}
	for attempt := 1; attempt < 40; attempt++ {
		d := r.Delay(attempt, errors.New("x"))
		if d < 0 || d > time.Second {
			t.Fatalf("attempt %d: %s outside [0, 1s]", attempt, d)
		}
		seen[d] = true
	}
	if len(seen) < 2 {
		t.Error("no jitter")
	}
	if d := r.Backoff(1); d > 100*time.Millisecond {
		t.Errorf("first backoff %s > base", d)
	}
	// The server's Retry-After wins, capped.
	if d := r.Delay(1, &HTTPError{Status: 503, RetryAfter: 1500 * time.Millisecond}); d != 1500*time.Millisecond {
		t.Errorf("Retry-After 1.5s: waited %s", d)
	}
	if d := r.Delay(1, &HTTPError{Status: 503, RetryAfter: time.Minute}); d != 2*time.Second {
		t.Errorf("Retry-After 1m: waited %s, want the 2s cap", d)
	}
}
