package hfserve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/internal/testproc"
	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/hf"
)

const (
	repoID  = "openai/gpt-oss-20b"
	commit  = "0123456789abcdef0123456789abcdef01234567"
	commit2 = "fedcba9876543210fedcba9876543210fedcba98"
)

type fixture struct {
	store *cache.Store
	srv   *httptest.Server
	files map[string][]byte
}

func sha256hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func put(t *testing.T, st *cache.Store, files map[string][]byte, m *registry.Manifest, paths ...string) {
	t.Helper()
	for _, p := range paths {
		b := files[p]
		d, err := st.PutBlob(b)
		if err != nil {
			t.Fatal(err)
		}
		m.Files = append(m.Files, registry.File{Path: p, Size: int64(len(b)), SHA256: d, Role: registry.RoleOf(p)})
	}
}

// newFixture caches commit in two formats (hf: root files and shards;
// original: original/*) pulled as "main", and an older commit2.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	root := filepath.Join(t.TempDir(), "cache")
	st, err := cache.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	// A secret next to the cache: nothing may ever serve it.
	if err := os.WriteFile(filepath.Join(filepath.Dir(root), "secret"), []byte("TOP-SECRET"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 3<<20+17)
	for i := range big {
		big[i] = byte(i*7 + i>>9)
	}
	files := map[string][]byte{
		"config.json":                      []byte(`{"architectures":["GptOssForCausalLM"],"model_type":"gpt_oss"}`),
		"README.md":                        []byte("# gpt-oss-20b\n"),
		"tokenizer.json":                   bytes.Repeat([]byte(`{"t":1}`), 1000),
		"model-00000-of-00001.safetensors": big,
		"original/config.json":             []byte(`{"num_hidden_layers":24}`),
		"original/model.safetensors":       big[:1<<20],
		"empty.txt":                        {},
	}
	hfm := &registry.Manifest{Name: repoID, Revision: commit, Format: "hf", Source: "test"}
	put(t, st, files, hfm, "config.json", "README.md", "tokenizer.json", "model-00000-of-00001.safetensors", "empty.txt")
	orig := &registry.Manifest{Name: repoID, Revision: commit, Format: "original", Source: "test"}
	put(t, st, files, orig, "original/config.json", "original/model.safetensors")
	old := &registry.Manifest{Name: repoID, Revision: commit2, Format: "hf", Source: "test"}
	put(t, st, files, old, "README.md")
	if _, err := st.Commit(old, commit2); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Commit(hfm, "main"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Commit(orig, "main"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(st))
	t.Cleanup(srv.Close)
	return &fixture{store: st, srv: srv, files: files}
}

func (f *fixture) do(t *testing.T, method, path string, hdr map[string]string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (f *fixture) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	resp, b := f.do(t, "GET", path, nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, b)
	}
}

func gitSHA(b []byte) string { return registry.GitBlobID(b) }

type infoJSON struct {
	ID       string `json:"id"`
	ModelID  string `json:"modelId"`
	SHA      string `json:"sha"`
	Private  *bool  `json:"private"`
	Siblings []struct {
		RFilename string `json:"rfilename"`
		BlobID    string `json:"blobId"`
		Size      *int64 `json:"size"`
		LFS       *struct {
			SHA256      string `json:"sha256"`
			Size        int64  `json:"size"`
			PointerSize int    `json:"pointerSize"`
		} `json:"lfs"`
	} `json:"siblings"`
}

func TestInfoRevisions(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ path, sha string }{
		{"/api/models/openai/gpt-oss-20b", commit},
		{"/api/models/openai/gpt-oss-20b/revision/main", commit},
		{"/api/models/openai/gpt-oss-20b/revision/" + commit, commit},
		{"/api/models/openai/gpt-oss-20b/revision/" + commit[:7], commit},
		{"/api/models/openai/gpt-oss-20b/revision/" + strings.ToUpper(commit2[:10]), commit2},
		{"/api/models/openai/gpt-oss-20b/revision/" + commit2, commit2},
	} {
		var info infoJSON
		f.getJSON(t, tc.path, &info)
		if info.SHA != tc.sha || info.ID != repoID || info.ModelID != repoID || info.Private == nil || *info.Private {
			t.Errorf("%s: %+v", tc.path, info)
		}
	}
	var info infoJSON
	f.getJSON(t, "/api/models/openai/gpt-oss-20b/revision/main?blobs=true", &info)
	// The union of both formats of the commit, sorted.
	var names []string
	for _, s := range info.Siblings {
		names = append(names, s.RFilename)
		b := f.files[s.RFilename]
		if s.Size == nil || *s.Size != int64(len(b)) {
			t.Errorf("%s: size %v", s.RFilename, s.Size)
		}
		if strings.HasSuffix(s.RFilename, ".safetensors") {
			if s.LFS == nil || s.LFS.SHA256 != sha256hex(b) || s.LFS.Size != int64(len(b)) || s.LFS.PointerSize == 0 {
				t.Errorf("%s: lfs %+v", s.RFilename, s.LFS)
			}
			ptr := registry.LFSPointer(sha256hex(b), int64(len(b)))
			if s.BlobID != gitSHA([]byte(ptr)) || s.LFS.PointerSize != len(ptr) {
				t.Errorf("%s: blobId %s", s.RFilename, s.BlobID)
			}
		} else if s.LFS != nil || s.BlobID != gitSHA(b) {
			t.Errorf("%s: blobId %s lfs %+v", s.RFilename, s.BlobID, s.LFS)
		}
	}
	want := "README.md config.json empty.txt model-00000-of-00001.safetensors original/config.json original/model.safetensors tokenizer.json"
	if strings.Join(names, " ") != want {
		t.Errorf("siblings %v", names)
	}
	// Without blobs=true: names only.
	info = infoJSON{}
	f.getJSON(t, "/api/models/openai/gpt-oss-20b", &info)
	if len(info.Siblings) != 7 || info.Siblings[0].Size != nil || info.Siblings[0].BlobID != "" {
		t.Errorf("siblings without blobs: %+v", info.Siblings)
	}
	// The older commit has only its own file.
	info = infoJSON{}
	f.getJSON(t, "/api/models/openai/gpt-oss-20b/revision/"+commit2, &info)
	if len(info.Siblings) != 1 || info.Siblings[0].RFilename != "README.md" {
		t.Errorf("old commit siblings %+v", info.Siblings)
	}
	// HEAD: headers, no body.
	resp, b := f.do(t, "HEAD", "/api/models/openai/gpt-oss-20b", nil, nil)
	if resp.StatusCode != 200 || len(b) != 0 || resp.Header.Get("Content-Type") == "" {
		t.Errorf("HEAD info: %d %q", resp.StatusCode, b)
	}
}

func checkErr(t *testing.T, f *fixture, method, path string, status int, code string) {
	t.Helper()
	resp, b := f.do(t, method, path, nil, nil)
	if resp.StatusCode != status || resp.Header.Get("X-Error-Code") != code {
		t.Errorf("%s %s: %d %q, want %d %q (%s)", method, path, resp.StatusCode, resp.Header.Get("X-Error-Code"), status, code, b)
	}
	if bytes.Contains(b, []byte("TOP-SECRET")) || bytes.Contains(b, []byte(f.store.Root)) {
		t.Errorf("%s %s leaks: %s", method, path, b)
	}
	if method != "HEAD" {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			t.Errorf("%s %s: body %q", method, path, b)
		}
	}
}

func TestNotFoundCodes(t *testing.T) {
	f := newFixture(t)
	checkErr(t, f, "GET", "/api/models/openai/nope", 404, "RepoNotFound")
	checkErr(t, f, "GET", "/api/models/openai/nope/revision/main", 404, "RepoNotFound")
	checkErr(t, f, "GET", "/openai/nope/resolve/main/config.json", 404, "RepoNotFound")
	checkErr(t, f, "GET", "/api/models/openai/gpt-oss-20b/revision/v2", 404, "RevisionNotFound")
	checkErr(t, f, "GET", "/api/models/openai/gpt-oss-20b/revision/abcdef1", 404, "RevisionNotFound")
	checkErr(t, f, "GET", "/api/models/openai/gpt-oss-20b/tree/nope", 404, "RevisionNotFound")
	checkErr(t, f, "HEAD", "/openai/gpt-oss-20b/resolve/nope/config.json", 404, "RevisionNotFound")
	checkErr(t, f, "HEAD", "/openai/gpt-oss-20b/resolve/main/missing.json", 404, "EntryNotFound")
	checkErr(t, f, "GET", "/openai/gpt-oss-20b/resolve/main/original", 404, "EntryNotFound")
	checkErr(t, f, "GET", "/api/models/openai/gpt-oss-20b/tree/main/missing", 404, "EntryNotFound")
	checkErr(t, f, "GET", "/api/models/openai/gpt-oss-20b/tree/main/config.json", 404, "EntryNotFound")
	// The older commit does not have config.json.
	checkErr(t, f, "GET", "/openai/gpt-oss-20b/resolve/"+commit2+"/config.json", 404, "EntryNotFound")
	checkErr(t, f, "GET", "/", 404, "")
	checkErr(t, f, "GET", "/api/models/openai/gpt-oss-20b/whatever/main", 404, "")
}

func TestMethods(t *testing.T) {
	f := newFixture(t)
	for _, m := range []string{"PUT", "DELETE", "POST", "PATCH"} {
		checkErr(t, f, m, "/openai/gpt-oss-20b/resolve/main/config.json", 405, "")
		checkErr(t, f, m, "/api/models/openai/gpt-oss-20b", 405, "")
	}
	checkErr(t, f, "GET", "/api/models/openai/gpt-oss-20b/paths-info/main", 405, "")
	resp, _ := f.do(t, "DELETE", "/api/models/openai/gpt-oss-20b", nil, nil)
	if resp.Header.Get("Allow") == "" {
		t.Error("405 without Allow")
	}
	// Nothing was changed.
	if _, err := f.store.Find(repoID, "hf", "main"); err != nil {
		t.Fatal(err)
	}
}

type treeJSON struct {
	Type string `json:"type"`
	OID  string `json:"oid"`
	Size int64  `json:"size"`
	Path string `json:"path"`
	LFS  *struct {
		OID         string `json:"oid"`
		Size        int64  `json:"size"`
		PointerSize int    `json:"pointerSize"`
	} `json:"lfs"`
	LastCommit *struct {
		ID string `json:"id"`
	} `json:"lastCommit"`
}

func paths(es []treeJSON) string {
	var out []string
	for _, e := range es {
		out = append(out, e.Type[:1]+":"+e.Path)
	}
	return strings.Join(out, " ")
}

func TestTree(t *testing.T) {
	f := newFixture(t)
	var es []treeJSON
	f.getJSON(t, "/api/models/openai/gpt-oss-20b/tree/main", &es)
	if got := paths(es); got != "f:README.md f:config.json f:empty.txt f:model-00000-of-00001.safetensors d:original f:tokenizer.json" {
		t.Errorf("root: %s", got)
	}
	f.getJSON(t, "/api/models/openai/gpt-oss-20b/tree/"+commit+"?recursive=true&expand=true", &es)
	if got := paths(es); got != "f:README.md f:config.json f:empty.txt f:model-00000-of-00001.safetensors d:original f:original/config.json f:original/model.safetensors f:tokenizer.json" {
		t.Errorf("recursive: %s", got)
	}
	for _, e := range es {
		if e.LastCommit == nil || e.LastCommit.ID != commit {
			t.Errorf("%s: lastCommit %+v", e.Path, e.LastCommit)
		}
		if e.Type != "file" {
			if len(e.OID) != 40 {
				t.Errorf("dir oid %q", e.OID)
			}
			continue
		}
		b := f.files[e.Path]
		if e.Size != int64(len(b)) {
			t.Errorf("%s: size %d", e.Path, e.Size)
		}
		if strings.HasSuffix(e.Path, ".safetensors") {
			if e.LFS == nil || e.LFS.OID != sha256hex(b) || e.LFS.Size != e.Size || e.OID != gitSHA([]byte(registry.LFSPointer(sha256hex(b), e.Size))) {
				t.Errorf("%s: %+v", e.Path, e)
			}
		} else if e.LFS != nil || e.OID != gitSHA(b) {
			t.Errorf("%s: %+v", e.Path, e)
		}
	}
	f.getJSON(t, "/api/models/openai/gpt-oss-20b/tree/main/original", &es)
	if got := paths(es); got != "f:original/config.json f:original/model.safetensors" {
		t.Errorf("original: %s", got)
	}
}

func TestPathsInfo(t *testing.T) {
	f := newFixture(t)
	post := func(ct, body string) []treeJSON {
		t.Helper()
		resp, b := f.do(t, "POST", "/api/models/openai/gpt-oss-20b/paths-info/main", map[string]string{"Content-Type": ct}, strings.NewReader(body))
		if resp.StatusCode != 200 {
			t.Fatalf("paths-info: %d %s", resp.StatusCode, b)
		}
		var es []treeJSON
		if err := json.Unmarshal(b, &es); err != nil {
			t.Fatal(err)
		}
		return es
	}
	es := post("application/json", `{"paths":["config.json","original","nope","../secret","model-00000-of-00001.safetensors"],"expand":true}`)
	if got := paths(es); got != "f:config.json d:original f:model-00000-of-00001.safetensors" {
		t.Errorf("paths-info: %s", got)
	}
	if es[0].LastCommit == nil || es[0].LastCommit.ID != commit || es[2].LFS == nil {
		t.Errorf("paths-info: %+v", es)
	}
	es = post("application/x-www-form-urlencoded", "paths=README.md&paths=tokenizer.json")
	if got := paths(es); got != "f:README.md f:tokenizer.json" || es[0].LastCommit != nil {
		t.Errorf("form paths-info: %s", got)
	}
	resp, _ := f.do(t, "POST", "/api/models/openai/gpt-oss-20b/paths-info/main", map[string]string{"Content-Type": "application/json"},
		strings.NewReader(`{"paths":["`+strings.Repeat("a", 2<<20)+`"]}`))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("huge body: %d", resp.StatusCode)
	}
	resp, _ = f.do(t, "POST", "/api/models/openai/gpt-oss-20b/paths-info/main", map[string]string{"Content-Type": "application/json"}, strings.NewReader(`{`))
	if resp.StatusCode != 400 {
		t.Errorf("bad json: %d", resp.StatusCode)
	}
}

func TestResolve(t *testing.T) {
	f := newFixture(t)
	big := f.files["model-00000-of-00001.safetensors"]
	u := "/openai/gpt-oss-20b/resolve/main/model-00000-of-00001.safetensors"
	resp, b := f.do(t, "HEAD", u, nil, nil)
	h := resp.Header
	if resp.StatusCode != 200 || len(b) != 0 || h.Get("X-Repo-Commit") != commit || h.Get("X-Linked-Etag") != `"`+sha256hex(big)+`"` ||
		h.Get("X-Linked-Size") != fmt.Sprint(len(big)) || h.Get("Content-Length") != fmt.Sprint(len(big)) ||
		h.Get("Accept-Ranges") != "bytes" || h.Get("ETag") == "" || h.Get("Content-Encoding") != "" {
		t.Errorf("HEAD: %d %v", resp.StatusCode, h)
	}
	resp, b = f.do(t, "GET", u, nil, nil)
	if resp.StatusCode != 200 || !bytes.Equal(b, big) {
		t.Errorf("GET: %d, %d bytes", resp.StatusCode, len(b))
	}
	resp, b = f.do(t, "GET", u, map[string]string{"Range": "bytes=100-1099"}, nil)
	if resp.StatusCode != 206 || !bytes.Equal(b, big[100:1100]) || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 100-1099/%d", len(big)) {
		t.Errorf("range: %d %v", resp.StatusCode, resp.Header)
	}
	resp, b = f.do(t, "GET", u, map[string]string{"Range": "bytes=0-0"}, nil)
	if resp.StatusCode != 206 || len(b) != 1 || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 0-0/%d", len(big)) {
		t.Errorf("range 0-0: %d %v", resp.StatusCode, resp.Header)
	}
	resp, b = f.do(t, "GET", u, map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(big)-5)}, nil)
	if resp.StatusCode != 206 || !bytes.Equal(b, big[len(big)-5:]) {
		t.Errorf("suffix range: %d", resp.StatusCode)
	}
	resp, _ = f.do(t, "GET", u, map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(big)+10)}, nil)
	if resp.StatusCode != 416 {
		t.Errorf("unsatisfiable range: %d", resp.StatusCode)
	}
	// A regular file: git sha1 ETag, no linked headers; by commit prefix.
	cfg := f.files["config.json"]
	resp, b = f.do(t, "GET", "/openai/gpt-oss-20b/resolve/"+commit[:12]+"/config.json", nil, nil)
	if resp.StatusCode != 200 || !bytes.Equal(b, cfg) || resp.Header.Get("ETag") != `"`+gitSHA(cfg)+`"` ||
		resp.Header.Get("X-Linked-Etag") != "" || resp.Header.Get("X-Repo-Commit") != commit {
		t.Errorf("config.json: %d %v", resp.StatusCode, resp.Header)
	}
	// A nested file of the other format, with an escaped slash.
	resp, b = f.do(t, "GET", "/openai/gpt-oss-20b/resolve/main/original%2Fconfig.json", nil, nil)
	if resp.StatusCode != 200 || !bytes.Equal(b, f.files["original/config.json"]) {
		t.Errorf("original/config.json: %d", resp.StatusCode)
	}
	resp, b = f.do(t, "GET", "/openai/gpt-oss-20b/resolve/main/empty.txt", nil, nil)
	if resp.StatusCode != 200 || len(b) != 0 || resp.Header.Get("Content-Length") != "0" {
		t.Errorf("empty: %d %v", resp.StatusCode, resp.Header)
	}
	// raw/ of an LFS file is its pointer.
	resp, b = f.do(t, "GET", "/openai/gpt-oss-20b/raw/main/model-00000-of-00001.safetensors", nil, nil)
	if resp.StatusCode != 200 || string(b) != registry.LFSPointer(sha256hex(big), int64(len(big))) {
		t.Errorf("raw: %d %q", resp.StatusCode, b)
	}
	// If-None-Match with the ETag.
	resp, _ = f.do(t, "GET", "/openai/gpt-oss-20b/resolve/main/config.json", map[string]string{"If-None-Match": `"` + gitSHA(cfg) + `"`}, nil)
	if resp.StatusCode != 304 {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
}

// TestTraversal sends raw request targets: no URL ever reaches a file
// outside the manifest.
func TestTraversal(t *testing.T) {
	f := newFixture(t)
	h := New(f.store)
	hexd := sha256hex(f.files["config.json"])
	for _, target := range []string{
		"/openai/gpt-oss-20b/resolve/main/../../../secret",
		"/openai/gpt-oss-20b/resolve/main/%2e%2e/%2e%2e/%2e%2e/secret",
		"/openai/gpt-oss-20b/resolve/main/%2E%2E%2F%2E%2E%2F%2E%2E%2Fsecret",
		"/openai/gpt-oss-20b/resolve/main/..%2f..%2f..%2fsecret",
		"/openai/gpt-oss-20b/resolve/main//etc/passwd",
		"/openai/gpt-oss-20b/resolve/main/%2Fetc%2Fpasswd",
		"/openai/gpt-oss-20b/resolve/main/original/../config.json",
		"/openai/gpt-oss-20b/resolve/main/./config.json",
		"/openai/gpt-oss-20b/resolve/main/..%5c..%5csecret",
		"/openai/gpt-oss-20b/resolve/main/blobs/sha256/" + hexd,
		"/openai/gpt-oss-20b/resolve/main/" + hexd,
		"/openai/../resolve/main/secret",
		"/%2e%2e/%2e%2e/resolve/main/secret",
		"/api/models/openai/gpt-oss-20b/tree/main/..",
		"/api/models/openai/gpt-oss-20b/tree/main/%2e%2e/%2e%2e",
		"/api/models/%2e%2e/%2e%2e/revision/main",
	} {
		req := httptest.NewRequest("GET", "http://x/", nil)
		u, err := url.Parse(target)
		if err != nil {
			t.Fatal(err)
		}
		req.URL = u
		req.RequestURI = target
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 404 && rec.Code != 400 {
			t.Errorf("%s: %d", target, rec.Code)
		}
		if b := rec.Body.String(); strings.Contains(b, "TOP-SECRET") || strings.Contains(b, "root:") || strings.Contains(b, f.store.Root) {
			t.Errorf("%s leaks: %q", target, b)
		}
	}
}

// TestGptossClient pulls through registry/hf, as a second gptoss would.
func TestGptossClient(t *testing.T) {
	f := newFixture(t)
	src, err := hf.New(hf.Options{Endpoint: f.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, err := src.Resolve(ctx, registry.Ref{Scheme: registry.SchemeHF, Repo: repoID})
	if err != nil {
		t.Fatal(err)
	}
	if m.Revision != commit || len(m.Files) != 7 {
		t.Fatalf("resolved %s with %d files", m.Revision, len(m.Files))
	}
	for _, file := range m.Files {
		want := f.files[file.Path]
		if file.Size != int64(len(want)) || (file.SHA256 != "" && file.SHA256 != sha256hex(want)) || (file.GitSHA1 != "" && file.GitSHA1 != gitSHA(want)) {
			t.Errorf("%s: %+v", file.Path, file)
		}
		if strings.HasSuffix(file.Path, ".safetensors") != (file.SHA256 != "") {
			t.Errorf("%s: LFS-ness %+v", file.Path, file)
		}
		read := func(off, n int64) []byte {
			rc, err := src.Open(ctx, file, off, n)
			if err != nil {
				t.Fatalf("%s [%d+%d]: %v", file.Path, off, n, err)
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("%s: %v", file.Path, err)
			}
			return b
		}
		if got := read(0, -1); !bytes.Equal(got, want) {
			t.Errorf("%s: whole file differs", file.Path)
		}
		if n := int64(len(want)); n > 10 {
			var got []byte
			for off := int64(0); off < n; off += n/3 + 1 {
				got = append(got, read(off, min(n/3+1, n-off))...)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: ranged reads differ", file.Path)
			}
		}
	}
	// A pinned older commit.
	m, err = src.Resolve(ctx, registry.Ref{Scheme: registry.SchemeHF, Repo: repoID, Revision: commit2})
	if err != nil || len(m.Files) != 1 {
		t.Fatalf("commit2: %v %+v", err, m)
	}
	if _, err := src.Resolve(ctx, registry.Ref{Scheme: registry.SchemeHF, Repo: "openai/nope"}); !registry.IsPermanent(err) && err == nil {
		t.Fatal("missing repo resolved")
	}
}

// TestHuggingFaceJS runs @huggingface/hub's listFiles, fileDownloadInfo and
// snapshotDownload against the server. It needs node and @huggingface/hub in
// $HUBTEST_HFJS_DIR, else in the npm prefix .ci/run fills (testproc.NPMDir);
// without them it skips (fails under CI).
func TestHuggingFaceJS(t *testing.T) {
	jsDir := os.Getenv("HUBTEST_HFJS_DIR")
	if jsDir == "" {
		jsDir = testproc.NPMDir(t, "@huggingface/hub")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testproc.Missing(t, "node is not installed")
	}
	f := newFixture(t)
	dl := t.TempDir()
	script, _ := filepath.Abs(filepath.Join("testdata", "hfjs_snapshot.mjs"))
	cmd := exec.Command(node, script, f.srv.URL, repoID, dl)
	cmd.Env = append(os.Environ(), "HFJS_DIR="+jsDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if !strings.Contains(string(out), "listed 8") {
		t.Errorf("listing: %s", out)
	}
	snap := lines[len(lines)-1]
	if want := filepath.Join(dl, "models--openai--gpt-oss-20b", "snapshots", commit); snap != want {
		t.Fatalf("snapshot dir %q, want %q\n%s", snap, want, out)
	}
	for p, want := range f.files {
		b, err := os.ReadFile(filepath.Join(snap, filepath.FromSlash(p)))
		if err != nil || !bytes.Equal(b, want) {
			t.Errorf("%s: %v (%d bytes, want %d)", p, err, len(b), len(want))
		}
	}
}

// TestBrokenBlob: a blob gone or truncated is a 500 that names no local path.
func TestBrokenBlob(t *testing.T) {
	f := newFixture(t)
	if err := os.Remove(f.store.BlobPath(sha256hex(f.files["README.md"]))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.store.BlobPath(sha256hex(f.files["tokenizer.json"])), []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	var info infoJSON
	f.getJSON(t, "/api/models/openai/gpt-oss-20b?blobs=true", &info)
	if len(info.Siblings) != 7 {
		t.Errorf("siblings %+v", info.Siblings)
	}
	for _, p := range []string{"README.md", "tokenizer.json"} {
		resp, b := f.do(t, "GET", "/openai/gpt-oss-20b/resolve/main/"+p, nil, nil)
		if resp.StatusCode != 500 || bytes.Contains(b, []byte(f.store.Root)) || resp.Header.Get("ETag") != "" {
			t.Errorf("%s: %d %s %v", p, resp.StatusCode, b, resp.Header)
		}
	}
}
