package registry

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Sentinel errors. Wrap them with %w and the path or digest; callers test
// with errors.Is. cmd/gptoss maps them onto exit codes.
var (
	ErrNotFound        = errors.New("not found")
	ErrUnauthorized    = errors.New("authentication required")
	ErrForbidden       = errors.New("access denied")
	ErrInvalidManifest = errors.New("invalid manifest")
	ErrDigestMismatch  = errors.New("digest mismatch")
	ErrSizeMismatch    = errors.New("size mismatch")
	ErrUnsupported     = errors.New("unsupported")
	ErrInvalidRef      = errors.New("invalid model reference")
	ErrOffline         = errors.New("offline mode: network access disabled")
)

// HTTPError is a failed HTTP exchange with a source. It records enough to
// decide whether to retry (Temporary, RetryAfter) and unwraps to the matching
// sentinel (404 → ErrNotFound, 401 → ErrUnauthorized, 403 → ErrForbidden).
// URL has had its query string (signatures, tokens) removed.
type HTTPError struct {
	Op         string // "resolve", "tree", "download" …
	URL        string
	Status     int
	Code       string // a server error code such as X-Error-Code
	Message    string // the server's message, or our explanation
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	s := fmt.Sprintf("%s %s: HTTP %d", e.Op, e.URL, e.Status)
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Unwrap maps the status onto a sentinel.
func (e *HTTPError) Unwrap() error {
	switch e.Status {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		return ErrForbidden
	}
	return nil
}

// Temporary reports whether the same request may succeed later:
// 408, 429 and 5xx (except 501).
func (e *HTTPError) Temporary() bool {
	switch {
	case e.Status == http.StatusRequestTimeout, e.Status == http.StatusTooManyRequests:
		return true
	case e.Status >= 500 && e.Status != http.StatusNotImplemented:
		return true
	}
	return false
}

// Permanent marks an error that retrying cannot fix (a wrong digest, a
// malformed listing, a 404). The transfer engine stops at once on it.
type Permanent struct{ Err error }

func (p *Permanent) Error() string { return p.Err.Error() }
func (p *Permanent) Unwrap() error { return p.Err }

// IsPermanent reports whether err should not be retried: it is marked
// Permanent, is an HTTPError that is not Temporary, or wraps one of the
// sentinels that describe content rather than transport.
func IsPermanent(err error) bool {
	var p *Permanent
	if errors.As(err, &p) {
		return true
	}
	var h *HTTPError
	if errors.As(err, &h) {
		return !h.Temporary()
	}
	for _, s := range []error{ErrNotFound, ErrUnauthorized, ErrForbidden, ErrInvalidManifest,
		ErrDigestMismatch, ErrUnsupported, ErrInvalidRef, ErrOffline} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// RetryAfterOf returns the server's requested delay carried by err, if any.
func RetryAfterOf(err error) time.Duration {
	var h *HTTPError
	if errors.As(err, &h) {
		return h.RetryAfter
	}
	return 0
}

// ParseRetryAfter reads a Retry-After header: delta-seconds or an HTTP date.
// It caps the delay at max so a hostile server cannot park a download.
func ParseRetryAfter(v string, now time.Time, max time.Duration) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d < 0 {
		d = 0
	}
	if d > max {
		d = max
	}
	return d
}
