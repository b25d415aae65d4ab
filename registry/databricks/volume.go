package databricks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/objstore"
)

// Volume is one Unity Catalog volume seen as an objstore.Bucket: keys are
// paths inside the volume.
type Volume struct {
	loc   Location // Path unused
	base  string   // scheme://host
	token string
	ua    string
	http  *http.Client
	parts objstore.PartOptions
}

// maxEntries bounds a listing (a hostile or runaway server).
const maxEntries = 1_000_000

// maxSinglePut is the most the Files API takes in one PUT.
const maxSinglePut = 5 << 30

// NewVolume returns the volume of loc in the workspace of o.
func NewVolume(loc Location, o Options) (*Volume, error) {
	base, err := baseURL(o.Host)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	if o.Token == "" {
		return nil, fmt.Errorf("%w: %s: no Databricks token: set DATABRICKS_TOKEN (a personal access token) or a token in ~/.databrickscfg", registry.ErrUnauthorized, loc)
	}
	ua := o.UserAgent
	if ua == "" {
		ua = "gptoss"
	}
	ps := o.PartSize
	if ps <= 0 {
		ps = objstore.DefaultPartSize
	}
	ps = max(ps, 5<<20)
	if o.PartSize > 0 && o.PartSize < 5<<20 {
		ps = o.PartSize // tests: the server's minimum is configurable
	}
	loc.Path = ""
	return &Volume{loc: loc, base: base, token: o.Token, ua: ua, http: newHTTPClient(),
		parts: objstore.PartOptions{PartSize: ps, MaxParts: 10_000, Concurrency: o.Concurrency}}, nil
}

func newHTTPClient() *http.Client {
	return &http.Client{Transport: registry.NewTransport(), CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // never follow: the token must not go elsewhere
	}}
}

// Describe is dbfs:/Volumes/catalog/schema/volume.
func (v *Volume) Describe() string { return v.loc.String() }

// escape builds the URL path of p (inside the volume) under an endpoint.
func (v *Volume) url(endpoint, p string) string {
	var b strings.Builder
	b.WriteString(v.base + endpoint + "/Volumes")
	for _, s := range []string{v.loc.Catalog, v.loc.Schema, v.loc.Volume} {
		b.WriteString("/" + url.PathEscape(s))
	}
	if p = strings.Trim(p, "/"); p != "" {
		for _, s := range strings.Split(p, "/") {
			b.WriteString("/" + url.PathEscape(s))
		}
	}
	return b.String()
}

// apiError is the Files API error body.
type apiError struct {
	ErrorCode string `json:"error_code"`
	Message   string `json:"message"`
}

// authError is a credential problem: it is both ErrUnauthorized and the
// HTTPError it came from.
type authError struct {
	h    *registry.HTTPError
	hint string
}

func (e *authError) Error() string   { return e.h.Error() + e.hint }
func (e *authError) Unwrap() []error { return []error{registry.ErrUnauthorized, e.h} }

// httpError turns a failed response into an error carrying the server's
// error_code and message, the URL without its query, and a hint.
func (v *Volume) httpError(op string, u string, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var ae apiError
	json.Unmarshal(body, &ae)
	u = v.display(u)
	msg := strings.Join(strings.Fields(ae.Message), " ")
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	h := &registry.HTTPError{Op: op, URL: u, Status: resp.StatusCode, Code: ae.ErrorCode, Message: msg,
		RetryAfter: registry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now(), 60*time.Second)}
	if v.token != "" && strings.Contains(h.Message, v.token) {
		h.Message = strings.ReplaceAll(h.Message, v.token, "***")
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return &authError{h, " (set DATABRICKS_TOKEN to a personal access token of this workspace)"}
	case resp.StatusCode == http.StatusForbidden && strings.Contains(strings.ToLower(msg), "invalid access token"):
		return &authError{h, " (DATABRICKS_TOKEN is not valid for " + v.base + ": expired, revoked or for another workspace)"}
	}
	return h
}

// display names a workspace URL for messages: the dbfs: path of a file or
// directory endpoint, else the URL without its query.
func (v *Volume) display(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		u = u[:i]
	}
	for _, ep := range []string{"/api/2.0/fs/files", "/api/2.0/fs/directories"} {
		if rest, ok := strings.CutPrefix(u, v.base+ep); ok {
			if p, err := url.PathUnescape(rest); err == nil {
				return Scheme + p
			}
		}
	}
	return u
}

// do sends one request to the workspace with the token.
func (v *Volume) do(ctx context.Context, method, u string, body io.Reader, size int64, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if body != nil {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	req.Header.Set("Authorization", "Bearer "+v.token)
	req.Header.Set("User-Agent", v.ua)
	resp, err := v.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s: %w", method, v.display(u), err)
	}
	return resp, nil
}

// retry runs an idempotent call up to 4 times while it fails temporarily.
func retry[T any](ctx context.Context, call func() (T, error)) (T, error) {
	var r T
	err := registry.Retry{Attempts: 4, Base: 250 * time.Millisecond, Retryable: temporary}.Do(ctx, func() error {
		var err error
		r, err = call()
		return err
	})
	return r, err
}

func temporary(err error) bool {
	var h *registry.HTTPError
	if errors.As(err, &h) {
		return h.Temporary()
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF)
}

type dirEntry struct {
	Path         string `json:"path"`
	IsDirectory  bool   `json:"is_directory"`
	FileSize     int64  `json:"file_size"`
	LastModified int64  `json:"last_modified"`
	Name         string `json:"name"`
}

type listPage struct {
	Contents      []dirEntry `json:"contents"`
	NextPageToken string     `json:"next_page_token"`
}

// listDir returns every entry of one directory (all pages); found is false
// when the directory does not exist.
func (v *Volume) listDir(ctx context.Context, dir string) (ents []dirEntry, found bool, err error) {
	tok := ""
	for pages := 0; ; pages++ {
		if pages > 100_000 {
			return nil, false, fmt.Errorf("%s/%s: the listing does not end", v.Describe(), dir)
		}
		u := v.url("/api/2.0/fs/directories", dir)
		if tok != "" {
			u += "?page_token=" + url.QueryEscape(tok)
		}
		page, err := retry(ctx, func() (*listPage, error) {
			resp, err := v.do(ctx, http.MethodGet, u, nil, 0, nil)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return nil, v.httpError("list", u, resp)
			}
			var p listPage
			if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&p); err != nil {
				return nil, &registry.Permanent{Err: fmt.Errorf("%w: list %s: bad JSON: %v", registry.ErrInvalidManifest, v.Describe(), err)}
			}
			return &p, nil
		})
		if err != nil {
			if errors.Is(err, registry.ErrNotFound) && pages == 0 {
				return nil, false, nil
			}
			return nil, false, err
		}
		ents = append(ents, page.Contents...)
		if page.NextPageToken == "" || page.NextPageToken == tok {
			return ents, true, nil
		}
		tok = page.NextPageToken
	}
}

// volumeExists tells a missing volume from a missing directory.
func (v *Volume) volumeExists(ctx context.Context) error {
	u := v.url("/api/2.0/fs/directories", "")
	_, err := retry(ctx, func() (struct{}, error) {
		resp, err := v.do(ctx, http.MethodHead, u, nil, 0, nil)
		if err != nil {
			return struct{}{}, err
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return struct{}{}, &registry.Permanent{Err: fmt.Errorf("%w: %s: volume %s does not exist, or this token cannot see it (check the catalog, schema and volume names)",
				registry.ErrNotFound, v.Describe(), v.loc.VolumeName())}
		}
		if resp.StatusCode >= 300 {
			return struct{}{}, v.httpError("list", u, resp)
		}
		return struct{}{}, nil
	})
	return err
}

// List walks the directory of prefix recursively.
func (v *Volume) List(ctx context.Context, prefix string) ([]objstore.Object, error) {
	dir, filter := prefix, ""
	if !strings.HasSuffix(prefix, "/") && prefix != "" {
		// Not a directory prefix: list its parent and keep what matches.
		if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
			dir, filter = prefix[:i+1], prefix
		} else {
			dir, filter = "", prefix
		}
	}
	var out []objstore.Object
	root := v.loc.VolumePath() + "/"
	queue := []string{strings.TrimSuffix(dir, "/")}
	seen := map[string]bool{}
	entries := 0
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if seen[d] {
			continue
		}
		seen[d] = true
		ents, found, err := v.listDir(ctx, d)
		if err != nil {
			return nil, err
		}
		if !found {
			if d == strings.TrimSuffix(dir, "/") {
				if err := v.volumeExists(ctx); err != nil {
					return nil, err
				}
			}
			continue
		}
		if entries += len(ents); entries > maxEntries {
			return nil, &registry.Permanent{Err: fmt.Errorf("%w: %s: more than %d entries under %s", registry.ErrInvalidManifest, v.Describe(), maxEntries, dir)}
		}
		for _, e := range ents {
			key, ok := strings.CutPrefix(strings.TrimSuffix(e.Path, "/"), root)
			if !ok {
				// Entries name their absolute path; fall back on the name.
				key = strings.TrimPrefix(d+"/"+e.Name, "/")
			}
			// Only entries strictly inside d, with clean paths: a listing
			// that points elsewhere (or at d itself) is not followed.
			if c, err := registry.CleanPath(key); err != nil || c != key || (d != "" && !strings.HasPrefix(key, d+"/")) {
				continue
			}
			if e.IsDirectory {
				if filter == "" || strings.HasPrefix(key+"/", filter) || strings.HasPrefix(filter, key+"/") {
					queue = append(queue, key)
				}
				continue
			}
			if filter != "" && !strings.HasPrefix(key, filter) {
				continue
			}
			out = append(out, objstore.Object{Key: key, Size: e.FileSize, ETag: strconv.FormatInt(e.LastModified, 10)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Head returns the file at key.
func (v *Volume) Head(ctx context.Context, key string) (objstore.Object, bool, error) {
	u := v.url("/api/2.0/fs/files", key)
	type res struct {
		o  objstore.Object
		ok bool
	}
	r, err := retry(ctx, func() (res, error) {
		resp, err := v.do(ctx, http.MethodHead, u, nil, 0, nil)
		if err != nil {
			return res{}, err
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusNotFound:
			return res{}, nil
		case resp.StatusCode != http.StatusOK:
			return res{}, v.httpError("head", u, resp)
		}
		o := objstore.Object{Key: key, Size: resp.ContentLength}
		if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
			o.ETag = strconv.FormatInt(t.UnixMilli(), 10)
		}
		return res{o, true}, nil
	})
	return r.o, r.ok, err
}

// Open reads n bytes of key from off (n < 0: to the end).
func (v *Volume) Open(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if off < 0 {
		return nil, &registry.Permanent{Err: fmt.Errorf("databricks: negative offset %d", off)}
	}
	if n == 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	u := v.url("/api/2.0/fs/files", key)
	hdr := http.Header{}
	switch {
	case n > 0:
		hdr.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	case off > 0:
		hdr.Set("Range", fmt.Sprintf("bytes=%d-", off))
	}
	resp, err := v.do(ctx, http.MethodGet, u, nil, 0, hdr)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if off != 0 {
			resp.Body.Close()
			return nil, fmt.Errorf("download %s: the server ignored the Range header", key)
		}
		total := resp.ContentLength
		if n < 0 {
			n = total
		} else if total >= 0 && total < n {
			resp.Body.Close()
			return nil, &registry.Permanent{Err: fmt.Errorf("%w: %s is %d bytes, %d wanted", registry.ErrSizeMismatch, key, total, n)}
		}
		if n < 0 {
			return resp.Body, nil
		}
		return registry.ExactReader(resp.Body, resp.Body, n), nil
	case http.StatusPartialContent:
		var a, b, total int64
		cr := resp.Header.Get("Content-Range")
		if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &a, &b, &total); err != nil {
			resp.Body.Close()
			return nil, fmt.Errorf("download %s: bad Content-Range %q", key, cr)
		}
		want := off + n - 1
		if n < 0 {
			want = total - 1
			n = total - off
		}
		if a != off || b != want {
			resp.Body.Close()
			return nil, fmt.Errorf("download %s: asked for bytes %d-%d, got %s", key, off, want, cr)
		}
		return registry.ExactReader(resp.Body, resp.Body, n), nil
	case http.StatusRequestedRangeNotSatisfiable:
		resp.Body.Close()
		return nil, &registry.Permanent{Err: fmt.Errorf("%w: download %s: bytes %d+%d are beyond its end (%s)", registry.ErrSizeMismatch, key, off, n, resp.Header.Get("Content-Range"))}
	}
	defer resp.Body.Close()
	return nil, v.httpError("download "+key, u, resp)
}

// Put uploads size bytes of r to key: one PUT below the part size, a
// multipart upload above it. sha256hex is not stored: the Files API has no
// object metadata (the manifest carries the digests).
func (v *Volume) Put(ctx context.Context, key string, r io.ReaderAt, size int64, sha256hex string) error {
	if size >= v.parts.PartSize && size > 0 {
		err := v.putMultipart(ctx, key, r, size)
		if !errors.Is(err, errNoMultipart) {
			return err
		}
		if size > maxSinglePut {
			return &registry.Permanent{Err: fmt.Errorf("%w: %s/%s is %d bytes: this workspace refuses multipart uploads and one upload carries at most 5 GiB",
				registry.ErrUnsupported, v.Describe(), key, size)}
		}
	}
	_, err := retry(ctx, func() (struct{}, error) {
		return struct{}{}, v.putOnce(ctx, key, io.NewSectionReader(r, 0, size), size)
	})
	return err
}

func (v *Volume) putOnce(ctx context.Context, key string, body io.Reader, size int64) error {
	u := v.url("/api/2.0/fs/files", key) + "?overwrite=true"
	resp, err := v.do(ctx, http.MethodPut, u, body, size, http.Header{"Content-Type": {"application/octet-stream"}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return v.httpError("upload", u, resp)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return nil
}

var errNoMultipart = errors.New("multipart uploads not available")

type header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func (v *Volume) postJSON(ctx context.Context, op, u string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	resp, err := v.do(ctx, http.MethodPost, u, bytes.NewReader(body), int64(len(body)), http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return v.httpError(op, u, resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out); err != nil {
		return fmt.Errorf("%s: unexpected response: %v", op, err)
	}
	return nil
}

func expireTime() string { return time.Now().Add(time.Hour).UTC().Format(time.RFC3339) }

// putMultipart is the SDKs' multipart upload through presigned URLs.
func (v *Volume) putMultipart(ctx context.Context, key string, r io.ReaderAt, size int64) error {
	fileURL := v.url("/api/2.0/fs/files", key)
	abs := v.loc.VolumePath() + "/" + key
	var init struct {
		MultipartUpload *struct {
			SessionToken string `json:"session_token"`
		} `json:"multipart_upload"`
	}
	err := v.postJSON(ctx, "upload "+key, fileURL+"?action=initiate-upload&overwrite=true", nil, &init)
	var h *registry.HTTPError
	if errors.As(err, &h) && (h.Status == http.StatusNotImplemented || (h.Status == http.StatusNotFound && h.Code == "ENDPOINT_NOT_FOUND")) {
		return errNoMultipart
	}
	if err != nil {
		return err
	}
	if init.MultipartUpload == nil || init.MultipartUpload.SessionToken == "" {
		return errNoMultipart // a resumable (GCP) session or something else: not supported here
	}
	tok := init.MultipartUpload.SessionToken
	nparts := v.parts.NumParts(size)
	etags := make([]string, nparts)
	var mu sync.Mutex
	err = objstore.UploadParts(ctx, size, v.parts, func(ctx context.Context, part int, off, n int64) error {
		var urls struct {
			UploadPartURLs []struct {
				URL        string   `json:"url"`
				PartNumber int      `json:"part_number"`
				Headers    []header `json:"headers"`
			} `json:"upload_part_urls"`
		}
		if err := v.postJSON(ctx, "upload "+key, v.base+"/api/2.0/fs/create-upload-part-urls", map[string]any{
			"path": abs, "session_token": tok, "start_part_number": part + 1, "count": 1, "expire_time": expireTime(),
		}, &urls); err != nil {
			return err
		}
		if len(urls.UploadPartURLs) == 0 || urls.UploadPartURLs[0].PartNumber != part+1 {
			return fmt.Errorf("upload %s: the workspace sent no URL for part %d", key, part+1)
		}
		pu := urls.UploadPartURLs[0]
		etag, err := v.putPart(ctx, key, pu.URL, pu.Headers, io.NewSectionReader(r, off, n), n)
		if err != nil {
			return err
		}
		mu.Lock()
		etags[part] = etag
		mu.Unlock()
		return nil
	})
	if err == nil {
		type part struct {
			PartNumber int    `json:"part_number"`
			ETag       string `json:"etag"`
		}
		parts := make([]part, nparts)
		for i, e := range etags {
			parts[i] = part{i + 1, e}
		}
		err = v.postJSON(ctx, "upload "+key, fileURL+"?action=complete-upload&session_token="+url.QueryEscape(tok), map[string]any{"parts": parts}, nil)
		if err == nil {
			return nil
		}
	}
	// Best effort: drop the parts so nothing lingers in the bucket.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var abort struct {
		AbortUploadURL struct {
			URL     string   `json:"url"`
			Headers []header `json:"headers"`
		} `json:"abort_upload_url"`
	}
	if v.postJSON(actx, "abort "+key, v.base+"/api/2.0/fs/create-abort-upload-url", map[string]any{
		"path": abs, "session_token": tok, "expire_time": expireTime()}, &abort) == nil && abort.AbortUploadURL.URL != "" {
		if req, e := http.NewRequestWithContext(actx, http.MethodDelete, abort.AbortUploadURL.URL, nil); e == nil {
			for _, h := range abort.AbortUploadURL.Headers {
				req.Header.Set(h.Name, h.Value)
			}
			if resp, e := v.http.Do(req); e == nil {
				resp.Body.Close()
			}
		}
	}
	return err
}

// putPart PUTs one part to its presigned URL, without the workspace token.
func (v *Volume) putPart(ctx context.Context, key, u string, hdrs []header, body io.Reader, n int64) (string, error) {
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "https" && !(pu.Scheme == "http" && isLoopback(pu.Hostname()))) {
		return "", &registry.Permanent{Err: fmt.Errorf("upload %s: the workspace sent an unusable part URL", key)}
	}
	redacted := pu.Scheme + "://" + pu.Host + pu.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, body)
	if err != nil {
		return "", err
	}
	req.ContentLength = n
	if n == 0 {
		req.Body = http.NoBody
	}
	for _, h := range hdrs {
		if !strings.EqualFold(h.Name, "Authorization") {
			req.Header.Set(h.Name, h.Value)
		}
	}
	req.Header.Set("User-Agent", v.ua)
	resp, err := v.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("upload %s: PUT %s: %w", key, redacted, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		msg := ""
		if i, j := bytes.Index(b, []byte("<Message>")), bytes.Index(b, []byte("</Message>")); i >= 0 && j > i {
			msg = string(b[i+9 : j])
		}
		h := &registry.HTTPError{Op: "upload " + key, URL: redacted, Status: resp.StatusCode, Message: msg,
			RetryAfter: registry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now(), 60*time.Second)}
		if resp.StatusCode == http.StatusForbidden && strings.Contains(msg, "expired") {
			// A fresh URL is minted on the next attempt.
			return "", fmt.Errorf("upload %s: part URL expired (HTTP 403)", key)
		}
		return "", h
	}
	etag := resp.Header.Get("ETag")
	if etag == "" {
		return "", fmt.Errorf("upload %s: the storage sent no ETag for a part", key)
	}
	return etag, nil
}

var _ objstore.Bucket = (*Volume)(nil)
