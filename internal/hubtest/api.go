package hubtest

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

var requestID atomic.Int64

// recorder captures the status code while keeping the underlying writer's
// optional interfaces reachable: ReadFrom (sendfile) directly, and Flush /
// Hijack through http.ResponseController via Unwrap.
// The status is counted in Stats before the header goes out, so a client
// never sees a response that Stats does not show yet.
type recorder struct {
	http.ResponseWriter
	stats *statsState
	code  int
}

func (r *recorder) status(code int) {
	if r.code == 0 {
		r.code = code
		r.stats.status(code)
	}
}

func (r *recorder) WriteHeader(code int) {
	r.status(code)
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.status(http.StatusOK)
	return r.ResponseWriter.Write(b)
}

func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	r.status(http.StatusOK)
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// splitPath splits an escaped URL path into unescaped segments, so that an
// encoded revision such as "refs%2Fpr%2F1" stays one segment.
func splitPath(escaped string) ([]string, error) {
	escaped = strings.TrimPrefix(escaped, "/")
	if escaped == "" {
		return nil, nil
	}
	raw := strings.Split(escaped, "/")
	out := make([]string, len(raw))
	for i, s := range raw {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, err
		}
		out[i] = u
	}
	return out, nil
}

func escapeSegment(s string) string { return url.PathEscape(s) }

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

func (s *Server) delay(r *http.Request) {
	d := time.Duration(s.headerDelay.Load())
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// hubError writes a Hub-style error: X-Error-Code / X-Error-Message headers
// and a {"error": msg} JSON body.
func hubError(w http.ResponseWriter, status int, code, msg string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	w.Header().Set("X-Error-Message", msg)
	writeJSON(w, status, map[string]string{"error": msg})
}

func bearer(r *http.Request) (tok string, present bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:]), true
	}
	return "\x00invalid", true
}

func (s *Server) validToken(tok string) bool {
	if tok == "\x00invalid" || tok == "" {
		return false
	}
	if len(s.opts.Tokens) == 0 {
		return true
	}
	for _, t := range s.opts.Tokens {
		if t == tok {
			return true
		}
	}
	return false
}

// authorize applies the Hub's access rules; it writes the error response and
// returns false when the request is refused. download is true for resolve.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, rp *repo, download bool) bool {
	tok, has := bearer(r)
	if has && !s.validToken(tok) {
		hubError(w, http.StatusUnauthorized, "", "Invalid credentials in Authorization header")
		return false
	}
	if rp.private {
		if !has {
			hubError(w, http.StatusUnauthorized, "RepoNotFound", "Repository not found")
			return false
		}
		if len(rp.privateTokens) > 0 && !rp.privateTokens[tok] {
			hubError(w, http.StatusNotFound, "RepoNotFound", "Repository not found")
			return false
		}
	}
	if download && rp.gated {
		if !has {
			hubError(w, http.StatusUnauthorized, "GatedRepo", fmt.Sprintf(
				"Access to model %s is restricted. You must have access to it and be authenticated to access it. Please log in.", rp.id))
			return false
		}
		if !rp.accepted[tok] {
			hubError(w, http.StatusForbidden, "GatedRepo", fmt.Sprintf(
				"Access to model %s is restricted and you are not in the authorized list. Visit %s/%s to ask for access.", rp.id, s.URL, rp.id))
			return false
		}
	}
	return true
}

// serveHub is the hub's handler: it routes on the escaped path.
func (s *Server) serveHub(w http.ResponseWriter, r *http.Request) {
	rec := &recorder{ResponseWriter: w, stats: &s.stats}
	w = rec
	start := time.Now()
	defer func() {
		rec.status(http.StatusOK)
		s.logf("hub %s %s → %d (%s)", r.Method, r.URL.RequestURI(), rec.code, time.Since(start).Round(time.Microsecond))
	}()
	w.Header().Set("X-Request-Id", fmt.Sprintf("Root=hubtest-%d", requestID.Add(1)))
	s.delay(r)

	segs, err := splitPath(r.URL.EscapedPath())
	if err != nil {
		s.stats.request(EndpointOther)
		hubError(w, http.StatusBadRequest, "", "Invalid path")
		return
	}
	switch {
	case len(segs) >= 2 && segs[0] == "api" && segs[1] == "whoami-v2":
		s.stats.request(EndpointWhoami)
		if !s.fail503(w, EndpointWhoami, "") {
			s.handleWhoami(w, r)
		}
		return
	case len(segs) >= 4 && segs[0] == "api" && segs[1] == "models":
		s.routeAPI(w, r, segs[2]+"/"+segs[3], segs[4:])
		return
	case len(segs) >= 5 && (segs[2] == "resolve" || segs[2] == "raw"):
		ep := EndpointResolveGet
		if r.Method == http.MethodHead {
			ep = EndpointResolveHead
		}
		file := strings.Join(segs[4:], "/")
		s.stats.request(ep)
		if s.fail503(w, ep, file) {
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			hubError(w, http.StatusMethodNotAllowed, "", "Method not allowed")
			return
		}
		rp := s.lookup(segs[0] + "/" + segs[1])
		if rp == nil {
			s.repoNotFound(w, r)
			return
		}
		s.handleResolve(w, r, ep, rp, segs[3], file, segs[2] == "raw")
		return
	}
	s.stats.request(EndpointOther)
	hubError(w, http.StatusNotFound, "", "Sorry, we can't find the page you are looking for.")
}

func (s *Server) repoNotFound(w http.ResponseWriter, r *http.Request) {
	if tok, has := bearer(r); has && !s.validToken(tok) {
		hubError(w, http.StatusUnauthorized, "", "Invalid credentials in Authorization header")
		return
	}
	hubError(w, http.StatusNotFound, "RepoNotFound", "Repository not found")
}

// fail503 applies 503 fault rules; it reports whether the request was answered.
func (s *Server) fail503(w http.ResponseWriter, ep Endpoint, file string) bool {
	ra, fire := s.faults.Check503(ep, file)
	if !fire {
		return false
	}
	s.stats.fault(Fault503)
	if ra >= 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ra))
	}
	hubError(w, http.StatusServiceUnavailable, "", "Service Unavailable (injected by hubtest)")
	return true
}

func (s *Server) routeAPI(w http.ResponseWriter, r *http.Request, repoID string, rest []string) {
	var ep Endpoint
	var rev, sub string
	switch {
	case len(rest) == 0:
		ep = EndpointInfo
	case len(rest) == 2 && rest[0] == "revision":
		ep, rev = EndpointInfo, rest[1]
	case len(rest) >= 2 && rest[0] == "tree":
		ep, rev, sub = EndpointTree, rest[1], strings.Trim(strings.Join(rest[2:], "/"), "/")
	case len(rest) == 2 && rest[0] == "paths-info":
		ep, rev = EndpointPathsInfo, rest[1]
	default:
		s.stats.request(EndpointOther)
		hubError(w, http.StatusNotFound, "", "Sorry, we can't find the page you are looking for.")
		return
	}
	s.stats.request(ep)
	if s.fail503(w, ep, "") {
		return
	}
	want := http.MethodGet
	if ep == EndpointPathsInfo {
		want = http.MethodPost
	}
	if r.Method != want && !(want == http.MethodGet && r.Method == http.MethodHead) {
		hubError(w, http.StatusMethodNotAllowed, "", "Method not allowed")
		return
	}
	rp := s.lookup(repoID)
	if rp == nil {
		s.repoNotFound(w, r)
		return
	}
	if !s.authorize(w, r, rp, false) {
		return
	}
	rv, ok := rp.resolve(rev)
	if !ok {
		hubError(w, http.StatusNotFound, "RevisionNotFound", fmt.Sprintf("Invalid rev id: %s", rev))
		return
	}
	switch ep {
	case EndpointInfo:
		s.handleInfo(w, r, rp, rv)
	case EndpointTree:
		s.handleTree(w, r, rv, sub)
	case EndpointPathsInfo:
		s.handlePathsInfo(w, r, rv)
	}
}

func (s *Server) handleWhoami(w http.ResponseWriter, r *http.Request) {
	tok, has := bearer(r)
	if !has || !s.validToken(tok) {
		hubError(w, http.StatusUnauthorized, "", "Invalid credentials in Authorization header")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"type": "user", "id": "000000000000000000000001", "name": "hubtest", "fullname": "hubtest",
		"auth": map[string]any{"type": "access_token", "accessToken": map[string]any{"displayName": "hubtest", "role": "read"}},
	})
}

type lfsSibling struct {
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
	PointerSize int64  `json:"pointerSize"`
}

type sibling struct {
	RFilename string      `json:"rfilename"`
	BlobID    string      `json:"blobId,omitempty"`
	Size      *int64      `json:"size,omitempty"`
	LFS       *lfsSibling `json:"lfs,omitempty"`
}

func queryBool(v string) bool {
	b, _ := strconv.ParseBool(v)
	return b
}

func repoObjectID(id string) string {
	h := sha1.Sum([]byte("hubtest-repo:" + id))
	return hex.EncodeToString(h[:12])
}

const timeLayout = "2006-01-02T15:04:05.000Z"

func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request, rp *repo, rv *revision) {
	q := r.URL.Query()
	blobs := queryBool(q.Get("blobs"))
	sibs := make([]sibling, 0, len(rv.Files))
	var used int64
	for i := range rv.Files {
		f := &rv.Files[i]
		used += f.Size
		sb := sibling{RFilename: f.Path}
		if blobs {
			sz := f.Size
			sb.BlobID, sb.Size = f.GitSHA1, &sz
			if f.LFS {
				sb.LFS = &lfsSibling{SHA256: f.SHA256, Size: f.Size, PointerSize: f.PointerSize}
			}
		}
		sibs = append(sibs, sb)
	}
	var gated any = false
	if rp.gated {
		gated = "manual"
	}
	org, _, _ := strings.Cut(rp.id, "/")
	full := map[string]any{
		"_id":              repoObjectID(rp.id),
		"id":               rp.id,
		"modelId":          rp.id,
		"author":           org,
		"sha":              rv.Commit,
		"lastModified":     commitTime.Format(timeLayout),
		"createdAt":        commitTime.Format(timeLayout),
		"private":          rp.private,
		"gated":            gated,
		"disabled":         false,
		"downloads":        0,
		"likes":            0,
		"library_name":     "transformers",
		"pipeline_tag":     "text-generation",
		"tags":             []string{"transformers", "safetensors", "text-generation", "license:apache-2.0"},
		"siblings":         sibs,
		"spaces":           []string{},
		"usedStorage":      used,
		"widgetData":       []any{},
		"cardData":         map[string]any{"license": "apache-2.0", "pipeline_tag": "text-generation", "library_name": "transformers"},
		"transformersInfo": map[string]any{"auto_model": "AutoModelForCausalLM", "pipeline_tag": "text-generation", "processor": "AutoTokenizer"},
	}
	if cfg := readConfig(rv); cfg != nil {
		full["config"] = cfg
	}
	expand := append(q["expand"], q["expand[]"]...)
	if len(expand) == 0 {
		writeJSON(w, http.StatusOK, full)
		return
	}
	out := map[string]any{"_id": full["_id"], "id": full["id"]}
	for _, k := range expand {
		if v, ok := full[k]; ok {
			out[k] = v
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// readConfig returns the {architectures, model_type} summary of config.json
// that the Hub puts in a model's info, or nil.
func readConfig(rv *revision) map[string]any {
	f := rv.files["config.json"]
	if f == nil || f.Size > 1<<20 {
		return nil
	}
	b, err := os.ReadFile(f.Local)
	if err != nil {
		return nil
	}
	var c struct {
		Architectures []string `json:"architectures"`
		ModelType     string   `json:"model_type"`
	}
	if json.Unmarshal(b, &c) != nil {
		return nil
	}
	return map[string]any{"architectures": c.Architectures, "model_type": c.ModelType}
}

type lfsEntry struct {
	OID         string `json:"oid"`
	Size        int64  `json:"size"`
	PointerSize int64  `json:"pointerSize"`
}

type lastCommit struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Date  string `json:"date"`
}

type treeEntry struct {
	Type               string            `json:"type"`
	OID                string            `json:"oid"`
	Size               int64             `json:"size"`
	LFS                *lfsEntry         `json:"lfs,omitempty"`
	Path               string            `json:"path"`
	LastCommit         *lastCommit       `json:"lastCommit,omitempty"`
	SecurityFileStatus map[string]string `json:"securityFileStatus,omitempty"`
}

func (rv *revision) treeEntry(e entry, expand bool) treeEntry {
	te := treeEntry{Type: "file", OID: e.OID, Path: e.Path}
	if e.Dir {
		te.Type = "directory"
	} else {
		te.Size = e.File.Size
		if e.File.LFS {
			te.LFS = &lfsEntry{OID: e.File.SHA256, Size: e.File.Size, PointerSize: e.File.PointerSize}
		}
	}
	if expand {
		te.LastCommit = &lastCommit{ID: rv.Commit, Title: "Upload folder using huggingface_hub", Date: commitTime.Format(timeLayout)}
		if !e.Dir {
			te.SecurityFileStatus = map[string]string{"status": "safe"}
		}
	}
	return te
}

func encodeCursor(off int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("hubtest:" + strconv.Itoa(off)))
}

func decodeCursor(c string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !strings.HasPrefix(string(b), "hubtest:") {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(string(b), "hubtest:"))
	return n, err == nil && n >= 0
}

func (s *Server) handleTree(w http.ResponseWriter, r *http.Request, rv *revision, dir string) {
	q := r.URL.Query()
	entries, ok := rv.children(dir, queryBool(q.Get("recursive")))
	if !ok {
		hubError(w, http.StatusNotFound, "EntryNotFound", fmt.Sprintf("%s does not exist on %q", dir, rv.Branch))
		return
	}
	limit := s.opts.PageSize
	if l, err := strconv.Atoi(q.Get("limit")); err == nil && l > 0 {
		limit = l
	}
	off := 0
	if c := q.Get("cursor"); c != "" {
		if off, ok = decodeCursor(c); !ok {
			hubError(w, http.StatusBadRequest, "", "Invalid cursor")
			return
		}
	}
	off = min(off, len(entries))
	end := min(off+limit, len(entries))
	expand := queryBool(q.Get("expand"))
	out := make([]treeEntry, 0, end-off)
	for _, e := range entries[off:end] {
		out = append(out, rv.treeEntry(e, expand))
	}
	if end < len(entries) {
		q.Set("cursor", encodeCursor(end))
		next := "http://" + r.Host + r.URL.EscapedPath() + "?" + q.Encode()
		w.Header().Set("Link", "<"+next+`>; rel="next"`)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handlePathsInfo(w http.ResponseWriter, r *http.Request, rv *revision) {
	var req struct {
		Paths  []string `json:"paths"`
		Expand any      `json:"expand"`
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	expand := false
	if ct == "application/json" {
		body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
		if err == nil {
			// "paths" may also be a single string.
			var single struct {
				Paths string `json:"paths"`
			}
			if err = json.Unmarshal(body, &req); err != nil && json.Unmarshal(body, &single) == nil {
				req.Paths, err = []string{single.Paths}, nil
				var e struct {
					Expand any `json:"expand"`
				}
				json.Unmarshal(body, &e)
				req.Expand = e.Expand
			}
		}
		if err != nil {
			hubError(w, http.StatusBadRequest, "", "Invalid JSON body")
			return
		}
		switch v := req.Expand.(type) {
		case bool:
			expand = v
		case string:
			expand = queryBool(v)
		}
	} else {
		if err := r.ParseForm(); err != nil {
			hubError(w, http.StatusBadRequest, "", "Invalid form body")
			return
		}
		req.Paths = append(r.PostForm["paths"], r.PostForm["paths[]"]...)
		expand = queryBool(r.PostForm.Get("expand"))
	}
	out := []treeEntry{}
	seen := map[string]bool{}
	for _, p := range req.Paths {
		p = strings.Trim(p, "/")
		if seen[p] {
			continue
		}
		seen[p] = true
		if i, ok := rv.byPath[p]; ok {
			out = append(out, rv.treeEntry(rv.entries[i], expand))
		}
	}
	writeJSON(w, http.StatusOK, out)
}
