package hf

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gptoss/gptoss/registry"
)

// A hostile (or broken) Hub, written with httptest: each test swaps in the
// tree or resolve handler it needs; the rest answers correctly.

const (
	hostileRepo   = "evil/model"
	hostileCommit = "0123456789abcdef0123456789abcdef01234567"
)

var (
	lfsContent = bytes.Repeat([]byte("0123456789abcdef"), 64) // 1024 bytes
	lfsSHA     = sha256Hex(lfsContent)
	cfgContent = []byte(`{"model_type":"gpt_oss"}`)
	cfgGitSHA1 = "f00dfacef00dfacef00dfacef00dfacef00dface"
)

var timeZero time.Time

func sha256Hex(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

type hostile struct {
	*httptest.Server
	tree    http.HandlerFunc
	resolve func(w http.ResponseWriter, r *http.Request, file string)
	sha     string // what the revision endpoint answers
}

func validTree() []map[string]any {
	return []map[string]any{
		{"type": "directory", "path": "sub", "oid": strings.Repeat("1", 40)},
		{"type": "file", "path": "config.json", "size": len(cfgContent), "oid": cfgGitSHA1},
		{"type": "file", "path": "sub/model.safetensors", "size": len(lfsContent), "oid": strings.Repeat("2", 40),
			"lfs": map[string]any{"oid": lfsSHA, "size": len(lfsContent), "pointerSize": 130}},
	}
}

func writeJSONResp(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// serveRange answers a request for content like a well-behaved server.
func serveRange(w http.ResponseWriter, r *http.Request, content []byte) {
	w.Header().Set("X-Repo-Commit", hostileCommit)
	http.ServeContent(w, r, "", timeZero, bytes.NewReader(content))
}

func newHostile(t *testing.T) *hostile {
	h := &hostile{sha: hostileCommit}
	h.tree = func(w http.ResponseWriter, r *http.Request) { writeJSONResp(w, validTree()) }
	h.resolve = func(w http.ResponseWriter, r *http.Request, file string) {
		switch file {
		case "config.json":
			serveRange(w, r, cfgContent)
		case "sub/model.safetensors":
			serveRange(w, r, lfsContent)
		default:
			http.NotFound(w, r)
		}
	}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath()
		switch {
		case strings.HasPrefix(p, "/api/models/"+hostileRepo+"/revision/"):
			writeJSONResp(w, map[string]any{"sha": h.sha})
		case strings.HasPrefix(p, "/api/models/"+hostileRepo+"/tree/"+hostileCommit):
			h.tree(w, r)
		case strings.HasPrefix(p, "/"+hostileRepo+"/resolve/"+hostileCommit+"/"):
			h.resolve(w, r, strings.TrimPrefix(r.URL.Path, "/"+hostileRepo+"/resolve/"+hostileCommit+"/"))
		default:
			http.Error(w, "no route "+p, http.StatusTeapot)
		}
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hostile) source(t *testing.T) *Source { return newSource(t, h.URL, "hf_secret") }

func (h *hostile) resolveErr(t *testing.T) error {
	_, err := h.source(t).Resolve(context.Background(), hfRef(hostileRepo, "main"))
	return err
}

// opened resolves the (valid) listing and returns the source and its files.
func (h *hostile) opened(t *testing.T) (*Source, registry.File, registry.File) {
	t.Helper()
	s := h.source(t)
	m := resolve(t, s, hfRef(hostileRepo, "main"))
	lfs, _ := m.Lookup("sub/model.safetensors")
	cfg, _ := m.Lookup("config.json")
	return s, lfs, cfg
}

func TestHostileBaseline(t *testing.T) {
	h := newHostile(t)
	s, lfs, cfg := h.opened(t)
	if lfs.SHA256 != lfsSHA || lfs.GitSHA1 != "" || cfg.GitSHA1 != cfgGitSHA1 || cfg.SHA256 != "" {
		t.Fatalf("listing: %+v %+v", lfs, cfg)
	}
	if got := readRange(t, s, lfs, 10, 20); !bytes.Equal(got, lfsContent[10:30]) {
		t.Fatal("baseline read")
	}
}

func TestHostileListings(t *testing.T) {
	entry := func(path string, size int, lfsSize int) map[string]any {
		e := map[string]any{"type": "file", "path": path, "size": size, "oid": strings.Repeat("3", 40)}
		if lfsSize >= 0 {
			e["lfs"] = map[string]any{"oid": lfsSHA, "size": lfsSize}
		}
		return e
	}
	cases := map[string][]map[string]any{
		"dotdot":             {entry("../../etc/passwd", 10, -1)},
		"inner dotdot":       {entry("a/../../b", 10, -1)},
		"absolute":           {entry("/etc/passwd", 10, -1)},
		"backslash":          {entry(`..\x`, 10, -1)},
		"empty element":      {entry("a//b", 10, -1)},
		"lfs size disagrees": {entry("model.safetensors", 1024, 2048)},
		"negative size":      {entry("x", -5, -1)},
		"huge size":          {entry("x", 1<<50, -1)},
		"duplicate":          {entry("x", 1, -1), entry("x", 1, -1)},
		"file and directory": {entry("a", 1, -1), entry("a/b", 1, -1)},
		"bad git sha1":       {{"type": "file", "path": "x", "size": 1, "oid": "not-hex"}},
		"bad lfs sha256":     {{"type": "file", "path": "x", "size": 1, "oid": strings.Repeat("3", 40), "lfs": map[string]any{"oid": "zz", "size": 1}}},
		"no files":           {},
		"only directories":   {{"type": "directory", "path": "d", "oid": strings.Repeat("3", 40)}},
		"control character":  {entry("a\x00b", 1, -1)},
		"dot element":        {entry("./a", 1, -1)},
		"windows drive":      {entry("C:/x", 1, -1)},
		"dotdot alone":       {{"type": "file", "path": "..", "size": 1, "oid": strings.Repeat("3", 40)}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			h := newHostile(t)
			h.tree = func(w http.ResponseWriter, r *http.Request) { writeJSONResp(w, entries) }
			if err := h.resolveErr(t); !errors.Is(err, registry.ErrInvalidManifest) {
				t.Errorf("%v, want ErrInvalidManifest", err)
			}
		})
	}
	t.Run("not json", func(t *testing.T) {
		h := newHostile(t)
		h.tree = func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>") }
		if err := h.resolveErr(t); !errors.Is(err, registry.ErrInvalidManifest) {
			t.Errorf("%v, want ErrInvalidManifest", err)
		}
	})
}

func TestHostileRevision(t *testing.T) {
	for name, sha := range map[string]string{"empty": "", "short": "abc", "upper": strings.ToUpper(hostileCommit), "junk": "../../x"} {
		h := newHostile(t)
		h.sha = sha
		if err := h.resolveErr(t); !errors.Is(err, registry.ErrInvalidManifest) {
			t.Errorf("%s commit %q: %v", name, sha, err)
		}
	}
	// Asked for a commit, answered another.
	h := newHostile(t)
	h.sha = strings.Repeat("9", 40)
	_, err := h.source(t).Resolve(context.Background(), hfRef(hostileRepo, hostileCommit))
	if !errors.Is(err, registry.ErrInvalidManifest) {
		t.Errorf("pinned commit answered with another: %v", err)
	}
}

func TestHostilePagination(t *testing.T) {
	var otherHits atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		writeJSONResp(w, []map[string]any{})
	}))
	defer other.Close()
	for name, link := range map[string]func(h *hostile) string{
		"other host": func(*hostile) string {
			return other.URL + "/api/models/" + hostileRepo + "/tree/" + hostileCommit + "?cursor=2"
		},
		"other scheme": func(h *hostile) string { return strings.Replace(h.URL, "http://", "https://", 1) + "/x?cursor=2" },
		"other port":   func(h *hostile) string { return h.URL[:strings.LastIndex(h.URL, ":")] + ":1/x" },
		"protocol-relative": func(*hostile) string {
			return "//" + strings.TrimPrefix(other.URL, "http://") + "/x"
		},
	} {
		h := newHostile(t)
		h.tree = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "<"+link(h)+`>; rel="next"`)
			writeJSONResp(w, validTree())
		}
		if err := h.resolveErr(t); !errors.Is(err, registry.ErrInvalidManifest) {
			t.Errorf("%s: %v, want ErrInvalidManifest", name, err)
		}
	}
	if n := otherHits.Load(); n != 0 {
		t.Errorf("the source followed a pagination link to another host %d times", n)
	}

	// A relative same-origin link is followed; entries from both pages count.
	h := newHostile(t)
	var pages atomic.Int64
	h.tree = func(w http.ResponseWriter, r *http.Request) {
		all := validTree()
		if r.URL.Query().Get("cursor") == "" {
			pages.Add(1)
			w.Header().Set("Link", `<`+r.URL.Path+`?recursive=true&cursor=p2>; rel="next", <http://elsewhere/x>; rel="last"`)
			writeJSONResp(w, all[:2])
			return
		}
		pages.Add(1)
		writeJSONResp(w, all[2:])
	}
	m := resolve(t, h.source(t), hfRef(hostileRepo, "main"))
	if len(m.Files) != 2 || pages.Load() != 2 {
		t.Errorf("%d files over %d pages", len(m.Files), pages.Load())
	}

	// A listing that pages forever is cut off.
	h = newHostile(t)
	h.tree = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", `<`+r.URL.Path+`?cursor=again>; rel="next"`)
		writeJSONResp(w, []map[string]any{})
	}
	if testing.Short() {
		return
	}
	if err := h.resolveErr(t); !errors.Is(err, registry.ErrInvalidManifest) {
		t.Errorf("endless pagination: %v", err)
	}
}

func TestHostileResolve(t *testing.T) {
	redirectTo := func(w http.ResponseWriter, loc string, hdr map[string]string) {
		w.Header().Set("X-Repo-Commit", hostileCommit)
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusFound)
	}
	cases := []struct {
		name     string
		lfs      bool // open the LFS file (else config.json)
		off, n   int64
		resolve  func(w http.ResponseWriter, r *http.Request)
		sentinel error // nil: any error
	}{
		{"X-Linked-Size disagrees", true, 0, -1, func(w http.ResponseWriter, r *http.Request) {
			redirectTo(w, "/cdn", map[string]string{"X-Linked-Size": "1025", "X-Linked-Etag": `"` + lfsSHA + `"`})
		}, registry.ErrSizeMismatch},
		{"X-Linked-Etag disagrees", true, 0, -1, func(w http.ResponseWriter, r *http.Request) {
			redirectTo(w, "/cdn", map[string]string{"X-Linked-Size": "1024", "X-Linked-Etag": `W/"` + sha256Hex([]byte("x")) + `"`})
		}, registry.ErrDigestMismatch},
		{"X-Repo-Commit differs", false, 0, -1, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Repo-Commit", strings.Repeat("9", 40))
			w.Write(cfgContent)
		}, registry.ErrInvalidManifest},
		{"Content-Range total disagrees", true, 10, 10, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes 10-19/2048")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(lfsContent[10:20])
		}, registry.ErrSizeMismatch},
		{"Content-Length of a whole file disagrees", false, 0, -1, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			w.Write(cfgContent[:5])
		}, registry.ErrSizeMismatch},
		{"wrong range served", true, 10, 10, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes 0-9/1024")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(lfsContent[0:10])
		}, nil},
		{"malformed Content-Range", true, 10, 10, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "items 10-19")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(lfsContent[10:20])
		}, nil},
		{"Range ignored (200 for a part)", true, 100, 50, func(w http.ResponseWriter, r *http.Request) {
			w.Write(lfsContent)
		}, nil},
		{"redirect to file://", true, 0, -1, func(w http.ResponseWriter, r *http.Request) {
			redirectTo(w, "file:///etc/passwd", nil)
		}, nil},
		{"redirect loop", true, 0, -1, func(w http.ResponseWriter, r *http.Request) {
			redirectTo(w, r.URL.Path, nil)
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHostile(t)
			h.resolve = func(w http.ResponseWriter, r *http.Request, file string) { c.resolve(w, r) }
			s, lfs, cfg := h.opened(t)
			f := cfg
			if c.lfs {
				f = lfs
			}
			rc, err := s.Open(context.Background(), f, c.off, c.n)
			if err == nil {
				b, rerr := io.ReadAll(rc)
				rc.Close()
				t.Fatalf("Open succeeded (%d bytes, read error %v)", len(b), rerr)
			}
			if c.sentinel != nil {
				if !errors.Is(err, c.sentinel) {
					t.Errorf("%v, want %v", err, c.sentinel)
				}
				if !registry.IsPermanent(err) {
					t.Errorf("%v is not permanent", err)
				}
			}
		})
	}
}

func TestHostileShortBodies(t *testing.T) {
	// Content-Length promises more than the connection carries.
	h := newHostile(t)
	h.resolve = func(w http.ResponseWriter, r *http.Request, file string) {
		w.Header().Set("X-Repo-Commit", hostileCommit)
		w.Header().Set("Content-Length", strconv.Itoa(len(lfsContent)))
		w.WriteHeader(http.StatusOK)
		w.Write(lfsContent[:300])
		http.NewResponseController(w).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}
	s, lfs, _ := h.opened(t)
	rc, err := s.Open(context.Background(), lfs, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, io.ErrUnexpectedEOF) || !bytes.Equal(b, lfsContent[:300]) {
		t.Errorf("short body with Content-Length: %d bytes, %v", len(b), err)
	}

	// A chunked body that ends cleanly, too early.
	h = newHostile(t)
	h.resolve = func(w http.ResponseWriter, r *http.Request, file string) {
		w.Header().Set("X-Repo-Commit", hostileCommit)
		w.WriteHeader(http.StatusOK)
		w.Write(lfsContent[:100])
		http.NewResponseController(w).Flush()
		w.Write(lfsContent[100:200])
	}
	s, lfs, _ = h.opened(t)
	rc, err = s.Open(context.Background(), lfs, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(b) != 200 {
		t.Errorf("short chunked body: %d bytes, %v", len(b), err)
	}

	// A chunked body longer than asked is cut at the range's end.
	h = newHostile(t)
	h.resolve = func(w http.ResponseWriter, r *http.Request, file string) {
		w.Header().Set("X-Repo-Commit", hostileCommit)
		w.Header().Set("Content-Range", "bytes 0-99/1024")
		w.WriteHeader(http.StatusPartialContent)
		http.NewResponseController(w).Flush()
		w.Write(lfsContent) // all of it
	}
	s, lfs, _ = h.opened(t)
	if got := readRange(t, s, lfs, 0, 100); !bytes.Equal(got, lfsContent[:100]) {
		t.Errorf("overlong body: %d bytes", len(got))
	}
}

// A same-host redirect keeps the token (a renamed repo); a cross-host one
// drops it and the signed URL is then used directly.
func TestHostileRedirectAuth(t *testing.T) {
	var cdnAuth atomic.Value
	var cdnHits atomic.Int64
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cdnHits.Add(1)
		cdnAuth.Store(r.Header.Get("Authorization"))
		http.ServeContent(w, r, "", timeZero, bytes.NewReader(lfsContent))
	}))
	defer cdn.Close()
	h := newHostile(t)
	var hops atomic.Int64
	var relAuth atomic.Value
	h.resolve = func(w http.ResponseWriter, r *http.Request, file string) {
		switch file {
		case "sub/model.safetensors":
			hops.Add(1)
			w.Header().Set("X-Repo-Commit", hostileCommit)
			w.Header().Set("Location", "/"+hostileRepo+"/resolve/"+hostileCommit+"/moved")
			w.WriteHeader(http.StatusTemporaryRedirect)
		case "moved":
			relAuth.Store(r.Header.Get("Authorization"))
			w.Header().Set("X-Repo-Commit", hostileCommit)
			w.Header().Set("X-Linked-Size", "1024")
			w.Header().Set("X-Linked-Etag", `"`+lfsSHA+`"`)
			w.Header().Set("Location", cdn.URL+"/blob?sig=s3cr3t")
			w.WriteHeader(http.StatusFound)
		}
	}
	s, lfs, _ := h.opened(t)
	if got := readRange(t, s, lfs, 5, 10); !bytes.Equal(got, lfsContent[5:15]) {
		t.Fatal("wrong bytes through two redirects")
	}
	if a, _ := relAuth.Load().(string); a != "Bearer hf_secret" {
		t.Errorf("same-host redirect lost the token: %q", a)
	}
	if a, _ := cdnAuth.Load().(string); a != "" {
		t.Errorf("token sent to the CDN: %q", a)
	}
	if got := readRange(t, s, lfs, 500, 10); !bytes.Equal(got, lfsContent[500:510]) {
		t.Fatal("second part")
	}
	if hops.Load() != 1 || cdnHits.Load() != 2 {
		t.Errorf("hub hops %d, CDN hits %d: want the CDN URL reused", hops.Load(), cdnHits.Load())
	}
	if a, _ := cdnAuth.Load().(string); a != "" {
		t.Errorf("token sent to the remembered CDN URL: %q", a)
	}
}

func TestHostileErrorBodies(t *testing.T) {
	// A huge error body is not read whole, and the message is the server's.
	h := newHostile(t)
	h.resolve = func(w http.ResponseWriter, r *http.Request, file string) {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":"`)
		w.Write(bytes.Repeat([]byte("x"), 1<<20))
	}
	s, _, cfg := h.opened(t)
	_, err := s.Open(context.Background(), cfg, 0, -1)
	if !errors.Is(err, registry.ErrNotFound) || len(err.Error()) > 10000 {
		t.Errorf("404 with a huge body: %.200v", err)
	}
	// Retry-After is capped.
	h = newHostile(t)
	h.resolve = func(w http.ResponseWriter, r *http.Request, file string) {
		w.Header().Set("Retry-After", "999999999")
		w.WriteHeader(http.StatusTooManyRequests)
	}
	s, _, cfg = h.opened(t)
	_, err = s.Open(context.Background(), cfg, 0, -1)
	var he *registry.HTTPError
	if !errors.As(err, &he) || !he.Temporary() || he.RetryAfter <= 0 || he.RetryAfter > 10*60e9 {
		t.Errorf("429: %v", err)
	}
}

// Credentials in the endpoint URL (a mirror behind basic auth) never appear
// in messages.
func TestEndpointCredentialsNotInErrors(t *testing.T) {
	h := newHostile(t)
	h.resolve = func(w http.ResponseWriter, r *http.Request, file string) {
		w.Header().Set("X-Error-Code", "GatedRepo")
		w.WriteHeader(http.StatusForbidden)
	}
	ep := strings.Replace(h.URL, "http://", "http://mirroruser:hunter2@", 1)
	s := newSource(t, ep, "hf_secret")
	m := resolve(t, s, hfRef(hostileRepo, "main"))
	f, _ := m.Lookup("config.json")
	_, err := s.Open(context.Background(), f, 0, -1)
	if !errors.Is(err, registry.ErrForbidden) || !strings.Contains(err.Error(), "accept") {
		t.Fatalf("gated: %v", err)
	}
	for _, text := range []string{err.Error(), m.Source, s.Describe()} {
		if strings.Contains(text, "hunter2") || strings.Contains(text, "hf_secret") {
			t.Errorf("credentials in %q", text)
		}
	}
}
