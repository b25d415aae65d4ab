package hubtest

import (
	"github.com/gptoss/gptoss/internal/testserve"

	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

func contentDisposition(name string) string {
	return fmt.Sprintf("inline; filename*=UTF-8''%s; filename=%q;", url.PathEscape(name), name)
}

func (s *Server) handleResolve(w http.ResponseWriter, r *http.Request, ep Endpoint, rp *repo, revStr, file string, raw bool) {
	rv, ok := rp.resolve(revStr)
	if !ok {
		hubError(w, http.StatusNotFound, "RevisionNotFound", fmt.Sprintf("Invalid rev id: %s", revStr))
		return
	}
	if !s.authorize(w, r, rp, true) {
		return
	}
	h := w.Header()
	h.Set("X-Repo-Commit", rv.Commit)
	f := rv.files[file]
	if f == nil {
		hubError(w, http.StatusNotFound, "EntryNotFound", "Entry not found")
		return
	}
	h.Set("Accept-Ranges", "bytes")
	if r.URL.Query().Get("noContentDisposition") == "" {
		h.Set("Content-Disposition", contentDisposition(path.Base(f.Path)))
	}
	key := rp.id + "/" + f.Path
	if f.LFS && raw {
		// raw/ serves the git blob: the LFS pointer text.
		ptr := []byte(f.Pointer())
		h.Set("ETag", strconv.Quote(f.GitSHA1))
		s.sendBody(w, r, ep, key, f.Path, int64(len(ptr)), strconv.Quote(f.GitSHA1), bytesSource(ptr))
		return
	}
	if f.LFS {
		loc := s.signedURL(rp.id, f, r.URL.Query().Get("noContentDisposition") == "")
		h.Set("ETag", strconv.Quote(f.GitSHA1))
		h.Set("X-Linked-Etag", strconv.Quote(f.SHA256))
		h.Set("X-Linked-Size", strconv.FormatInt(f.Size, 10))
		h.Set("Location", loc)
		body := "Found. Redirecting to " + loc
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		h.Del("Content-Disposition")
		w.WriteHeader(http.StatusFound)
		if r.Method != http.MethodHead {
			io.WriteString(w, body)
		}
		return
	}
	etag := strconv.Quote(f.GitSHA1)
	h.Set("ETag", etag)
	s.sendBody(w, r, ep, key, f.Path, f.Size, etag, fileSource(f.Local))
}

// signedURL returns the CDN URL of an LFS file, valid for Options.URLTTL.
func (s *Server) signedURL(repoID string, f *File, disposition bool) string {
	q := url.Values{}
	q.Set("repo", repoID)
	q.Set("path", f.Path)
	q.Set("expires", strconv.FormatInt(s.opts.Now().Add(s.opts.URLTTL).Unix(), 10))
	if disposition {
		q.Set("response-content-disposition", contentDisposition(path.Base(f.Path)))
	}
	p := "/repos/" + f.SHA256[:2] + "/" + f.SHA256[2:4] + "/" + f.SHA256
	q.Set("sig", s.sign(p, q))
	return s.CDNURL + p + "?" + q.Encode()
}

// sign is HMAC-SHA256 over the path and the canonical (sorted) query without
// "sig", so a client may reorder parameters but not change any.
func (s *Server) sign(p string, q url.Values) string {
	c := url.Values{}
	for k, v := range q {
		if k != "sig" {
			c[k] = v
		}
	}
	m := hmac.New(sha256.New, s.key)
	io.WriteString(m, p+"?"+c.Encode())
	return hex.EncodeToString(m.Sum(nil))
}

func cdnError(w http.ResponseWriter, status int, code, msg string) {
	body := fmt.Sprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>", code, msg)
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// serveCDN serves LFS content at signed URLs. It never looks at tokens: a
// request carrying an Authorization header is refused with 400, as S3 refuses
// a second auth mechanism, so clients that leak the Hub token fail.
func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	rec := &recorder{ResponseWriter: w, stats: &s.stats}
	w = rec
	start := time.Now()
	defer func() {
		rec.status(http.StatusOK)
		s.logf("cdn %s %s → %d (%s)", r.Method, r.URL.Path, rec.code, time.Since(start).Round(time.Microsecond))
	}()
	s.stats.request(EndpointCDN)
	s.delay(r)
	q := r.URL.Query()
	file := q.Get("path")
	if s.fail503(w, EndpointCDN, file) {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		cdnError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.")
		return
	}
	if r.Header.Get("Authorization") != "" {
		cdnError(w, http.StatusBadRequest, "InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified")
		return
	}
	got := q.Get("sig")
	if got == "" || !hmac.Equal([]byte(got), []byte(s.sign(r.URL.Path, q))) {
		cdnError(w, http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
		return
	}
	exp, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if err != nil || s.opts.Now().Unix() > exp {
		cdnError(w, http.StatusForbidden, "AccessDenied", "Request has expired")
		return
	}
	sha := path.Base(r.URL.Path)
	var f *File
	if rp := s.lookup(q.Get("repo")); rp != nil {
		for _, rv := range rp.revs {
			if c := rv.files[file]; c != nil && c.SHA256 == sha {
				f = c
				break
			}
		}
	}
	if f == nil {
		cdnError(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}
	h := w.Header()
	etag := strconv.Quote(f.SHA256)
	h.Set("ETag", etag)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Last-Modified", commitTime.Format(http.TimeFormat))
	if cd := q.Get("response-content-disposition"); cd != "" {
		h.Set("Content-Disposition", cd)
	}
	s.sendBody(w, r, EndpointCDN, q.Get("repo")+"/"+file, file, f.Size, etag, fileSource(f.Local))
}

// source opens the bytes of a response body.
type source func() (io.ReaderAt, io.Closer, error)

func fileSource(p string) source {
	return func() (io.ReaderAt, io.Closer, error) {
		f, err := os.Open(p)
		if err != nil {
			return nil, nil, err
		}
		return f, f, nil
	}
}

func bytesSource(b []byte) source {
	return func() (io.ReaderAt, io.Closer, error) { return bytes.NewReader(b), io.NopCloser(nil), nil }
}

// parseRange parses a single-range "bytes=" header against size. It returns
// ok=false when the header is absent, malformed, or a multi-range: the
// response is then a 200 with the full body (RFC 9110 allows ignoring Range;
// this server documents that it never sends multipart/byteranges).
// unsat is true for a syntactically valid but unsatisfiable range (416).
func parseRange(h string, size int64) (start, length int64, ok, unsat bool) {
	if h == "" {
		return 0, 0, false, false
	}
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if a == "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, false, false
		}
		if n == 0 || size == 0 {
			return 0, 0, false, true
		}
		n = min(n, size)
		return size - n, n, true, false
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 {
		return 0, 0, false, false
	}
	last := size - 1
	if b != "" {
		l, err := strconv.ParseInt(b, 10, 64)
		if err != nil || l < first {
			return 0, 0, false, false
		}
		last = min(l, size-1)
	}
	if first >= size {
		return 0, 0, false, true
	}
	return first, last - first + 1, true, false
}

// sendBody writes headers and (for GET) the body of a file response,
// handling Range, If-Range, rate cap, fault injection and byte accounting.
func (s *Server) sendBody(w http.ResponseWriter, r *http.Request, ep Endpoint, key, file string, size int64, etag string, src source) {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Accept-Ranges", "bytes")
	off, n := int64(0), size
	status := http.StatusOK
	rangeHdr := r.Header.Get("Range")
	if ir := r.Header.Get("If-Range"); ir != "" && ir != etag {
		rangeHdr = "" // the representation changed: send it whole
	}
	start, length, ok, unsat := parseRange(rangeHdr, size)
	switch {
	case unsat:
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		h.Del("Content-Disposition")
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	case ok:
		off, n, status = start, length, http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, size))
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	ra, closer, err := src()
	if err != nil {
		h.Del("Content-Length")
		h.Del("Content-Range")
		hubError(w, http.StatusInternalServerError, "", "hubtest: "+err.Error())
		return
	}
	defer closer.Close()
	s.stats.fileRequest(key)
	plan := s.faults.PlanBody(ep, file, n)
	if plan.Cut != 0 {
		s.stats.fault(plan.Cut)
	}
	if plan.Corrupt {
		s.stats.fault(FaultCorrupt)
	}
	rate := s.rate.Load()
	w.WriteHeader(status)
	if n == 0 {
		return
	}

	testserve.ServeBody(w, r, ra, off, n, plan, rate, func(d int64) { s.stats.bytes(key, d) })
}
