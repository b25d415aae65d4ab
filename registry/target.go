package registry

import (
	"context"
	"io"
)

// Target is a place models are mirrored or exported to (an OCI registry, an
// OCI layout directory or tar, an object store). The upload side of Source.
//
// Stat reports whether the file's content (by SHA256) is already there, so
// a mirror skips it. Put uploads one file; r reads exactly f.Size bytes and
// may be read concurrently at different offsets, so a backend can split the
// upload into parts and retry a part. Put must not make the file visible
// under its final name until every byte has arrived. Commit writes the
// manifest last: a mirror becomes visible only when it is complete. Put may
// be called concurrently for different files.
type Target interface {
	Stat(ctx context.Context, f File) (exists bool, err error)
	Put(ctx context.Context, f File, r io.ReaderAt) error
	Commit(ctx context.Context, m *Manifest) error
}
