// Package hfserve serves a gptoss cache, read-only, over the Hugging Face Hub
// download protocol, so that huggingface_hub, transformers, vLLM, `hf
// download`, @huggingface/hub and gptoss itself can pull from it with
// HF_ENDPOINT pointed at it (an air-gapped mirror).
//
//	GET|HEAD /api/models/{org}/{name}                      model info (sha, siblings; blobs=true adds sizes/lfs)
//	GET|HEAD /api/models/{org}/{name}/revision/{rev}       the same at a revision
//	GET|HEAD /api/models/{org}/{name}/tree/{rev}[/{dir}]   listing (?recursive=true)
//	POST     /api/models/{org}/{name}/paths-info/{rev}     {paths:[...], expand:bool}
//	GET|HEAD /{org}/{name}/resolve/{rev}/{path}            file bytes (ranges), X-Repo-Commit,
//	                                                       ETag, X-Linked-Etag/-Size for LFS files
//	GET|HEAD /{org}/{name}/raw/{rev}/{path}                the git blob (LFS pointer for LFS files)
//
// A revision is a 40-hex commit, a prefix of at least 7 hex digits, the name
// a model was pulled as ("main"), or "main" = the newest cached entry of the
// model. When several formats of one commit are cached their files are
// served together.
//
// Bytes are served directly (no redirect). No filesystem path is derived
// from the URL: a file is looked up in the cached manifest and its content
// read from the blob named by its sha256.
package hfserve

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/registry"
)

// LFSThreshold is the size above which a file is served as an LFS file
// (besides weights by extension), as the Hub stores big files.
const LFSThreshold = 10 << 20

// maxBody bounds request bodies (paths-info).
const maxBody = 1 << 20

// Server is an http.Handler serving a cache.
type Server struct {
	store *cache.Store
	sums  sync.Map // sha256 hex → git blob sha1 of a small file
}

// New returns a server for store.
func New(store *cache.Store) *Server { return &Server{store: store} }

// file is one served file of a revision.
type file struct {
	registry.File
	lfs     bool
	pointer string // LFS pointer text
	oid     string // git blob id: of the pointer for LFS files
}

// view is one revision of one model as served.
type view struct {
	name    string
	commit  string
	created time.Time
	files   []*file          // sorted by path
	byPath  map[string]*file // files
	dirs    map[string]bool  // every directory, "" excluded
}

func isLFS(f registry.File) bool {
	switch strings.ToLower(path.Ext(f.Path)) {
	case ".safetensors", ".bin", ".gguf", ".pt", ".pth", ".onnx", ".h5", ".msgpack", ".ckpt":
		return true
	}
	return f.Size > LFSThreshold
}

// gitSHA1 returns the git blob id of a small file, reading its blob once.
func (s *Server) gitSHA1(f registry.File) (string, error) {
	if v, ok := s.sums.Load(f.SHA256); ok {
		return v.(string), nil
	}
	b, err := s.store.ReadBlob(f.SHA256, LFSThreshold+1)
	if err != nil {
		return "", err
	}
	if int64(len(b)) != f.Size {
		return "", fmt.Errorf("blob %s: %d bytes, manifest says %d", f.SHA256, len(b), f.Size)
	}
	oid := registry.GitBlobID(b)
	s.sums.Store(f.SHA256, oid)
	return oid, nil
}

type hubErr struct {
	status int
	code   string
	msg    string
}

func (e *hubErr) Error() string { return e.msg }

// lookup finds the revision rev of model name in the cache.
func (s *Server) lookup(name, rev string) (*view, error) {
	all, err := s.store.List()
	if err != nil {
		return nil, err
	}
	var mine []cache.Entry // newest first
	for _, e := range all {
		if e.Manifest.Name == name {
			mine = append(mine, e)
		}
	}
	if len(mine) == 0 {
		return nil, &hubErr{http.StatusNotFound, "RepoNotFound", "Repository not found: " + name}
	}
	pick := func(match func(cache.Entry) bool) *cache.Entry {
		for i := range mine {
			if match(mine[i]) {
				return &mine[i]
			}
		}
		return nil
	}
	low := strings.ToLower(rev)
	var hit *cache.Entry
	if registry.IsCommit(low) {
		hit = pick(func(e cache.Entry) bool { return e.Manifest.Revision == low })
	}
	if hit == nil {
		hit = pick(func(e cache.Entry) bool { return e.Requested == rev })
	}
	if hit == nil && len(low) >= 7 && len(low) < 40 && isHex(low) {
		hit = pick(func(e cache.Entry) bool { return strings.HasPrefix(e.Manifest.Revision, low) })
	}
	if hit == nil && (rev == "main" || rev == "") {
		hit = &mine[0]
	}
	if hit == nil {
		return nil, &hubErr{http.StatusNotFound, "RevisionNotFound", "Invalid rev id: " + rev}
	}
	v := &view{name: name, commit: hit.Manifest.Revision, created: hit.Created, byPath: map[string]*file{}, dirs: map[string]bool{}}
	for _, e := range mine {
		if e.Manifest.Revision != v.commit {
			continue
		}
		for _, f := range e.Manifest.Files {
			if _, dup := v.byPath[f.Path]; dup || !registry.IsSHA256Hex(f.SHA256) || f.Path == "" {
				continue
			}
			sf := &file{File: f, lfs: isLFS(f)}
			if sf.lfs {
				sf.pointer = registry.LFSPointer(f.SHA256, f.Size)
				sf.oid = registry.GitBlobID([]byte(sf.pointer))
			} else if registry.IsCommit(strings.ToLower(f.GitSHA1)) {
				sf.oid = strings.ToLower(f.GitSHA1)
			} else if sf.oid, err = s.gitSHA1(f); err != nil {
				// The blob is missing or damaged: list the file anyway (a
				// download of it fails loudly), under a placeholder id.
				h := sha1.Sum([]byte("gptoss-unreadable:" + f.SHA256))
				sf.oid = hex.EncodeToString(h[:])
			}
			v.byPath[f.Path] = sf
			v.files = append(v.files, sf)
			for d := path.Dir(f.Path); d != "." && d != "/" && d != ""; d = path.Dir(d) {
				v.dirs[d] = true
			}
		}
	}
	sort.Slice(v.files, func(i, j int) bool { return v.files[i].Path < v.files[j].Path })
	return v, nil
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// splitPath unescapes each segment of an escaped URL path. Empty, "." and
// ".." segments are refused.
func splitPath(escaped string) ([]string, bool) {
	parts := strings.Split(strings.TrimPrefix(escaped, "/"), "/")
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil {
			return nil, false
		}
		parts[i] = u
	}
	return parts, true
}

func validSegments(ss []string) bool {
	for _, s := range ss {
		if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "\\\x00") {
			return false
		}
	}
	return true
}

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts, ok := splitPath(r.URL.EscapedPath())
	if !ok {
		writeErr(w, r, &hubErr{http.StatusBadRequest, "", "Invalid path"})
		return
	}
	if len(parts) >= 4 && parts[0] == "api" && parts[1] == "models" {
		s.routeAPI(w, r, parts[2]+"/"+parts[3], parts[4:])
		return
	}
	if len(parts) >= 5 && (parts[2] == "resolve" || parts[2] == "raw") {
		if !allow(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		if !validSegments(parts[:2]) {
			writeErr(w, r, &hubErr{http.StatusNotFound, "RepoNotFound", "Repository not found"})
			return
		}
		v, err := s.lookup(parts[0]+"/"+parts[1], parts[3])
		if err != nil {
			writeErr(w, r, err)
			return
		}
		w.Header().Set("X-Repo-Commit", v.commit)
		var f *file
		if validSegments(parts[4:]) {
			f = v.byPath[strings.Join(parts[4:], "/")]
		}
		if f == nil {
			writeErr(w, r, &hubErr{http.StatusNotFound, "EntryNotFound", "Entry not found"})
			return
		}
		s.serveFile(w, r, f, parts[2] == "raw")
		return
	}
	writeErr(w, r, &hubErr{http.StatusNotFound, "", "Not found"})
}

func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeErr(w, r, &hubErr{http.StatusMethodNotAllowed, "", "Method not allowed: this server is read-only"})
	return false
}

func (s *Server) routeAPI(w http.ResponseWriter, r *http.Request, repo string, rest []string) {
	if len(rest) >= 2 && rest[0] == "paths-info" {
		if !allow(w, r, http.MethodPost) {
			return
		}
	} else if !allow(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	if !validSegments(strings.Split(repo, "/")) {
		writeErr(w, r, &hubErr{http.StatusNotFound, "RepoNotFound", "Repository not found"})
		return
	}
	rev := "main"
	if len(rest) >= 2 {
		rev = rest[1]
	}
	switch {
	case len(rest) == 0, len(rest) == 2 && rest[0] == "revision":
	case len(rest) >= 2 && (rest[0] == "tree" || rest[0] == "paths-info"):
	default:
		writeErr(w, r, &hubErr{http.StatusNotFound, "", "Not found"})
		return
	}
	v, err := s.lookup(repo, rev)
	if err != nil {
		writeErr(w, r, err)
		return
	}
	switch {
	case len(rest) == 0 || rest[0] == "revision":
		s.info(w, r, v)
	case rest[0] == "tree":
		dir := ""
		if len(rest) > 2 {
			if !validSegments(rest[2:]) {
				writeErr(w, r, &hubErr{http.StatusNotFound, "EntryNotFound", "Entry not found"})
				return
			}
			dir = strings.Join(rest[2:], "/")
		}
		s.tree(w, r, v, dir)
	default:
		if len(rest) != 2 {
			writeErr(w, r, &hubErr{http.StatusNotFound, "", "Not found"})
			return
		}
		s.pathsInfo(w, r, v)
	}
}

const timeLayout = "2006-01-02T15:04:05.000Z"

func (v *view) date() string {
	t := v.created
	if t.IsZero() {
		t = time.Unix(0, 0)
	}
	return t.UTC().Format(timeLayout)
}

func queryBool(s string) bool {
	b, err := strconv.ParseBool(s)
	return err == nil && b
}

type lfsSibling struct {
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
	PointerSize int    `json:"pointerSize"`
}

type sibling struct {
	RFilename string      `json:"rfilename"`
	BlobID    string      `json:"blobId,omitempty"`
	Size      *int64      `json:"size,omitempty"`
	LFS       *lfsSibling `json:"lfs,omitempty"`
}

func (s *Server) info(w http.ResponseWriter, r *http.Request, v *view) {
	blobs := queryBool(r.URL.Query().Get("blobs"))
	sibs := make([]sibling, 0, len(v.files))
	var used int64
	for _, f := range v.files {
		used += f.Size
		sb := sibling{RFilename: f.Path}
		if blobs {
			sz := f.Size
			sb.BlobID, sb.Size = f.oid, &sz
			if f.lfs {
				sb.LFS = &lfsSibling{SHA256: f.SHA256, Size: f.Size, PointerSize: len(f.pointer)}
			}
		}
		sibs = append(sibs, sb)
	}
	org, _, _ := strings.Cut(v.name, "/")
	idh := sha1.Sum([]byte("gptoss-repo:" + v.name))
	writeJSON(w, r, http.StatusOK, map[string]any{
		"_id":          hex.EncodeToString(idh[:12]),
		"id":           v.name,
		"modelId":      v.name,
		"author":       org,
		"sha":          v.commit,
		"lastModified": v.date(),
		"createdAt":    v.date(),
		"private":      false,
		"gated":        false,
		"disabled":     false,
		"downloads":    0,
		"likes":        0,
		"tags":         []string{},
		"siblings":     sibs,
		"usedStorage":  used,
	})
}

type lfsEntry struct {
	OID         string `json:"oid"`
	Size        int64  `json:"size"`
	PointerSize int    `json:"pointerSize"`
}

type lastCommit struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Date  string `json:"date"`
}

type treeEntry struct {
	Type       string      `json:"type"`
	OID        string      `json:"oid"`
	Size       int64       `json:"size"`
	LFS        *lfsEntry   `json:"lfs,omitempty"`
	Path       string      `json:"path"`
	LastCommit *lastCommit `json:"lastCommit,omitempty"`
}

func (v *view) entry(p string, expand bool) (treeEntry, bool) {
	var te treeEntry
	if f, ok := v.byPath[p]; ok {
		te = treeEntry{Type: "file", OID: f.oid, Size: f.Size, Path: p}
		if f.lfs {
			te.LFS = &lfsEntry{OID: f.SHA256, Size: f.Size, PointerSize: len(f.pointer)}
		}
	} else if v.dirs[p] {
		// No git tree id is known: a stable placeholder.
		h := sha1.Sum([]byte("gptoss-tree:" + v.commit + "/" + p))
		te = treeEntry{Type: "directory", OID: hex.EncodeToString(h[:]), Path: p}
	} else {
		return te, false
	}
	if expand {
		te.LastCommit = &lastCommit{ID: v.commit, Title: "gptoss cache", Date: v.date()}
	}
	return te, true
}

func (s *Server) tree(w http.ResponseWriter, r *http.Request, v *view, dir string) {
	q := r.URL.Query()
	if dir != "" && !v.dirs[dir] {
		writeErr(w, r, &hubErr{http.StatusNotFound, "EntryNotFound", fmt.Sprintf("%s does not exist on %q", dir, v.commit)})
		return
	}
	recursive, expand := queryBool(q.Get("recursive")), queryBool(q.Get("expand"))
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	var paths []string
	for d := range v.dirs {
		paths = append(paths, d)
	}
	for _, f := range v.files {
		paths = append(paths, f.Path)
	}
	sort.Strings(paths)
	out := []treeEntry{}
	for _, p := range paths {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok || rest == "" || (!recursive && strings.Contains(rest, "/")) {
			continue
		}
		te, _ := v.entry(p, expand)
		out = append(out, te)
	}
	writeJSON(w, r, http.StatusOK, out)
}

func (s *Server) pathsInfo(w http.ResponseWriter, r *http.Request, v *view) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeErr(w, r, &hubErr{http.StatusRequestEntityTooLarge, "", "Request body too large"})
		return
	}
	var paths []string
	expand := false
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			writeErr(w, r, &hubErr{http.StatusBadRequest, "", "Invalid form body"})
			return
		}
		paths = append(form["paths"], form["paths[]"]...)
		expand = queryBool(form.Get("expand"))
	} else {
		var req struct {
			Paths  json.RawMessage `json:"paths"`
			Expand any             `json:"expand"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			writeErr(w, r, &hubErr{http.StatusBadRequest, "", "Invalid JSON body"})
			return
		}
		var one string
		if json.Unmarshal(req.Paths, &paths) != nil {
			if json.Unmarshal(req.Paths, &one) != nil {
				writeErr(w, r, &hubErr{http.StatusBadRequest, "", "paths must be a list of strings"})
				return
			}
			paths = []string{one}
		}
		switch x := req.Expand.(type) {
		case bool:
			expand = x
		case string:
			expand = queryBool(x)
		}
	}
	out := []treeEntry{}
	seen := map[string]bool{}
	for _, p := range paths {
		p = strings.Trim(p, "/")
		if seen[p] {
			continue
		}
		seen[p] = true
		if te, ok := v.entry(p, expand); ok {
			out = append(out, te)
		}
	}
	writeJSON(w, r, http.StatusOK, out)
}

func contentDisposition(name string) string {
	return fmt.Sprintf("inline; filename*=UTF-8''%s; filename=%q;", url.PathEscape(name), name)
}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, f *file, raw bool) {
	h := w.Header()
	h.Set("Accept-Ranges", "bytes")
	if r.URL.Query().Get("noContentDisposition") == "" {
		h.Set("Content-Disposition", contentDisposition(path.Base(f.Path)))
	}
	ctype := mime.TypeByExtension(path.Ext(f.Path))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h.Set("Content-Type", ctype)
	if raw && f.lfs {
		// raw/ is the git blob: the LFS pointer text.
		h.Set("ETag", strconv.Quote(f.oid))
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader([]byte(f.pointer)))
		return
	}
	if f.lfs {
		h.Set("ETag", strconv.Quote(f.SHA256))
		h.Set("X-Linked-Etag", strconv.Quote(f.SHA256))
		h.Set("X-Linked-Size", strconv.FormatInt(f.Size, 10))
	} else {
		h.Set("ETag", strconv.Quote(f.oid))
	}
	blob, err := os.Open(s.store.BlobPath(f.SHA256))
	if err != nil {
		writeErr(w, r, &hubErr{http.StatusInternalServerError, "", f.Path + ": cached blob unreadable (run gptoss verify)"})
		return
	}
	defer blob.Close()
	if fi, err := blob.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() != f.Size {
		writeErr(w, r, &hubErr{http.StatusInternalServerError, "", f.Path + ": cached blob has the wrong size (run gptoss verify)"})
		return
	}
	if f.Size == 0 && r.Header.Get("Range") != "" {
		// ServeContent answers a range of an empty file with a plain 200;
		// the total lets clients that learn sizes from a Range: bytes=0-0
		// probe (@huggingface/hub) read it.
		h.Set("Content-Range", "bytes */0")
	}
	http.ServeContent(w, r, "", time.Time{}, blob)
}

func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

// writeErr writes a Hub-style error: X-Error-Code, X-Error-Message and a
// JSON {"error": ...} body. Errors other than *hubErr are 500s whose
// detail (it may name paths of this machine) is not sent.
func writeErr(w http.ResponseWriter, r *http.Request, err error) {
	he, ok := err.(*hubErr)
	if !ok {
		he = &hubErr{http.StatusInternalServerError, "", "internal error reading the cache (run gptoss verify on the server)"}
	}
	h := w.Header()
	for _, k := range []string{"ETag", "X-Linked-Etag", "X-Linked-Size", "Accept-Ranges", "Content-Disposition"} {
		h.Del(k)
	}
	if he.code != "" {
		h.Set("X-Error-Code", he.code)
	}
	h.Set("X-Error-Message", strings.Map(func(c rune) rune {
		if c < 0x20 || c > 0x7e {
			return '?'
		}
		return c
	}, he.msg))
	writeJSON(w, r, he.status, map[string]string{"error": he.msg})
}
