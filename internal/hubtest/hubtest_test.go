package hubtest

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gptoss/gptoss/internal/fixture"
	"github.com/gptoss/gptoss/internal/testproc"
)

const repoID = "openai/gpt-oss-20b"

// tinyRepo returns a directory holding fixture.Tiny(), written once per run.
func tinyRepo(t *testing.T) string { return fixture.Cached(t, fixture.Tiny()) }

func TestMain(m *testing.M) {
	code := m.Run()
	fixture.RemoveCached()
	os.Exit(code)
}

func newHub(t *testing.T, opts Options, ropts ...RepoOption) (*Server, Repo) {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	r, err := s.AddRepo(repoID, tinyRepo(t), ropts...)
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type req struct {
	method, url string
	hdr         map[string]string
	body        io.Reader
}

func do(t *testing.T, c *http.Client, r req) (*http.Response, []byte) {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	hr, err := http.NewRequest(r.method, r.url, r.body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.hdr {
		hr.Header.Set(k, v)
	}
	resp, err := c.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", r.method, r.url, err)
	}
	return resp, b
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	h := map[string]string{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h[hdr[i]] = hdr[i+1]
	}
	return do(t, noRedirect, req{url: url, hdr: h})
}

func wantStatus(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d (body %s)", resp.Request.Method, resp.Request.URL, resp.StatusCode, status, body)
	}
	if got := resp.Header.Get("X-Error-Code"); got != code {
		t.Fatalf("%s: X-Error-Code %q, want %q", resp.Request.URL, got, code)
	}
}

func fileBytes(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tinyRepo(t), filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gitSHA1(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestScanHashes(t *testing.T) {
	_, r := newHub(t, Options{})
	if len(r.Files) != 17 {
		t.Errorf("%d files", len(r.Files))
	}
	lfs := map[string]bool{}
	for _, f := range r.Files {
		b := fileBytes(t, f.Path)
		if f.Size != int64(len(b)) || f.SHA256 != sha256hex(b) {
			t.Errorf("%s: size/sha256 mismatch", f.Path)
		}
		if f.LFS {
			lfs[f.Path] = true
			ptr := fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", sha256hex(b), len(b))
			if f.GitSHA1 != gitSHA1([]byte(ptr)) || f.PointerSize != int64(len(ptr)) {
				t.Errorf("%s: pointer blob id/size mismatch", f.Path)
			}
		} else if f.GitSHA1 != gitSHA1(b) {
			t.Errorf("%s: git sha1 %s, want %s", f.Path, f.GitSHA1, gitSHA1(b))
		}
	}
	want := map[string]bool{
		"model-00000-of-00001.safetensors": true, "model-00001-of-00001.safetensors": true,
		"original/model.safetensors": true, "metal/model.bin": true,
	}
	if !reflect.DeepEqual(lfs, want) {
		t.Errorf("LFS files %v", lfs)
	}
	if len(r.Commit) != 40 || !isHex(r.Commit) {
		t.Errorf("commit %q", r.Commit)
	}
}

func TestCommitIsGitCompatible(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sub", "deeper"), 0o755)
	for p, c := range map[string]string{"a.json": "{}", "b.txt": "hello\n", "sub/c": "x", "sub/deeper/d.md": "# d", "sub.txt": "sorting"} {
		os.WriteFile(filepath.Join(dir, filepath.FromSlash(p)), []byte(c), 0o644)
	}
	s := New(Options{})
	defer s.Close()
	r1, err := s.AddRepo("a/b", dir)
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := s.AddRepo("a/c", dir)
	if r1.Commit != r2.Commit {
		t.Error("same content, different commits")
	}
	if git, err := exec.LookPath("git"); err == nil {
		cmd := exec.Command(git, "init", "-q")
		cmd.Dir = dir
		if cmd.Run() == nil {
			exec.Command(git, "-C", dir, "add", "-A").Run()
			out, err := exec.Command(git, "-C", dir, "write-tree").Output()
			if err == nil && strings.TrimSpace(string(out)) != r1.Revisions["main"].Tree {
				t.Errorf("tree id %s, git says %s", r1.Revisions["main"].Tree, out)
			}
		}
	}
	os.WriteFile(filepath.Join(dir, "b.txt"), []byte("changed\n"), 0o644)
	r3, _ := s.AddRepo("a/b", dir)
	if r3.Commit == r1.Commit {
		t.Error("content changed, commit did not")
	}
}

func TestInfo(t *testing.T) {
	s, r := newHub(t, Options{})
	for _, u := range []string{
		"/api/models/" + repoID,
		"/api/models/" + repoID + "/revision/main",
		"/api/models/" + repoID + "/revision/HEAD",
		"/api/models/" + repoID + "/revision/" + r.Commit,
		"/api/models/" + repoID + "/revision/" + r.Commit[:10],
	} {
		resp, body := get(t, s.URL+u)
		wantStatus(t, resp, body, 200, "")
		var info struct {
			ID, ModelID, Sha string
			Private          bool
			Gated            any
			Siblings         []map[string]any
		}
		if err := json.Unmarshal(body, &info); err != nil {
			t.Fatal(err)
		}
		if info.ID != repoID || info.ModelID != repoID || info.Sha != r.Commit || info.Private || info.Gated != false {
			t.Errorf("%s: %+v", u, info)
		}
		if len(info.Siblings) != len(r.Files) || info.Siblings[0]["rfilename"] != r.Files[0].Path || len(info.Siblings[0]) != 1 {
			t.Errorf("%s: siblings %v", u, info.Siblings)
		}
	}

	resp, body := get(t, s.URL+"/api/models/"+repoID+"?blobs=true")
	wantStatus(t, resp, body, 200, "")
	var info struct {
		Siblings []struct {
			RFilename string
			BlobID    string
			Size      int64
			LFS       *struct {
				SHA256      string
				Size        int64
				PointerSize int64
			}
		}
	}
	json.Unmarshal(body, &info)
	for i, sb := range info.Siblings {
		f := r.Files[i]
		if sb.RFilename != f.Path || sb.BlobID != f.GitSHA1 || sb.Size != f.Size || (sb.LFS != nil) != f.LFS {
			t.Errorf("sibling %+v vs %+v", sb, f)
		}
		if f.LFS && (sb.LFS.SHA256 != f.SHA256 || sb.LFS.Size != f.Size || sb.LFS.PointerSize != f.PointerSize) {
			t.Errorf("sibling lfs %+v", sb.LFS)
		}
	}

	// expand selects fields, as huggingface.js's modelInfo asks.
	resp, body = get(t, s.URL+"/api/models/"+repoID+"/revision/main?expand=sha&expand=private&expand=gated")
	var m map[string]any
	json.Unmarshal(body, &m)
	keys := []string{}
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !reflect.DeepEqual(keys, []string{"_id", "gated", "id", "private", "sha"}) || m["sha"] != r.Commit {
		t.Errorf("expand: %v", m)
	}
	if bytes.Contains(body, []byte("xet")) {
		t.Error("info mentions xet")
	}
}

type treeItem struct {
	Type string `json:"type"`
	OID  string `json:"oid"`
	Size int64  `json:"size"`
	Path string `json:"path"`
	LFS  *struct {
		OID         string `json:"oid"`
		Size        int64  `json:"size"`
		PointerSize int64  `json:"pointerSize"`
	} `json:"lfs"`
	LastCommit *struct{ ID string } `json:"lastCommit"`
}

// listTree follows Link headers and returns every entry and the page count.
func listTree(t *testing.T, s *Server, url string) ([]treeItem, int) {
	t.Helper()
	var all []treeItem
	pages := 0
	for url != "" {
		resp, body := get(t, url)
		wantStatus(t, resp, body, 200, "")
		if bytes.Contains(body, []byte("xetHash")) {
			t.Fatal("tree entry with xetHash")
		}
		var page []treeItem
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		pages++
		url = ""
		if l := resp.Header.Get("Link"); l != "" {
			if !strings.HasSuffix(l, `>; rel="next"`) || !strings.HasPrefix(l, "<"+s.URL+"/") {
				t.Fatalf("Link %q", l)
			}
			url = strings.TrimSuffix(strings.TrimPrefix(l, "<"), `>; rel="next"`)
		}
		if pages > 100 {
			t.Fatal("pagination does not end")
		}
	}
	return all, pages
}

func TestTreePagination(t *testing.T) {
	s, r := newHub(t, Options{PageSize: 2})
	items, pages := listTree(t, s, s.URL+"/api/models/"+repoID+"/tree/main?recursive=true&expand=false")
	// 17 files + 2 directories, 2 per page
	if len(items) != 19 || pages != 10 {
		t.Fatalf("%d entries in %d pages", len(items), pages)
	}
	files := 0
	for _, it := range items {
		if it.Type == "directory" {
			if it.Path != "metal" && it.Path != "original" || len(it.OID) != 40 {
				t.Errorf("dir %+v", it)
			}
			continue
		}
		files++
		b := fileBytes(t, it.Path)
		if it.Size != int64(len(b)) {
			t.Errorf("%s: size %d", it.Path, it.Size)
		}
		if it.LFS != nil {
			if it.LFS.OID != sha256hex(b) || it.LFS.Size != int64(len(b)) || it.LFS.PointerSize == 0 {
				t.Errorf("%s: lfs %+v", it.Path, it.LFS)
			}
			f, _ := r.Revisions["main"].File(it.Path)
			if it.OID != f.GitSHA1 {
				t.Errorf("%s: oid %s", it.Path, it.OID)
			}
		} else if it.OID != gitSHA1(b) {
			t.Errorf("%s: oid %s, want git sha1 %s", it.Path, it.OID, gitSHA1(b))
		}
	}
	if files != 17 {
		t.Errorf("%d files", files)
	}

	// Non-recursive root: 13 files and 2 directories.
	items, _ = listTree(t, s, s.URL+"/api/models/"+repoID+"/tree/main")
	if len(items) != 15 {
		t.Errorf("root listing: %d entries", len(items))
	}
	// A subdirectory, at the commit, with a limit and expand.
	items, pages = listTree(t, s, s.URL+"/api/models/"+repoID+"/tree/"+r.Commit+"/original?limit=1&expand=true")
	if len(items) != 3 || pages != 3 || items[0].Path != "original/config.json" || items[0].LastCommit == nil || items[0].LastCommit.ID != r.Commit {
		t.Errorf("original/: %+v in %d pages", items, pages)
	}
	resp, body := get(t, s.URL+"/api/models/"+repoID+"/tree/main/nope")
	wantStatus(t, resp, body, 404, "EntryNotFound")
	resp, body = get(t, s.URL+"/api/models/"+repoID+"/tree/main?cursor=garbage")
	wantStatus(t, resp, body, 400, "")
}

func TestPathsInfo(t *testing.T) {
	s, r := newHub(t, Options{})
	u := s.URL + "/api/models/" + repoID + "/paths-info/" + r.Commit
	check := func(body []byte) {
		t.Helper()
		var items []treeItem
		if err := json.Unmarshal(body, &items); err != nil {
			t.Fatal(err)
		}
		if len(items) != 3 || items[0].Path != "config.json" || items[1].Path != "model-00000-of-00001.safetensors" || items[2].Type != "directory" {
			t.Fatalf("paths-info: %+v", items)
		}
		if items[0].OID != gitSHA1(fileBytes(t, "config.json")) || items[1].LFS == nil || items[1].LFS.OID != sha256hex(fileBytes(t, items[1].Path)) {
			t.Errorf("paths-info oids: %+v", items)
		}
	}
	// JSON, as huggingface.js sends it.
	resp, body := do(t, noRedirect, req{method: "POST", url: u, hdr: map[string]string{"Content-Type": "application/json"},
		body: strings.NewReader(`{"paths":["config.json","model-00000-of-00001.safetensors","missing.txt","original"],"expand":false}`)})
	wantStatus(t, resp, body, 200, "")
	check(body)
	// Form, as huggingface_hub sends it.
	form := url.Values{"paths": {"config.json", "model-00000-of-00001.safetensors", "original"}, "expand": {"True"}}
	resp, body = do(t, noRedirect, req{method: "POST", url: u, hdr: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
		body: strings.NewReader(form.Encode())})
	wantStatus(t, resp, body, 200, "")
	check(body)
	if !bytes.Contains(body, []byte("lastCommit")) {
		t.Error("expand=True without lastCommit")
	}
	resp, body = get(t, u)
	wantStatus(t, resp, body, 405, "")
}

func TestResolveRegularFile(t *testing.T) {
	s, r := newHub(t, Options{})
	want := fileBytes(t, "config.json")
	for _, rev := range []string{"main", r.Commit} {
		u := s.ResolveURL(repoID, rev, "config.json")
		resp, body := get(t, u, "Accept-Encoding", "identity")
		wantStatus(t, resp, body, 200, "")
		h := resp.Header
		if !bytes.Equal(body, want) || h.Get("X-Repo-Commit") != r.Commit || h.Get("ETag") != `"`+gitSHA1(want)+`"` ||
			h.Get("Accept-Ranges") != "bytes" || h.Get("Content-Type") != "application/octet-stream" ||
			h.Get("Content-Length") != strconv.Itoa(len(want)) || h.Get("Content-Encoding") != "" || h.Get("X-Linked-Etag") != "" {
			t.Errorf("resolve %s: headers %v", rev, h)
		}
		resp, body = do(t, noRedirect, req{method: "HEAD", url: u})
		if resp.StatusCode != 200 || resp.ContentLength != int64(len(want)) || len(body) != 0 || resp.Header.Get("X-Repo-Commit") != r.Commit {
			t.Errorf("HEAD: %d %d", resp.StatusCode, resp.ContentLength)
		}
	}
	// Go's default client asks for gzip; the body must stay identity.
	resp, err := http.Get(s.ResolveURL(repoID, "main", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(b, fileBytes(t, "tokenizer.json")) || resp.Uncompressed {
		t.Error("tokenizer.json differs or was compressed")
	}
	// raw/ on an LFS file gives the pointer.
	resp, body := get(t, s.URL+"/"+repoID+"/raw/main/original/model.safetensors")
	wantStatus(t, resp, body, 200, "")
	if !strings.HasPrefix(string(body), "version https://git-lfs.github.com/spec/v1\noid sha256:") {
		t.Errorf("raw pointer %q", body)
	}
}

func TestResolveLFSRedirect(t *testing.T) {
	s, r := newHub(t, Options{Tokens: []string{"tok"}})
	name := "model-00001-of-00001.safetensors"
	want := fileBytes(t, name)
	f, _ := r.Revisions["main"].File(name)
	u := s.ResolveURL(repoID, "main", name)
	for _, m := range []string{"HEAD", "GET"} {
		resp, _ := do(t, noRedirect, req{method: m, url: u, hdr: map[string]string{"Authorization": "Bearer tok"}})
		h := resp.Header
		if resp.StatusCode != 302 || h.Get("X-Repo-Commit") != r.Commit || h.Get("X-Linked-Etag") != `"`+sha256hex(want)+`"` ||
			h.Get("X-Linked-Size") != strconv.Itoa(len(want)) || h.Get("ETag") != `"`+f.GitSHA1+`"` {
			t.Fatalf("%s: %d %v", m, resp.StatusCode, h)
		}
		loc, err := url.Parse(h.Get("Location"))
		if err != nil || loc.Host == strings.TrimPrefix(s.URL, "http://") || !strings.HasPrefix(h.Get("Location"), s.CDNURL+"/") ||
			loc.Query().Get("sig") == "" || loc.Query().Get("expires") == "" {
			t.Fatalf("Location %q", h.Get("Location"))
		}
	}
	resp, _ := do(t, noRedirect, req{method: "HEAD", url: u})
	loc := resp.Header.Get("Location")

	// The signed URL works without credentials…
	resp, body := get(t, loc)
	if resp.StatusCode != 200 || !bytes.Equal(body, want) || resp.Header.Get("ETag") != `"`+sha256hex(want)+`"` ||
		resp.Header.Get("Accept-Ranges") != "bytes" || !strings.Contains(resp.Header.Get("Content-Disposition"), name) {
		t.Fatalf("CDN GET: %d, %d bytes, %v", resp.StatusCode, len(body), resp.Header)
	}
	resp, body = do(t, noRedirect, req{method: "HEAD", url: loc})
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(want)) || len(body) != 0 {
		t.Errorf("CDN HEAD: %d %d", resp.StatusCode, resp.ContentLength)
	}
	// …refuses a leaked token…
	resp, body = get(t, loc, "Authorization", "Bearer tok")
	if resp.StatusCode != 400 {
		t.Errorf("CDN with Authorization: %d %s", resp.StatusCode, body)
	}
	// …which is what a naive Go client does: it keeps Authorization on a
	// redirect to the same host name with another port.
	resp, _ = do(t, http.DefaultClient, req{url: u, hdr: map[string]string{"Authorization": "Bearer tok"}})
	if resp.StatusCode != 400 {
		t.Errorf("followed redirect with token: %d, want 400", resp.StatusCode)
	}
	// …and tampered URLs.
	lu, _ := url.Parse(loc)
	q := lu.Query()
	q.Set("expires", strconv.FormatInt(time.Now().Add(10*time.Hour).Unix(), 10))
	lu.RawQuery = q.Encode()
	resp, _ = get(t, lu.String())
	if resp.StatusCode != 403 {
		t.Errorf("tampered expires: %d", resp.StatusCode)
	}
	q = lu.Query()
	q.Set("path", "original/model.safetensors")
	lu.RawQuery = q.Encode()
	resp, _ = get(t, lu.String())
	if resp.StatusCode != 403 {
		t.Errorf("tampered path: %d", resp.StatusCode)
	}

	// Expired URLs are refused.
	s2, _ := newHub(t, Options{URLTTL: -time.Second})
	resp, _ = do(t, noRedirect, req{method: "HEAD", url: s2.ResolveURL(repoID, "main", name)})
	resp, body = get(t, resp.Header.Get("Location"))
	if resp.StatusCode != 403 || !strings.Contains(string(body), "expired") {
		t.Errorf("expired URL: %d %s", resp.StatusCode, body)
	}

	// A CDN host name different from the hub's: Go's client drops the token.
	s3, _ := newHub(t, Options{CDNHost: "localhost", Tokens: []string{"tok"}})
	resp, body = do(t, http.DefaultClient, req{url: s3.ResolveURL(repoID, "main", name), hdr: map[string]string{"Authorization": "Bearer tok"}})
	if resp.StatusCode != 200 || !bytes.Equal(body, want) || resp.Request.URL.Hostname() != "localhost" {
		t.Errorf("cross-host redirect: %d", resp.StatusCode)
	}
}

func TestRanges(t *testing.T) {
	s, _ := newHub(t, Options{})
	direct := s.ResolveURL(repoID, "main", "tokenizer.json")
	resp, _ := do(t, noRedirect, req{method: "HEAD", url: s.ResolveURL(repoID, "main", "original/model.safetensors")})
	cdn := resp.Header.Get("Location")
	for _, tc := range []struct {
		name string
		url  string
		data []byte
	}{
		{"direct", direct, fileBytes(t, "tokenizer.json")},
		{"cdn", cdn, fileBytes(t, "original/model.safetensors")},
	} {
		n := int64(len(tc.data))
		for _, c := range []struct {
			rng        string
			status     int
			start, end int64 // inclusive; for 416 ignored
		}{
			{"bytes=0-0", 206, 0, 0},
			{"bytes=10-19", 206, 10, 19},
			{"bytes=100-", 206, 100, n - 1},
			{"bytes=-5", 206, n - 5, n - 1},
			{"bytes=5-999999999", 206, 5, n - 1},
			{fmt.Sprintf("bytes=%d-", n-1), 206, n - 1, n - 1},
			{fmt.Sprintf("bytes=%d-", n), 416, 0, 0},
			{fmt.Sprintf("bytes=%d-%d", n+10, n+20), 416, 0, 0},
			{"bytes=-0", 416, 0, 0},
			{"bytes=0-1,5-6", 200, 0, n - 1}, // multi-range: whole file
			{"bytes=9-3", 200, 0, n - 1},     // malformed: ignored
			{"items=0-3", 200, 0, n - 1},
		} {
			resp, body := get(t, tc.url, "Range", c.rng)
			if resp.StatusCode != c.status {
				t.Errorf("%s %s: status %d, want %d", tc.name, c.rng, resp.StatusCode, c.status)
				continue
			}
			switch c.status {
			case 206:
				if !bytes.Equal(body, tc.data[c.start:c.end+1]) {
					t.Errorf("%s %s: wrong bytes", tc.name, c.rng)
				}
				if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", c.start, c.end, n) {
					t.Errorf("%s %s: Content-Range %q", tc.name, c.rng, cr)
				}
			case 416:
				if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes */%d", n) {
					t.Errorf("%s %s: Content-Range %q", tc.name, c.rng, cr)
				}
			case 200:
				if !bytes.Equal(body, tc.data) {
					t.Errorf("%s %s: wrong body", tc.name, c.rng)
				}
			}
		}
		// If-Range with a stale validator gets the whole file.
		resp, body := get(t, tc.url, "Range", "bytes=0-9", "If-Range", `"stale"`)
		if resp.StatusCode != 200 || len(body) != len(tc.data) {
			t.Errorf("%s If-Range stale: %d", tc.name, resp.StatusCode)
		}
		resp, _ = get(t, tc.url, "Range", "bytes=0-9", "If-Range", resp.Header.Get("ETag"))
		if resp.StatusCode != 206 {
			t.Errorf("%s If-Range current: %d", tc.name, resp.StatusCode)
		}
	}
}

func TestErrors(t *testing.T) {
	alt := t.TempDir()
	os.WriteFile(filepath.Join(alt, "config.json"), []byte(`{"v":2}`), 0o644)
	s, r := newHub(t, Options{}, WithBranch("refs/pr/1", alt))
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/api/models/nobody/nothing", 404, "RepoNotFound"},
		{"GET", "/api/models/nobody/nothing/tree/main", 404, "RepoNotFound"},
		{"HEAD", "/nobody/nothing/resolve/main/config.json", 404, "RepoNotFound"},
		{"GET", "/api/models/" + repoID + "/revision/nope", 404, "RevisionNotFound"},
		{"GET", "/api/models/" + repoID + "/tree/nope", 404, "RevisionNotFound"},
		{"GET", "/api/models/" + repoID + "/revision/" + strings.Repeat("0", 40), 404, "RevisionNotFound"},
		{"HEAD", "/" + repoID + "/resolve/nope/config.json", 404, "RevisionNotFound"},
		{"HEAD", "/" + repoID + "/resolve/main/missing.json", 404, "EntryNotFound"},
		{"GET", "/" + repoID + "/resolve/main/missing.json", 404, "EntryNotFound"},
		{"GET", "/" + repoID + "/resolve/refs%2Fpr%2F1/tokenizer.json", 404, "EntryNotFound"},
		{"GET", "/" + repoID + "/resolve/refs%2Fpr%2F1/config.json", 200, ""},
		{"GET", "/api/models/" + repoID + "/revision/refs%2Fpr%2F1", 200, ""},
		{"GET", "/nothing-here", 404, ""},
		{"POST", "/" + repoID + "/resolve/main/config.json", 405, ""},
	} {
		resp, body := do(t, noRedirect, req{method: c.method, url: s.URL + c.path})
		wantStatus(t, resp, body, c.status, c.code)
		if c.code == "EntryNotFound" && resp.Header.Get("X-Repo-Commit") == "" {
			t.Errorf("%s: EntryNotFound without X-Repo-Commit", c.path)
		}
		if c.method == "GET" && c.code != "" {
			var e struct{ Error string }
			if json.Unmarshal(body, &e) != nil || e.Error == "" || resp.Header.Get("X-Error-Message") == "" {
				t.Errorf("%s: error body %q", c.path, body)
			}
		}
	}
	resp, body := get(t, s.URL+"/api/models/"+repoID+"/revision/refs%2Fpr%2F1")
	var info struct{ Sha string }
	json.Unmarshal(body, &info)
	rv := r.Revisions["refs/pr/1"]
	if info.Sha != rv.Commit || info.Sha == r.Commit || len(rv.Files) != 1 {
		t.Errorf("refs/pr/1 sha %s", info.Sha)
	}
	_ = resp
	// AddRevision adds a branch at run time.
	if _, err := s.AddRevision(repoID, "v2", alt); err != nil {
		t.Fatal(err)
	}
	resp, body = get(t, s.ResolveURL(repoID, "v2", "config.json"))
	if resp.StatusCode != 200 || string(body) != `{"v":2}` || resp.Header.Get("X-Repo-Commit") != rv.Commit {
		t.Errorf("v2: %d %s", resp.StatusCode, body)
	}
}

func TestAuth(t *testing.T) {
	s := New(Options{Tokens: []string{"good", "other"}})
	defer s.Close()
	dir := tinyRepo(t)
	if _, err := s.AddRepo("org/private", dir, Private("good")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddRepo("org/gated", dir, Gated("good")); err != nil {
		t.Fatal(err)
	}
	s.AddRepo("org/public", dir)
	bearer := func(tok string) map[string]string {
		if tok == "" {
			return nil
		}
		return map[string]string{"Authorization": "Bearer " + tok}
	}
	for _, c := range []struct {
		path, tok string
		status    int
		code      string
	}{
		{"/api/models/org/public", "", 200, ""},
		{"/api/models/org/public", "good", 200, ""},
		{"/api/models/org/public", "bad", 401, ""},
		{"/org/public/resolve/main/config.json", "bad", 401, ""},
		{"/api/models/org/nothing", "bad", 401, ""},
		{"/api/models/org/private", "", 401, "RepoNotFound"},
		{"/api/models/org/private/tree/main", "", 401, "RepoNotFound"},
		{"/org/private/resolve/main/config.json", "", 401, "RepoNotFound"},
		{"/api/models/org/private", "bad", 401, ""},
		{"/api/models/org/private", "other", 404, "RepoNotFound"},
		{"/api/models/org/private", "good", 200, ""},
		{"/org/private/resolve/main/config.json", "good", 200, ""},
		{"/api/models/org/gated", "", 200, ""},
		{"/api/models/org/gated/tree/main", "", 200, ""},
		{"/org/gated/resolve/main/config.json", "", 401, "GatedRepo"},
		{"/org/gated/resolve/main/model-00000-of-00001.safetensors", "", 401, "GatedRepo"},
		{"/org/gated/resolve/main/config.json", "other", 403, "GatedRepo"},
		{"/org/gated/resolve/main/config.json", "good", 200, ""},
		{"/org/gated/resolve/main/model-00000-of-00001.safetensors", "good", 302, ""},
		{"/api/whoami-v2", "good", 200, ""},
		{"/api/whoami-v2", "", 401, ""},
	} {
		resp, body := do(t, noRedirect, req{url: s.URL + c.path, hdr: bearer(c.tok)})
		wantStatus(t, resp, body, c.status, c.code)
		if c.status == 403 && !strings.Contains(string(body), "Access to model org/gated is restricted") {
			t.Errorf("403 body %s", body)
		}
	}
	resp, body := get(t, s.URL+"/api/models/org/gated")
	var info struct{ Gated any }
	json.Unmarshal(body, &info)
	if info.Gated != "manual" {
		t.Errorf("gated = %v", info.Gated)
	}
	_ = resp
	if err := s.SetGateAccepted("org/gated", "other", true); err != nil {
		t.Fatal(err)
	}
	resp, body = do(t, noRedirect, req{url: s.URL + "/org/gated/resolve/main/config.json", hdr: bearer("other")})
	wantStatus(t, resp, body, 200, "")
}

func TestFault503(t *testing.T) {
	s, _ := newHub(t, Options{Faults: []Fault{{Kind: Fault503, Count: 2, RetryAfter: 3}}})
	u := s.URL + "/api/models/" + repoID
	for i := 0; i < 2; i++ {
		resp, body := get(t, u)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" {
			t.Fatalf("request %d: %d %v %s", i, resp.StatusCode, resp.Header, body)
		}
	}
	resp, _ := get(t, u)
	if resp.StatusCode != 200 {
		t.Fatalf("third request: %d", resp.StatusCode)
	}
	if st := s.Stats(); st.Faults[Fault503] != 2 || st.Status[503] != 2 || st.Requests[EndpointInfo] != 3 {
		t.Errorf("stats %+v", st)
	}
	// Restricted to the CDN, changed at run time.
	s.SetFaults(Fault{Kind: Fault503, Count: 1, Endpoints: []Endpoint{EndpointCDN}, RetryAfter: -1})
	name := "model-00000-of-00001.safetensors"
	resp, _ = do(t, noRedirect, req{method: "HEAD", url: s.ResolveURL(repoID, "main", name)})
	if resp.StatusCode != 302 {
		t.Fatalf("resolve: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	resp, _ = get(t, loc)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "" {
		t.Errorf("CDN: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = get(t, loc)
	if resp.StatusCode != 200 {
		t.Errorf("CDN retry: %d", resp.StatusCode)
	}
	// Path-restricted; a glob without "/" also matches base names.
	s.SetFaults(Fault{Kind: Fault503, Count: 1, Path: "*.safetensors"})
	if resp, _ := get(t, s.ResolveURL(repoID, "main", "original/model.safetensors")); resp.StatusCode != 503 {
		t.Errorf("original/model.safetensors with *.safetensors: %d", resp.StatusCode)
	}
	s.SetFaults(Fault{Kind: Fault503, Count: -1, Path: "original/*"})
	if resp, _ := get(t, s.ResolveURL(repoID, "main", "original/config.json")); resp.StatusCode != 503 {
		t.Errorf("original/config.json: %d", resp.StatusCode)
	}
	if resp, _ := get(t, s.ResolveURL(repoID, "main", "config.json")); resp.StatusCode != 200 {
		t.Errorf("config.json: %d", resp.StatusCode)
	}
	if resp, _ := get(t, s.URL+"/api/models/"+repoID); resp.StatusCode != 200 {
		t.Errorf("info: %d", resp.StatusCode)
	}
}

// rawGet reads a response body fully, returning what arrived and the error.
func rawGet(t *testing.T, u string, hdr ...string) (*http.Response, []byte, error) {
	t.Helper()
	r, _ := http.NewRequest("GET", u, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := noRedirect.Do(r)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func cdnURL(t *testing.T, s *Server, name string) string {
	t.Helper()
	resp, _ := do(t, noRedirect, req{method: "HEAD", url: s.ResolveURL(repoID, "main", name)})
	if resp.StatusCode != 302 {
		t.Fatalf("resolve %s: %d", name, resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

func TestFaultDropAndTruncate(t *testing.T) {
	for _, kind := range []FaultKind{FaultDrop, FaultTruncate} {
		t.Run(kind.String(), func(t *testing.T) {
			name := "model-00001-of-00001.safetensors"
			want := fileBytes(t, name)
			s, _ := newHub(t, Options{Faults: []Fault{{Kind: kind, Count: 2, AfterBytes: 100_000, Path: "*.safetensors"}}})
			loc := cdnURL(t, s, name)
			// A short body (the huggingface.js probe) does not trigger or
			// consume the fault.
			if resp, b, err := rawGet(t, loc, "Range", "bytes=0-0"); err != nil || resp.StatusCode != 206 || len(b) != 1 {
				t.Fatalf("probe: %v", err)
			}
			// Non-matching paths are untouched.
			if _, b, err := rawGet(t, s.ResolveURL(repoID, "main", "tokenizer.json")); err != nil || len(b) != len(fileBytes(t, "tokenizer.json")) {
				t.Fatalf("tokenizer.json: %v", err)
			}
			for i := 0; i < 2; i++ {
				resp, b, err := rawGet(t, loc)
				if err == nil {
					t.Fatalf("attempt %d: no error, %d bytes", i, len(b))
				}
				if resp.ContentLength != int64(len(want)) || len(b) != 100_000 || !bytes.Equal(b, want[:100_000]) {
					t.Errorf("attempt %d: Content-Length %d, got %d bytes (%v)", i, resp.ContentLength, len(b), err)
				}
				if kind == FaultTruncate && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("truncate: error %v, want unexpected EOF", err)
				}
			}
			// Resume with a range: the fault count is spent.
			resp, b, err := rawGet(t, loc, "Range", "bytes=100000-")
			if err != nil || resp.StatusCode != 206 || !bytes.Equal(b, want[100_000:]) {
				t.Fatalf("resume: %v", err)
			}
			st := s.Stats()
			if st.Faults[kind] != 2 {
				t.Errorf("faults %v", st.Faults)
			}
			if got, exp := st.Bytes(repoID, name), int64(1+2*100_000+len(want)-100_000); got != exp {
				t.Errorf("body bytes %d, want %d", got, exp)
			}
			if st.FileRequests[repoID+"/"+name] != 4 {
				t.Errorf("file requests %d", st.FileRequests[repoID+"/"+name])
			}
		})
	}
}

func TestFaultDropDirectFile(t *testing.T) {
	// Regular files (served by the hub itself) get body faults too.
	s, _ := newHub(t, Options{})
	s.AddFault(Fault{Kind: FaultDrop, Count: 1, AfterBytes: 1000})
	_, b, err := rawGet(t, s.ResolveURL(repoID, "main", "tokenizer.json"))
	if err == nil || len(b) != 1000 {
		t.Fatalf("dropped GET: %d bytes, %v", len(b), err)
	}
	_, b, err = rawGet(t, s.ResolveURL(repoID, "main", "tokenizer.json"))
	if err != nil || !bytes.Equal(b, fileBytes(t, "tokenizer.json")) {
		t.Fatalf("second GET: %v", err)
	}
}

func TestFaultCorrupt(t *testing.T) {
	name := "model-00000-of-00001.safetensors"
	want := fileBytes(t, name)
	s, _ := newHub(t, Options{Faults: []Fault{{Kind: FaultCorrupt, Count: -1, AfterBytes: 4242}}})
	loc := cdnURL(t, s, name)
	for i := 0; i < 3; i++ {
		resp, b, err := rawGet(t, loc)
		if err != nil || resp.StatusCode != 200 || len(b) != len(want) {
			t.Fatalf("GET: %v", err)
		}
		var diff []int
		for j := range b {
			if b[j] != want[j] {
				diff = append(diff, j)
			}
		}
		if !reflect.DeepEqual(diff, []int{4242}) || b[4242] != want[4242]^0xFF {
			t.Fatalf("differences at %v", diff)
		}
	}
	// The offset is relative to the body: a range starting at 4000 has the
	// flipped byte at file offset 8242.
	_, b, _ := rawGet(t, loc, "Range", "bytes=4000-")
	if b[4242] == want[8242] || !bytes.Equal(b[:4242], want[4000:8242]) {
		t.Error("ranged corruption misplaced")
	}
	s.ClearFaults()
	_, b, _ = rawGet(t, loc)
	if !bytes.Equal(b, want) {
		t.Error("corrupted after ClearFaults")
	}
	if s.Stats().Faults[FaultCorrupt] != 4 {
		t.Errorf("faults %v", s.Stats().Faults)
	}
}

func TestFaultProbabilitySeeded(t *testing.T) {
	run := func() []int {
		s, _ := newHub(t, Options{Seed: 99, Faults: []Fault{{Kind: Fault503, Count: -1, Probability: 0.5}}})
		var codes []int
		for i := 0; i < 20; i++ {
			resp, _ := get(t, s.URL+"/api/models/"+repoID)
			codes = append(codes, resp.StatusCode)
		}
		return codes
	}
	a, b := run(), run()
	if !reflect.DeepEqual(a, b) {
		t.Errorf("not reproducible: %v vs %v", a, b)
	}
	n := 0
	for _, c := range a {
		if c == 503 {
			n++
		}
	}
	if n == 0 || n == 20 {
		t.Errorf("%d of 20 failed", n)
	}
}

func writeRandom(t *testing.T, path string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{1}).Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRateAndHeaderDelay(t *testing.T) {
	dir := t.TempDir()
	want := writeRandom(t, filepath.Join(dir, "big.bin"), 2<<20)
	s := New(Options{})
	defer s.Close()
	if _, err := s.AddRepo("a/big", dir); err != nil {
		t.Fatal(err)
	}
	resp, _ := do(t, noRedirect, req{method: "HEAD", url: s.ResolveURL("a/big", "main", "big.bin")})
	loc := resp.Header.Get("Location")

	s.SetRate(8 << 20) // 2 MiB at 8 MiB/s ≈ 250 ms per connection
	var wg sync.WaitGroup
	start := time.Now()
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, b, err := rawGet(t, loc)
			if err == nil && !bytes.Equal(b, want) {
				err = errors.New("wrong bytes")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("4 × 2 MiB at 8 MiB/s each took %s, want ≈250ms", d)
	}
	s.SetRate(0)
	s.SetHeaderDelay(150 * time.Millisecond)
	start = time.Now()
	get(t, s.URL+"/api/models/a/big")
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("header delay: %s", d)
	}
	s.SetHeaderDelay(0)
	start = time.Now()
	rawGet(t, loc)
	if d := time.Since(start); d > 150*time.Millisecond {
		t.Errorf("uncapped 2 MiB took %s", d)
	}
}

func TestStats(t *testing.T) {
	s, _ := newHub(t, Options{})
	get(t, s.URL+"/api/models/"+repoID)
	get(t, s.URL+"/api/models/"+repoID+"/tree/main")
	do(t, noRedirect, req{method: "HEAD", url: s.ResolveURL(repoID, "main", "config.json")})
	get(t, s.ResolveURL(repoID, "main", "config.json"), "Range", "bytes=10-29")
	loc := cdnURL(t, s, "original/model.safetensors")
	get(t, loc, "Range", "bytes=1000-")
	n := int64(len(fileBytes(t, "original/model.safetensors")))
	st := s.Stats()
	wantReq := map[Endpoint]int64{EndpointInfo: 1, EndpointTree: 1, EndpointResolveHead: 2, EndpointResolveGet: 1, EndpointCDN: 1}
	if !reflect.DeepEqual(st.Requests, wantReq) {
		t.Errorf("requests %v", st.Requests)
	}
	if st.Bytes(repoID, "config.json") != 20 || st.Bytes(repoID, "original/model.safetensors") != n-1000 || st.TotalBodyBytes != 20+n-1000 {
		t.Errorf("bytes %v", st.BodyBytes)
	}
	if st.Status[200] != 3 || st.Status[206] != 2 || st.Status[302] != 1 {
		t.Errorf("status %v", st.Status)
	}
	s.ResetStats()
	if st := s.Stats(); len(st.Requests) != 0 || len(st.BodyBytes) != 0 || st.TotalBodyBytes != 0 {
		t.Errorf("after reset: %+v", st)
	}
}

func TestFixedAddress(t *testing.T) {
	pick := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	addr, cdn := pick(), pick()
	s, err := Start(Options{Addr: addr, CDNAddr: cdn})
	if err != nil {
		t.Skipf("port reuse race: %v", err)
	}
	defer s.Close()
	if s.URL != "http://"+addr || s.CDNURL != "http://"+cdn {
		t.Errorf("URL %s CDN %s", s.URL, s.CDNURL)
	}
	if _, err := Start(Options{Addr: addr}); err == nil {
		t.Error("second server on the same address")
	}
}

func TestThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	dir := t.TempDir()
	const size = 128 << 20
	writeRandom(t, filepath.Join(dir, "w.safetensors"), size)
	s := New(Options{})
	defer s.Close()
	s.AddRepo("a/w", dir)
	loc := cdnURL2(t, s, "a/w", "w.safetensors")
	buf := make([]byte, 1<<20)
	best := 0.0
	for i := 0; i < 3; i++ {
		start := time.Now()
		resp, err := http.Get(loc)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, resp.Body, buf)
		resp.Body.Close()
		if err != nil || n != size {
			t.Fatalf("%d bytes, %v", n, err)
		}
		best = max(best, float64(size)/time.Since(start).Seconds())
	}
	t.Logf("uncapped loopback throughput: %.2f GB/s", best/1e9)
	if best < 300e6 {
		t.Errorf("throughput %.0f MB/s", best/1e6)
	}
}

func cdnURL2(t *testing.T, s *Server, repo, name string) string {
	resp, _ := do(t, noRedirect, req{method: "HEAD", url: s.ResolveURL(repo, "main", name)})
	return resp.Header.Get("Location")
}

func TestConcurrentClientsAndRuntimeChanges(t *testing.T) {
	s, r := newHub(t, Options{PageSize: 3})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for _, f := range r.Files {
				resp, err := http.Get(s.ResolveURL(repoID, "main", f.Path))
				if err != nil {
					t.Error(err)
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || sha256hex(b) != f.SHA256 {
					t.Errorf("%s: %v", f.Path, err)
				}
				if i == 0 {
					s.SetFaults()
					s.SetRate(0)
					s.Stats()
				}
			}
		}(i)
	}
	wg.Wait()
}

func TestFaultCutIsExactWithSlowReader(t *testing.T) {
	// The cut must deliver exactly AfterBytes even when the client lags
	// behind (a reset discards unsent data, so the server waits for acks).
	dir := t.TempDir()
	want := writeRandom(t, filepath.Join(dir, "w.safetensors"), 24<<20)
	for _, kind := range []FaultKind{FaultDrop, FaultTruncate} {
		s := New(Options{Faults: []Fault{{Kind: kind, Count: 1, AfterBytes: 12 << 20}}})
		defer s.Close()
		s.AddRepo("a/w", dir)
		resp, err := noRedirect.Get(cdnURL2(t, s, "a/w", "w.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // let the server fill the socket buffers and cut
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil || len(b) != 12<<20 || !bytes.Equal(b, want[:12<<20]) {
			t.Errorf("%s: got %d bytes, err %v", kind, len(b), err)
		}
		if got := s.Stats().Bytes("a/w", "w.safetensors"); got != 12<<20 {
			t.Errorf("%s: stats %d", kind, got)
		}
	}
}

// TestHuggingFaceJSInterop runs @huggingface/hub's snapshotDownload against
// the server (gated repo, token, 3-entry pages, CDN redirects). It needs
// node and @huggingface/hub in $HUBTEST_HFJS_DIR, else in the npm prefix
// .ci/run fills (testproc.NPMDir); without them it skips (fails under CI).
func TestHuggingFaceJSInterop(t *testing.T) {
	jsDir := os.Getenv("HUBTEST_HFJS_DIR")
	if jsDir == "" {
		jsDir = testproc.NPMDir(t, "@huggingface/hub")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testproc.Missing(t, "node is not installed")
	}
	s, r := newHub(t, Options{PageSize: 3, Tokens: []string{"hf_test"}}, Gated("hf_test"))
	cache := t.TempDir()
	script, _ := filepath.Abs(filepath.Join("testdata", "hfjs_snapshot.mjs"))
	cmd := exec.Command(node, script, s.URL, repoID, cache, "hf_test")
	cmd.Env = append(os.Environ(), "HFJS_DIR="+jsDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	snap := lines[len(lines)-1]
	if want := filepath.Join(cache, "models--openai--gpt-oss-20b", "snapshots", r.Commit); snap != want {
		t.Fatalf("snapshot dir %q, want %q", snap, want)
	}
	for _, f := range r.Files {
		b, err := os.ReadFile(filepath.Join(snap, filepath.FromSlash(f.Path)))
		if err != nil || sha256hex(b) != f.SHA256 {
			t.Errorf("%s: %v", f.Path, err)
		}
		blob := f.GitSHA1
		if f.LFS {
			blob = f.SHA256
		}
		if _, err := os.Stat(filepath.Join(cache, "models--openai--gpt-oss-20b", "blobs", blob)); err != nil {
			t.Errorf("%s: blob %s missing", f.Path, blob)
		}
	}
	if st := s.Stats(); st.Status[400] != 0 || st.Status[403] != 0 {
		t.Errorf("client errors: %v", st.Status)
	}
}
