// Package registry is gptoss's vocabulary for models and where they come from:
// the model catalog (aliases such as "20b", formats and their file sets),
// reference parsing, the Manifest that every later stage speaks, and the
// Source interface that each backend (registry/hf, registry/local, …)
// implements.
//
// A Source only lists files and opens byte ranges. Parallelism, retries,
// resume, hashing and progress live once, in package fetch.
package registry

import (
	"context"
	"io"
)

// Source is a place models come from.
//
// Resolve turns a reference into the complete listing of the model's files at
// an immutable revision, with sizes and whatever digests the source knows.
// It returns every file at that revision; SelectFiles narrows the listing to a
// format. A missing model or revision wraps ErrNotFound; missing credentials
// ErrUnauthorized; refused ones ErrForbidden. Resolve validates what it
// returns (Manifest.Validate).
//
// Open reads n bytes of f starting at off (n < 0: to the end) from the
// revision of the last Resolve. The reader yields exactly that many bytes or
// fails (io.ErrUnexpectedEOF on a short body); it never silently returns the
// wrong range. Errors carry an *HTTPError where there was one, so the caller
// can tell temporary from permanent failures and honour Retry-After. Open may
// be called concurrently and many times for the same range (retries).
type Source interface {
	Resolve(ctx context.Context, ref Ref) (*Manifest, error)
	Open(ctx context.Context, f File, off, n int64) (io.ReadCloser, error)
}

// Describer is implemented by sources that can say where they point, with
// credentials stripped, for messages and the manifest's Source field.
type Describer interface {
	Describe() string
}
