package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ExactReader yields exactly n bytes of r and closes c: a body that ends
// early is io.ErrUnexpectedEOF, one that would give more is cut. Sources
// wrap what Open returns in it, as the Source contract promises.
func ExactReader(r io.Reader, c io.Closer, n int64) io.ReadCloser {
	return &exactReader{r: r, c: c, left: n}
}

type exactReader struct {
	r    io.Reader
	c    io.Closer
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if errors.Is(err, io.EOF) {
		if e.left > 0 {
			return n, io.ErrUnexpectedEOF
		}
		return n, io.EOF
	}
	if e.left == 0 && err == nil {
		return n, io.EOF
	}
	return n, err
}

func (e *exactReader) Close() error { return e.c.Close() }

// CheckRange makes sure an HTTP server (who: "server", "registry") sent
// exactly bytes [off, off+n) of f: a 206 whose Content-Range matches, or a
// 200 of the whole file when the whole file was asked for. A total size
// that disagrees with f.Size is a permanent ErrSizeMismatch; a server that
// ignored the Range or sent another range is a (retryable) error.
func CheckRange(resp *http.Response, f File, off, n int64, who string) error {
	if resp.StatusCode == http.StatusOK {
		if off == 0 && n == f.Size {
			if resp.ContentLength >= 0 && resp.ContentLength != f.Size {
				return &Permanent{Err: fmt.Errorf("%w: %s: %s sends %d bytes, the listing says %d", ErrSizeMismatch, f.Path, who, resp.ContentLength, f.Size)}
			}
			return nil
		}
		return fmt.Errorf("download %s: %s ignored the Range header", f.Path, who)
	}
	cr := resp.Header.Get("Content-Range")
	var a, b, total int64
	if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &a, &b, &total); err != nil {
		return fmt.Errorf("download %s: bad Content-Range %q", f.Path, cr)
	}
	if total != f.Size {
		return &Permanent{Err: fmt.Errorf("%w: %s: %s says %d bytes, the listing says %d", ErrSizeMismatch, f.Path, who, total, f.Size)}
	}
	if a != off || b != off+n-1 {
		return fmt.Errorf("download %s: asked for bytes %d-%d, got %s", f.Path, off, off+n-1, cr)
	}
	return nil
}

// ContextReader stops a read once ctx ends, so a cancelled pull stops
// promptly even from a fast local disk.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return &ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
