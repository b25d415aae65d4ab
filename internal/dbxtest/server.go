package dbxtest

import (
	"github.com/gptoss/gptoss/internal/testserve"

	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Options configures a Server. The zero value serves on two random loopback
// ports with every token valid for reading and writing.
type Options struct {
	// Addr and StorageAddr are the listen addresses of the workspace API and
	// of the storage host that presigned part URLs point at (default
	// "127.0.0.1:0" each).
	Addr, StorageAddr string
	// Dir is where volumes are stored (default: a new temporary directory,
	// removed by Close).
	Dir string
	// Tokens may read and write; ReadOnlyTokens may only read and list.
	// When both are empty every bearer token may read and write (a request
	// without one is still 401).
	Tokens, ReadOnlyTokens []string
	// PageSize is the default number of directory entries per page (default
	// and maximum 1000, as on the service); a page_size parameter lowers it.
	PageSize int
	// MaxPut is the largest single-shot PUT body (default 5 GiB).
	MaxPut int64
	// MinPart is the smallest multipart part but the last (default 5 MiB).
	MinPart int64
	// NoMultipart makes initiate-upload answer 501 NOT_IMPLEMENTED, as a
	// workspace where presigned uploads are disabled does, so clients fall
	// back to single-shot PUT.
	NoMultipart bool
	// Faults are injected into matching requests (SetFaults, AddFault).
	Faults []Fault
	// Rate caps every file body at this many bytes/s per request (0 =
	// uncapped); SetRate changes it.
	Rate int64
	// Logf, when set, receives one line per request.
	Logf func(format string, args ...any)
}

// Server is a running test workspace. Safe for concurrent use.
type Server struct {
	// URL is the workspace URL (what DATABRICKS_HOST is set to), without a
	// trailing slash; StorageURL the storage host of presigned URLs.
	URL, StorageURL string
	// Dir holds the volumes: Dir/<catalog>/<schema>/<volume>/….
	Dir string

	opts    Options
	api     *http.Server
	storage *http.Server
	tmpDir  bool
	key     []byte
	faults  testserve.Set[Endpoint]
	stats   statsState
	rate    atomic.Int64

	mu       sync.Mutex
	sessions map[string]*session
	denied   map[string]bool // volumes ("c.s.v") no token may read
	wg       sync.WaitGroup
}

type session struct {
	path      string // volume path of the file being uploaded
	overwrite bool
	dir       string // where parts are kept
	etags     map[int]string
	sizes     map[int]int64
}

// New starts a server. Close stops it.
func New(o Options) (*Server, error) {
	if o.PageSize <= 0 || o.PageSize > 1000 {
		o.PageSize = 1000
	}
	if o.MaxPut <= 0 {
		o.MaxPut = 5 << 30
	}
	if o.MinPart <= 0 {
		o.MinPart = 5 << 20
	}
	s := &Server{opts: o, Dir: o.Dir, sessions: map[string]*session{}}
	if s.Dir == "" {
		d, err := os.MkdirTemp("", "dbxtest-")
		if err != nil {
			return nil, err
		}
		s.Dir, s.tmpDir = d, true
	}
	s.key = make([]byte, 32)
	rand.Read(s.key)
	s.faults.Set(o.Faults)
	s.stats.reset()
	s.rate.Store(o.Rate)
	listen := func(addr string) (net.Listener, error) {
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		return net.Listen("tcp", addr)
	}
	la, err := listen(o.Addr)
	if err != nil {
		return nil, err
	}
	ls, err := listen(o.StorageAddr)
	if err != nil {
		la.Close()
		return nil, err
	}
	s.URL = "http://" + la.Addr().String()
	s.StorageURL = "http://" + ls.Addr().String()
	s.api = &http.Server{Handler: http.HandlerFunc(s.serveAPI), ReadHeaderTimeout: 30 * time.Second}
	s.storage = &http.Server{Handler: http.HandlerFunc(s.serveStorage), ReadHeaderTimeout: 30 * time.Second}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.api.Serve(la) }()
	go func() { defer s.wg.Done(); s.storage.Serve(ls) }()
	return s, nil
}

// Start is New for a test: it fails the test on error and closes the server
// when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Close stops both listeners and removes a temporary Dir.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.api.Shutdown(ctx)
	s.storage.Shutdown(ctx)
	s.api.Close()
	s.storage.Close()
	s.wg.Wait()
	if s.tmpDir {
		os.RemoveAll(s.Dir)
	}
}

// AddVolume creates /Volumes/catalog/schema/volume and returns its
// directory on disk (seed files by writing there).
func (s *Server) AddVolume(catalog, schema, volume string) string {
	d := filepath.Join(s.Dir, catalog, schema, volume)
	if err := os.MkdirAll(d, 0o755); err != nil {
		panic(err)
	}
	return d
}

// DenyRead takes READ VOLUME away from every token on catalog.schema.volume:
// listing and reading it answer 403 PERMISSION_DENIED (the volume exists,
// the caller may not see inside it).
func (s *Server) DenyRead(catalog, schema, volume string) {
	s.mu.Lock()
	if s.denied == nil {
		s.denied = map[string]bool{}
	}
	s.denied[catalog+"."+schema+"."+volume] = true
	s.mu.Unlock()
}

// SetRate caps file bodies at bytesPerSec per request (0 lifts the cap).
func (s *Server) SetRate(bytesPerSec int64) { s.rate.Store(bytesPerSec) }

// SetFaults replaces the fault rules; AddFault appends one.
func (s *Server) SetFaults(f ...Fault) { s.faults.Set(f) }
func (s *Server) AddFault(f Fault)     { s.faults.Add(f) }

// Stats returns a copy of the counters; ResetStats zeroes them.
func (s *Server) Stats() Stats { return s.stats.snapshot() }
func (s *Server) ResetStats()  { s.stats.reset() }

// vpath is a parsed /Volumes path.
type vpath struct {
	catalog, schema, volume string
	rel                     string // slash path inside the volume, "" for its root
}

func (v vpath) String() string {
	p := "/Volumes/" + v.catalog + "/" + v.schema + "/" + v.volume
	if v.rel != "" {
		p += "/" + v.rel
	}
	return p
}

func (v vpath) volumeName() string { return v.catalog + "." + v.schema + "." + v.volume }

func (s *Server) volumeDir(v vpath) string {
	return filepath.Join(s.Dir, v.catalog, v.schema, v.volume)
}

func (s *Server) disk(v vpath) string {
	return filepath.Join(s.volumeDir(v), filepath.FromSlash(v.rel))
}

// parsePath reads the escaped path after an endpoint prefix.
func parsePath(escaped string) (vpath, error) {
	var segs []string
	for _, e := range strings.Split(strings.Trim(escaped, "/"), "/") {
		seg, err := url.PathUnescape(e)
		if err != nil {
			return vpath{}, fmt.Errorf("bad escape in path")
		}
		if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "/\\\x00") {
			return vpath{}, fmt.Errorf("invalid path segment %q", seg)
		}
		segs = append(segs, seg)
	}
	if len(segs) < 4 || segs[0] != "Volumes" {
		return vpath{}, fmt.Errorf("path must be /Volumes/<catalog>/<schema>/<volume>/…")
	}
	return vpath{segs[1], segs[2], segs[3], strings.Join(segs[4:], "/")}, nil
}

type apiError struct {
	ErrorCode string `json:"error_code"`
	Message   string `json:"message"`
}

func (s *Server) fail(w http.ResponseWriter, status int, code, msg string) {
	s.stats.do(func(st *Stats) { st.Status[status]++ })
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(apiError{code, msg})
}

func (s *Server) ok(w http.ResponseWriter, status int, v any) {
	s.stats.do(func(st *Stats) { st.Status[status]++ })
	if v == nil {
		w.WriteHeader(status)
		return
	}
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

const (
	filesPrefix = "/api/2.0/fs/files"
	dirsPrefix  = "/api/2.0/fs/directories"
)

// access is what a request's token may do.
type access int

const (
	accessNone access = iota
	accessRead
	accessWrite
)

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) (access, bool) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		s.fail(w, http.StatusUnauthorized, "UNAUTHENTICATED", "Credential was not sent or was of an unsupported type for this API.")
		return accessNone, false
	}
	if len(s.opts.Tokens) == 0 && len(s.opts.ReadOnlyTokens) == 0 {
		return accessWrite, true
	}
	for _, t := range s.opts.Tokens {
		if hmac.Equal([]byte(t), []byte(tok)) {
			return accessWrite, true
		}
	}
	for _, t := range s.opts.ReadOnlyTokens {
		if hmac.Equal([]byte(t), []byte(tok)) {
			return accessRead, true
		}
	}
	s.fail(w, http.StatusForbidden, "PERMISSION_DENIED", "Invalid access token.")
	return accessNone, false
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

func (s *Server) count(ep Endpoint) { s.stats.do(func(st *Stats) { st.Requests[ep]++ }) }

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	esc := r.URL.EscapedPath()
	s.logf("dbxtest: %s %s", r.Method, esc)
	var ep Endpoint
	var rest string
	q := r.URL.Query()
	switch {
	case strings.HasPrefix(esc, filesPrefix+"/"):
		rest = strings.TrimPrefix(esc, filesPrefix)
		switch r.Method {
		case http.MethodGet:
			ep = EndpointGet
		case http.MethodHead:
			ep = EndpointHead
		case http.MethodPut:
			ep = EndpointPut
		case http.MethodDelete:
			ep = EndpointDelete
		case http.MethodPost:
			switch q.Get("action") {
			case "initiate-upload":
				ep = EndpointInitiate
			case "complete-upload":
				ep = EndpointComplete
			}
		}
	case strings.HasPrefix(esc, dirsPrefix+"/"):
		rest = strings.TrimPrefix(esc, dirsPrefix)
		switch r.Method {
		case http.MethodGet:
			ep = EndpointList
		case http.MethodHead:
			ep = EndpointDirHead
		case http.MethodPut:
			ep = EndpointMkdir
		case http.MethodDelete:
			ep = EndpointDelete
		}
	case esc == "/api/2.0/fs/create-upload-part-urls" && r.Method == http.MethodPost:
		ep = EndpointPartURLs
	case esc == "/api/2.0/fs/create-abort-upload-url" && r.Method == http.MethodPost:
		ep = EndpointAbortURL
	}
	if ep == "" {
		s.count(EndpointOther)
		s.fail(w, http.StatusNotFound, "ENDPOINT_NOT_FOUND", fmt.Sprintf("No API found for '%s %s'", r.Method, esc))
		return
	}
	s.count(ep)
	acc, ok := s.authorize(w, r)
	if !ok {
		return
	}
	var v vpath
	if rest != "" {
		var err error
		if v, err = parsePath(rest); err != nil {
			s.fail(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", err.Error())
			return
		}
	}
	if ra, fire := s.faults.Check503(ep, v.rel); fire {
		s.stats.do(func(st *Stats) { st.Faults[Fault503]++ })
		if ra > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(ra))
		}
		s.fail(w, http.StatusServiceUnavailable, "TEMPORARILY_UNAVAILABLE", "The service is temporarily unavailable. Please retry.")
		return
	}
	write := ep == EndpointPut || ep == EndpointMkdir || ep == EndpointDelete || ep == EndpointInitiate ||
		ep == EndpointComplete || ep == EndpointPartURLs || ep == EndpointAbortURL
	if rest != "" {
		if fi, err := os.Stat(s.volumeDir(v)); err != nil || !fi.IsDir() {
			s.fail(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("Volume '%s' does not exist.", v.volumeName()))
			return
		}
		s.mu.Lock()
		denied := s.denied[v.volumeName()]
		s.mu.Unlock()
		if denied {
			s.fail(w, http.StatusForbidden, "PERMISSION_DENIED", fmt.Sprintf("User does not have READ VOLUME on Volume '%s'.", v.volumeName()))
			return
		}
		if write && acc < accessWrite {
			s.fail(w, http.StatusForbidden, "PERMISSION_DENIED", fmt.Sprintf("User does not have WRITE VOLUME on Volume '%s'.", v.volumeName()))
			return
		}
	}
	switch ep {
	case EndpointList:
		s.list(w, r, v)
	case EndpointDirHead:
		if fi, err := os.Stat(s.disk(v)); err != nil || !fi.IsDir() {
			s.fail(w, http.StatusNotFound, "NOT_FOUND", "The directory being accessed is not found.")
			return
		}
		s.ok(w, http.StatusOK, nil)
	case EndpointMkdir:
		if fi, err := os.Stat(s.disk(v)); err == nil && !fi.IsDir() {
			s.fail(w, http.StatusConflict, "ALREADY_EXISTS", "A file exists at "+v.String())
			return
		}
		if err := s.mkdirs(v); err != nil {
			s.fail(w, http.StatusConflict, "ALREADY_EXISTS", err.Error())
			return
		}
		s.ok(w, http.StatusNoContent, nil)
	case EndpointGet, EndpointHead:
		s.get(w, r, ep, v)
	case EndpointPut:
		s.put(w, r, v)
	case EndpointDelete:
		s.delete(w, r, v, strings.HasPrefix(esc, dirsPrefix))
	case EndpointInitiate:
		s.initiate(w, r, v)
	case EndpointComplete:
		s.complete(w, r, v)
	case EndpointPartURLs:
		if acc < accessWrite {
			s.fail(w, http.StatusForbidden, "PERMISSION_DENIED", "User does not have WRITE VOLUME.")
			return
		}
		s.partURLs(w, r)
	case EndpointAbortURL:
		if acc < accessWrite {
			s.fail(w, http.StatusForbidden, "PERMISSION_DENIED", "User does not have WRITE VOLUME.")
			return
		}
		s.abortURL(w, r)
	}
}

// mkdirs creates v and its parents inside the volume; a file in the way is
// an error.
func (s *Server) mkdirs(v vpath) error {
	if v.rel == "" {
		return nil
	}
	d := s.volumeDir(v)
	for _, seg := range strings.Split(v.rel, "/") {
		d = filepath.Join(d, seg)
		fi, err := os.Stat(d)
		if err == nil && !fi.IsDir() {
			return fmt.Errorf("a file exists at %s", d[len(s.Dir):])
		}
		if err != nil {
			if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		}
	}
	return nil
}

type dirEntry struct {
	Path         string `json:"path"`
	IsDirectory  bool   `json:"is_directory"`
	FileSize     int64  `json:"file_size,omitempty"`
	LastModified int64  `json:"last_modified,omitempty"`
	Name         string `json:"name"`
}

type listResponse struct {
	Contents      []dirEntry `json:"contents,omitempty"`
	NextPageToken string     `json:"next_page_token,omitempty"`
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, v vpath) {
	d := s.disk(v)
	fi, err := os.Stat(d)
	if err != nil || !fi.IsDir() {
		s.fail(w, http.StatusNotFound, "NOT_FOUND", "The directory being accessed is not found.")
		return
	}
	q := r.URL.Query()
	size := s.opts.PageSize
	if ps := q.Get("page_size"); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 0 {
			s.fail(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "page_size must be a non-negative integer")
			return
		}
		if n > 0 {
			size = min(n, 1000)
		}
	}
	after := ""
	if tok := q.Get("page_token"); tok != "" {
		name, ok := s.openToken(tok, v.String(), size)
		if !ok {
			s.fail(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "Invalid page token.")
			return
		}
		after = name
	}
	ents, err := os.ReadDir(d)
	if err != nil {
		s.fail(w, http.StatusInternalServerError, "INTERNAL_ERROR", err.Error())
		return
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	var resp listResponse
	for _, e := range ents {
		if e.Name() <= after && after != "" {
			continue
		}
		if len(resp.Contents) == size {
			resp.NextPageToken = s.pageToken(resp.Contents[len(resp.Contents)-1].Name, v.String(), size)
			break
		}
		p := v.String() + "/" + e.Name()
		info, err := e.Info()
		if err != nil {
			continue
		}
		de := dirEntry{Path: p, Name: e.Name(), IsDirectory: e.IsDir()}
		if e.IsDir() {
			de.Path += "/"
		} else if info.Mode().IsRegular() {
			de.FileSize = info.Size()
			de.LastModified = info.ModTime().UnixMilli()
		} else {
			continue
		}
		resp.Contents = append(resp.Contents, de)
	}
	s.ok(w, http.StatusOK, resp)
}

// pageToken is opaque to clients: the last name returned, bound to the
// directory and page size (the service requires the other parameters to
// match), signed.
func (s *Server) pageToken(last, dir string, size int) string {
	msg := last + "\x00" + dir + "\x00" + strconv.Itoa(size)
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString([]byte(last)) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:12])
}

func (s *Server) openToken(tok, dir string, size int) (string, bool) {
	a, _, ok := strings.Cut(tok, ".")
	if !ok {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil {
		return "", false
	}
	return string(b), hmac.Equal([]byte(s.pageToken(string(b), dir, size)), []byte(tok))
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, ep Endpoint, v vpath) {
	p := s.disk(v)
	fh, err := os.Open(p)
	if err != nil {
		s.fail(w, http.StatusNotFound, "NOT_FOUND", "The file being accessed is not found.")
		return
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil || !fi.Mode().IsRegular() || v.rel == "" {
		s.fail(w, http.StatusNotFound, "NOT_FOUND", "The file being accessed is not found.")
		return
	}
	size := fi.Size()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Last-Modified", fi.ModTime().UTC().Format(http.TimeFormat))
	off, n, status := int64(0), size, http.StatusOK
	if ep == EndpointGet {
		start, length, ok, unsat := parseRange(r.Header.Get("Range"), size)
		switch {
		case unsat:
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			s.fail(w, http.StatusRequestedRangeNotSatisfiable, "INVALID_PARAMETER_VALUE", "The requested range is not satisfiable.")
			return
		case ok:
			off, n, status = start, length, http.StatusPartialContent
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, size))
		}
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	s.stats.do(func(st *Stats) { st.Status[status]++ })
	if ep == EndpointHead {
		w.WriteHeader(status)
		return
	}
	key := v.String()
	s.stats.do(func(st *Stats) { st.FileRequests[key]++ })
	plan := s.faults.PlanBody(ep, v.rel, n)
	if plan.Cut != 0 {
		s.stats.do(func(st *Stats) { st.Faults[plan.Cut]++ })
	}
	if plan.Corrupt {
		s.stats.do(func(st *Stats) { st.Faults[FaultCorrupt]++ })
	}
	w.WriteHeader(status)
	if n == 0 {
		return
	}
	rate := s.rate.Load()
	testserve.ServeBody(w, r, fh, off, n, plan, rate, func(d int64) {
		s.stats.do(func(st *Stats) { st.BodyBytes[key] += d; st.TotalBodyBytes += d })
	})
}

// parseRange reads one "bytes=" range. ok: a satisfiable single range;
// unsat: a well-formed range beyond the end; neither: ignore the header.
func parseRange(h string, size int64) (start, length int64, ok, unsat bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	if a == "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, false, false
		}
		if n == 0 {
			return 0, 0, false, true
		}
		n = min(n, size)
		return size - n, n, size > 0, size == 0
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 {
		return 0, 0, false, false
	}
	last := size - 1
	if b != "" {
		if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
			return 0, 0, false, false
		}
	}
	if first >= size {
		return 0, 0, false, true
	}
	last = min(last, size-1)
	return first, last - first + 1, true, false
}

func boolParam(q url.Values, name string) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return false, nil
	}
	return strconv.ParseBool(v)
}

// tempFile makes a file in the server's staging area (same filesystem as
// the volumes, so publishing is a rename).
func (s *Server) tempFile() (*os.File, error) {
	d := filepath.Join(s.Dir, ".staging")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	return os.CreateTemp(d, "put-*")
}

// publish renames a complete temp file to v, creating parents; refuses to
// replace an existing file unless overwrite, or a directory ever.
func (s *Server) publish(tmp string, v vpath, overwrite bool) (int, string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dst := s.disk(v)
	if fi, err := os.Stat(dst); err == nil {
		if fi.IsDir() {
			return http.StatusConflict, "ALREADY_EXISTS", "A directory exists at " + v.String()
		}
		if !overwrite {
			return http.StatusConflict, "ALREADY_EXISTS", "The file being created already exists."
		}
	}
	parent := v
	parent.rel = path.Dir(v.rel)
	if parent.rel == "." {
		parent.rel = ""
	}
	if err := s.mkdirs(parent); err != nil {
		return http.StatusConflict, "ALREADY_EXISTS", err.Error()
	}
	if err := os.Rename(tmp, dst); err != nil {
		return http.StatusInternalServerError, "INTERNAL_ERROR", err.Error()
	}
	return 0, "", ""
}

func (s *Server) put(w http.ResponseWriter, r *http.Request, v vpath) {
	if v.rel == "" {
		s.fail(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "the path names the volume, not a file")
		return
	}
	overwrite, err := boolParam(r.URL.Query(), "overwrite")
	if err != nil {
		s.fail(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "overwrite must be true or false")
		return
	}
	if r.ContentLength > s.opts.MaxPut {
		s.fail(w, http.StatusRequestEntityTooLarge, "INVALID_PARAMETER_VALUE",
			fmt.Sprintf("The file is larger than the %d bytes a single upload may carry; use a multipart upload.", s.opts.MaxPut))
		return
	}
	if fi, err := os.Stat(s.disk(v)); err == nil && !overwrite && !fi.IsDir() {
		s.fail(w, http.StatusConflict, "ALREADY_EXISTS", "The file being created already exists.")
		return
	}
	tmp, err := s.tempFile()
	if err != nil {
		s.fail(w, http.StatusInternalServerError, "INTERNAL_ERROR", err.Error())
		return
	}
	defer os.Remove(tmp.Name())
	key := v.String()
	n, err := io.Copy(tmp, &countingReader{r: io.LimitReader(r.Body, s.opts.MaxPut+1), add: func(k int64) {
		s.stats.do(func(st *Stats) { st.PutBytes[key] += k })
	}})
	cerr := tmp.Close()
	if err != nil || cerr != nil {
		// The client went away mid-body: nothing is published.
		s.fail(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "incomplete request body")
		return
	}
	if n > s.opts.MaxPut {
		s.fail(w, http.StatusRequestEntityTooLarge, "INVALID_PARAMETER_VALUE", "The file is too large for a single upload; use a multipart upload.")
		return
	}
	if r.ContentLength >= 0 && n != r.ContentLength {
		s.fail(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "incomplete request body")
		return
	}
	if st, code, msg := s.publish(tmp.Name(), v, overwrite); st != 0 {
		s.fail(w, st, code, msg)
		return
	}
	s.ok(w, http.StatusNoContent, nil)
}

type countingReader struct {
	r   io.Reader
	add func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.add(int64(n))
	}
	return n, err
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, v vpath, dir bool) {
	p := s.disk(v)
	fi, err := os.Stat(p)
	if err != nil || fi.IsDir() != dir || v.rel == "" {
		s.fail(w, http.StatusNotFound, "NOT_FOUND", "The file or directory being deleted is not found.")
		return
	}
	if err := os.Remove(p); err != nil {
		s.fail(w, http.StatusBadRequest, "DIRECTORY_NOT_EMPTY", "The directory being deleted is not empty.")
		return
	}
	s.ok(w, http.StatusNoContent, nil)
}

// --- multipart upload ---

func (s *Server) newToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) initiate(w http.ResponseWriter, r *http.Request, v vpath) {
	if s.opts.NoMultipart {
		s.fail(w, http.StatusNotImplemented, "NOT_IMPLEMENTED", "Multipart uploads are not enabled in this workspace.")
		return
	}
	if v.rel == "" {
		s.fail(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "the path names the volume, not a file")
		return
	}
	overwrite, err := boolParam(r.URL.Query(), "overwrite")
	if err != nil {
		s.fail(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "overwrite must be true or false")
		return
	}
	if fi, err := os.Stat(s.disk(v)); err == nil && (fi.IsDir() || !overwrite) {
		s.fail(w, http.StatusConflict, "ALREADY_EXISTS", "The file being created already exists.")
		return
	}
	tok := s.newToken()
	d := filepath.Join(s.Dir, ".uploads", tok)
	if err := os.MkdirAll(d, 0o755); err != nil {
		s.fail(w, http.StatusInternalServerError, "INTERNAL_ERROR", err.Error())
		return
	}
	s.mu.Lock()
	s.sessions[tok] = &session{path: v.String(), overwrite: overwrite, dir: d, etags: map[int]string{}, sizes: map[int]int64{}}
	s.mu.Unlock()
	s.ok(w, http.StatusOK, map[string]any{"multipart_upload": map[string]string{"session_token": tok}})
}

type header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type partURL struct {
	URL        string   `json:"url"`
	PartNumber int      `json:"part_number"`
	Headers    []header `json:"headers"`
}

func (s *Server) sessionFor(w http.ResponseWriter, p, tok string) *session {
	s.mu.Lock()
	ss := s.sessions[tok]
	s.mu.Unlock()
	if ss == nil || ss.path != p {
		s.fail(w, http.StatusNotFound, "NOT_FOUND", "The upload session does not exist.")
		return nil
	}
	return ss
}

func (s *Server) partURLs(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Path            string `json:"path"`
		SessionToken    string `json:"session_token"`
		StartPartNumber int    `json:"start_part_number"`
		Count           int    `json:"count"`
		ExpireTime      string `json:"expire_time"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		s.fail(w, http.StatusBadRequest, "MALFORMED_REQUEST", "Invalid JSON given in the body of the request")
		return
	}
	exp, err := time.Parse(time.RFC3339, req.ExpireTime)
	if err != nil || req.StartPartNumber < 1 || req.Count < 1 || req.StartPartNumber+req.Count-1 > 10000 {
		s.fail(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "start_part_number, count and expire_time (RFC 3339) are required; parts are numbered 1..10000")
		return
	}
	if s.sessionFor(w, req.Path, req.SessionToken) == nil {
		return
	}
	var out []partURL
	for i := 0; i < req.Count; i++ {
		pn := req.StartPartNumber + i
		rel := fmt.Sprintf("/upload/%s/%d", req.SessionToken, pn)
		out = append(out, partURL{URL: s.StorageURL + s.presign(http.MethodPut, rel, exp), PartNumber: pn,
			Headers: []header{{"Content-Type", "application/octet-stream"}}})
	}
	s.ok(w, http.StatusOK, map[string]any{"upload_part_urls": out})
}

func (s *Server) abortURL(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Path         string `json:"path"`
		SessionToken string `json:"session_token"`
		ExpireTime   string `json:"expire_time"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		s.fail(w, http.StatusBadRequest, "MALFORMED_REQUEST", "Invalid JSON given in the body of the request")
		return
	}
	exp, err := time.Parse(time.RFC3339, req.ExpireTime)
	if err != nil {
		s.fail(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "expire_time (RFC 3339) is required")
		return
	}
	if s.sessionFor(w, req.Path, req.SessionToken) == nil {
		return
	}
	rel := "/abort/" + req.SessionToken
	s.ok(w, http.StatusOK, map[string]any{"abort_upload_url": map[string]any{"url": s.StorageURL + s.presign(http.MethodDelete, rel, exp), "headers": []header{}}})
}

func (s *Server) presign(method, rel string, exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return rel + "?X-Expires=" + e + "&X-Signature=" + s.sign(method, rel, e)
}

func (s *Server) sign(method, rel, exp string) string {
	mac := hmac.New(sha256.New, s.key)
	fmt.Fprintf(mac, "%s\n%s\n%s", method, rel, exp)
	return hex.EncodeToString(mac.Sum(nil))
}

func (s *Server) storageFail(w http.ResponseWriter, status int, code, msg string) {
	s.stats.do(func(st *Stats) { st.Status[status]++ })
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>", code, msg)
}

// serveStorage is the cloud storage host presigned URLs point at.
func (s *Server) serveStorage(w http.ResponseWriter, r *http.Request) {
	rel := r.URL.Path
	s.logf("dbxtest storage: %s %s", r.Method, rel)
	ep := EndpointOther
	switch {
	case r.Method == http.MethodPut && strings.HasPrefix(rel, "/upload/"):
		ep = EndpointPartPut
	case r.Method == http.MethodDelete && strings.HasPrefix(rel, "/abort/"):
		ep = EndpointAbort
	}
	s.count(ep)
	if ep == EndpointOther {
		s.storageFail(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.")
		return
	}
	if r.Header.Get("Authorization") != "" {
		s.storageFail(w, http.StatusBadRequest, "InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified")
		return
	}
	q := r.URL.Query()
	exp := q.Get("X-Expires")
	secs, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || !hmac.Equal([]byte(q.Get("X-Signature")), []byte(s.sign(r.Method, rel, exp))) {
		s.storageFail(w, http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
		return
	}
	if time.Now().Unix() > secs {
		s.storageFail(w, http.StatusForbidden, "AccessDenied", "Request has expired")
		return
	}
	parts := strings.Split(strings.Trim(rel, "/"), "/")
	tok := parts[1]
	s.mu.Lock()
	ss := s.sessions[tok]
	s.mu.Unlock()
	if ss == nil {
		s.storageFail(w, http.StatusNotFound, "NoSuchUpload", "The specified upload does not exist.")
		return
	}
	file := strings.TrimPrefix(ss.path, "/Volumes/")
	if i := strings.Index(file, "/"); i >= 0 { // path inside the volume, for fault globs
		file = file[i+1:]
		if j := strings.Index(file, "/"); j >= 0 {
			file = file[j+1:]
			if k := strings.Index(file, "/"); k >= 0 {
				file = file[k+1:]
			}
		}
	}
	if ra, fire := s.faults.Check503(ep, file); fire {
		s.stats.do(func(st *Stats) { st.Faults[Fault503]++ })
		if ra > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(ra))
		}
		s.storageFail(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
		return
	}
	if ep == EndpointAbort {
		s.mu.Lock()
		delete(s.sessions, tok)
		s.mu.Unlock()
		os.RemoveAll(ss.dir)
		s.stats.do(func(st *Stats) { st.Status[http.StatusNoContent]++ })
		w.WriteHeader(http.StatusNoContent)
		return
	}
	pn, err := strconv.Atoi(parts[2])
	if err != nil || pn < 1 || pn > 10000 {
		s.storageFail(w, http.StatusBadRequest, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive")
		return
	}
	if r.ContentLength < 0 {
		s.storageFail(w, http.StatusLengthRequired, "MissingContentLength", "You must provide the Content-Length HTTP header.")
		return
	}
	if r.ContentLength > s.opts.MaxPut {
		s.storageFail(w, http.StatusBadRequest, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
		return
	}
	tmp, err := os.CreateTemp(ss.dir, "part-*")
	if err != nil {
		s.storageFail(w, http.StatusNotFound, "NoSuchUpload", "The specified upload does not exist.")
		return
	}
	defer os.Remove(tmp.Name())
	h := md5.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), &countingReader{r: r.Body, add: func(k int64) {
		s.stats.do(func(st *Stats) { st.PutBytes[ss.path] += k })
	}})
	cerr := tmp.Close()
	if err != nil || cerr != nil || n != r.ContentLength {
		s.storageFail(w, http.StatusBadRequest, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header.")
		return
	}
	etag := `"` + hex.EncodeToString(h.Sum(nil)) + `"`
	s.mu.Lock()
	err = os.Rename(tmp.Name(), filepath.Join(ss.dir, strconv.Itoa(pn)))
	if err == nil {
		ss.etags[pn], ss.sizes[pn] = etag, n
	}
	s.mu.Unlock()
	if err != nil {
		s.storageFail(w, http.StatusNotFound, "NoSuchUpload", "The specified upload does not exist.")
		return
	}
	w.Header().Set("ETag", etag)
	s.stats.do(func(st *Stats) { st.Status[http.StatusOK]++ })
	w.WriteHeader(http.StatusOK)
}

func (s *Server) complete(w http.ResponseWriter, r *http.Request, v vpath) {
	tok := r.URL.Query().Get("session_token")
	ss := s.sessionFor(w, v.String(), tok)
	if ss == nil {
		return
	}
	var req struct {
		Parts []struct {
			PartNumber int    `json:"part_number"`
			ETag       string `json:"etag"`
		} `json:"parts"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<20)).Decode(&req); err != nil || len(req.Parts) == 0 {
		s.fail(w, http.StatusBadRequest, "MALFORMED_REQUEST", "Invalid JSON given in the body of the request: parts are required")
		return
	}
	s.mu.Lock()
	etags, sizes := map[int]string{}, map[int]int64{}
	for k, e := range ss.etags {
		etags[k], sizes[k] = e, ss.sizes[k]
	}
	s.mu.Unlock()
	prev := 0
	for i, p := range req.Parts {
		if p.PartNumber <= prev {
			s.fail(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "The list of parts was not in ascending order.")
			return
		}
		prev = p.PartNumber
		if e, ok := etags[p.PartNumber]; !ok || e != p.ETag {
			s.fail(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("Part %d was not uploaded or its ETag does not match.", p.PartNumber))
			return
		}
		if i < len(req.Parts)-1 && sizes[p.PartNumber] < s.opts.MinPart {
			s.fail(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("Part %d is smaller than the minimum allowed size (%d bytes).", p.PartNumber, s.opts.MinPart))
			return
		}
	}
	tmp, err := s.tempFile()
	if err != nil {
		s.fail(w, http.StatusInternalServerError, "INTERNAL_ERROR", err.Error())
		return
	}
	defer os.Remove(tmp.Name())
	for _, p := range req.Parts {
		f, err := os.Open(filepath.Join(ss.dir, strconv.Itoa(p.PartNumber)))
		if err == nil {
			_, err = io.Copy(tmp, f)
			f.Close()
		}
		if err != nil {
			tmp.Close()
			s.fail(w, http.StatusInternalServerError, "INTERNAL_ERROR", err.Error())
			return
		}
	}
	if err := tmp.Close(); err != nil {
		s.fail(w, http.StatusInternalServerError, "INTERNAL_ERROR", err.Error())
		return
	}
	if st, code, msg := s.publish(tmp.Name(), v, ss.overwrite); st != 0 {
		s.fail(w, st, code, msg)
		return
	}
	s.mu.Lock()
	delete(s.sessions, tok)
	s.mu.Unlock()
	os.RemoveAll(ss.dir)
	s.ok(w, http.StatusOK, map[string]any{})
}
