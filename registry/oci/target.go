package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gptoss/gptoss/registry"
)

// Stat reports whether the registry has the file's blob (HEAD).
func (c *Client) Stat(ctx context.Context, f registry.File) (bool, error) {
	if !registry.IsSHA256Hex(f.SHA256) {
		return false, &registry.Permanent{Err: fmt.Errorf("%w: oci: %s has no sha256", registry.ErrInvalidManifest, f.Path)}
	}
	return c.hasBlob(ctx, "sha256:"+f.SHA256, f.Size)
}

func (c *Client) hasBlob(ctx context.Context, digest string, size int64) (bool, error) {
	u := c.url("blobs", digest)
	resp, err := c.do(ctx, request{op: "stat", method: http.MethodHead, url: u, push: true})
	if err != nil {
		return false, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		drain(resp)
		return resp.ContentLength < 0 || resp.ContentLength == size, nil
	case http.StatusNotFound:
		drain(resp)
		return false, nil
	}
	return false, c.httpError("stat", u, resp)
}

// maxChunkFailures bounds the resumes of one upload in one Put; the
// transfer engine retries the whole Put with backoff after that.
const maxChunkFailures = 5

// Put uploads the file's blob in chunks: POST an upload session, PATCH
// chunks with Content-Range, PUT ?digest= to finish. After a failed chunk
// it asks the registry how far the upload got (GET on the session) and
// resumes from there, or starts a new session if the registry lost it.
// The registry checks the digest before the blob becomes visible.
func (c *Client) Put(ctx context.Context, f registry.File, r io.ReaderAt) error {
	if !registry.IsSHA256Hex(f.SHA256) {
		return &registry.Permanent{Err: fmt.Errorf("%w: oci: %s has no sha256", registry.ErrInvalidManifest, f.Path)}
	}
	digest := "sha256:" + f.SHA256
	loc, err := c.startUpload(ctx)
	if err != nil {
		return err
	}
	var off int64
	fails := 0
	for off < f.Size {
		end := min(off+c.chunk, f.Size)
		next, got, err := c.patch(ctx, loc, r, off, end)
		if err == nil {
			loc, off = next, got
			fails = 0
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fails++
		if fails > maxChunkFailures || errors.Is(err, registry.ErrUnauthorized) || errors.Is(err, registry.ErrForbidden) {
			return fmt.Errorf("upload %s: %w", f.Path, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(fails) * 200 * time.Millisecond):
		}
		if sloc, soff, serr := c.uploadStatus(ctx, loc); serr == nil && soff <= f.Size {
			loc, off = sloc, soff
			continue
		}
		// The registry lost or refused the session: start over.
		if loc, err = c.startUpload(ctx); err != nil {
			return err
		}
		off = 0
	}
	return c.finishUpload(ctx, loc, digest, nil)
}

// startUpload opens an upload session and returns its URL.
func (c *Client) startUpload(ctx context.Context) (string, error) {
	u := c.url("blobs", "uploads") + "/"
	resp, err := c.do(ctx, request{op: "upload", method: http.MethodPost, url: u, push: true,
		body: func() io.Reader { return http.NoBody }, size: 0})
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusAccepted {
		return "", c.httpError("upload", u, resp)
	}
	drain(resp)
	return c.resolveLocation(resp.Header.Get("Location"))
}

// patch sends bytes [off, end) and returns the session's next URL and the
// registry's offset.
func (c *Client) patch(ctx context.Context, loc string, r io.ReaderAt, off, end int64) (string, int64, error) {
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("Content-Range", fmt.Sprintf("%d-%d", off, end-1))
	resp, err := c.do(ctx, request{op: "upload chunk", method: http.MethodPatch, url: loc, header: hdr, push: true,
		body: func() io.Reader { return io.NewSectionReader(r, off, end-off) }, size: end - off})
	if err != nil {
		return "", 0, err
	}
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusNoContent {
		return "", 0, c.httpError("upload chunk", loc, resp)
	}
	drain(resp)
	next := loc
	if l := resp.Header.Get("Location"); l != "" {
		if next, err = c.resolveLocation(l); err != nil {
			return "", 0, err
		}
	}
	got := end
	if n, ok := parseRangeEnd(resp.Header.Get("Range")); ok && n != end {
		if n > end || n < off {
			return "", 0, fmt.Errorf("upload chunk: registry reports %d bytes after sending up to %d", n, end)
		}
		got = n
	}
	return next, got, nil
}

// uploadStatus asks how many bytes the session holds.
func (c *Client) uploadStatus(ctx context.Context, loc string) (string, int64, error) {
	resp, err := c.do(ctx, request{op: "upload status", method: http.MethodGet, url: loc, push: true})
	if err != nil {
		return "", 0, err
	}
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return "", 0, c.httpError("upload status", loc, resp)
	}
	drain(resp)
	n, ok := parseRangeEnd(resp.Header.Get("Range"))
	if !ok {
		n = 0
	}
	next := loc
	if l := resp.Header.Get("Location"); l != "" {
		if next, err = c.resolveLocation(l); err != nil {
			return "", 0, err
		}
	}
	return next, n, nil
}

// parseRangeEnd reads an upload Range header "0-N" (N inclusive) as the
// byte count N+1. "0-0" is read as 0: registries send it for an empty
// session; a 1-byte session then resumes from 0, which the registry
// refuses, and the upload starts over.
func parseRangeEnd(h string) (int64, bool) {
	h = strings.TrimPrefix(strings.TrimSpace(h), "bytes=")
	a, b, ok := strings.Cut(h, "-")
	if !ok || a != "0" {
		return 0, false
	}
	n, err := strconv.ParseInt(b, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	if n == 0 {
		return 0, true
	}
	return n + 1, true
}

// finishUpload closes the session with the digest (and a final body).
func (c *Client) finishUpload(ctx context.Context, loc, digest string, body []byte) error {
	u, err := url.Parse(loc)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("digest", digest)
	u.RawQuery = q.Encode()
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/octet-stream")
	resp, err := c.do(ctx, request{op: "upload commit", method: http.MethodPut, url: u.String(), header: hdr, push: true,
		body: func() io.Reader { return bytes.NewReader(body) }, size: int64(len(body))})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusAccepted {
		err := c.httpError("upload commit", u.String(), resp)
		var he *registry.HTTPError
		if errors.As(err, &he) && he.Code == "DIGEST_INVALID" {
			return &registry.Permanent{Err: fmt.Errorf("%w: the registry computed another digest than %s: %v", registry.ErrDigestMismatch, digest, err)}
		}
		return err
	}
	drain(resp)
	return nil
}

// Commit pushes the ModelPack config blob and manifest (m.ToOCI) to the
// reference's tag (or checks it against the reference's digest). Without a
// creation time the manifest is reproducible: mirroring the same snapshot
// twice gives the same digest.
func (c *Client) Commit(ctx context.Context, m *registry.Manifest) error {
	manifest, config, err := m.ToOCI(c.created)
	if err != nil {
		return err
	}
	cd := registry.Digest(config)
	ok, err := c.hasBlob(ctx, cd, int64(len(config)))
	if err != nil {
		return err
	}
	if !ok {
		loc, err := c.startUpload(ctx)
		if err != nil {
			return err
		}
		if err := c.finishUpload(ctx, loc, cd, config); err != nil {
			return err
		}
	}
	md := registry.Digest(manifest)
	reference := c.ref.Tag
	if c.ref.Digest != "" {
		if c.ref.Digest != md {
			return &registry.Permanent{Err: fmt.Errorf("%w: the manifest's digest is %s, the reference names %s", registry.ErrDigestMismatch, md, c.ref.Digest)}
		}
		reference = md
	}
	if reference == "" {
		reference = "latest"
	}
	u := c.url("manifests", reference)
	hdr := http.Header{}
	hdr.Set("Content-Type", registry.MediaTypeOCIManifest)
	resp, err := c.do(ctx, request{op: "push manifest", method: http.MethodPut, url: u, header: hdr, push: true,
		body: func() io.Reader { return bytes.NewReader(manifest) }, size: int64(len(manifest))})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return c.httpError("push manifest", u, resp)
	}
	drain(resp)
	c.mu.Lock()
	c.resolved = md
	c.mu.Unlock()
	return nil
}

// SetCreated sets the creation time Commit records (zero: none, which keeps
// the manifest reproducible).
func (c *Client) SetCreated(t time.Time) { c.created = t }
