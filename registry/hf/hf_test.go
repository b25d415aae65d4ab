package hf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gptoss/gptoss/internal/fixture"
	"github.com/gptoss/gptoss/internal/hubtest"
	"github.com/gptoss/gptoss/registry"
)

// The tests run the source against internal/hubtest (real HTTP on loopback)
// serving fixture.Tiny(), written once per run.

const repoID = "openai/gpt-oss-20b"

// tinyRepo returns a directory holding fixture.Tiny(), written once per run.
func tinyRepo(t *testing.T) string { return fixture.Cached(t, fixture.Tiny()) }

func TestMain(m *testing.M) {
	code := m.Run()
	fixture.RemoveCached()
	os.Exit(code)
}

func newHub(t *testing.T, opts hubtest.Options, ropts ...hubtest.RepoOption) (*hubtest.Server, hubtest.Repo) {
	t.Helper()
	s, err := hubtest.Start(opts)
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

func newSource(t *testing.T, endpoint, token string) *Source {
	t.Helper()
	s, err := New(Options{Endpoint: endpoint, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hfRef(repo, rev string) registry.Ref {
	return registry.Ref{Scheme: registry.SchemeHF, Repo: repo, Revision: rev}
}

func resolve(t *testing.T, s *Source, ref registry.Ref) *registry.Manifest {
	t.Helper()
	m, err := s.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatalf("Resolve(%s): %v", ref, err)
	}
	return m
}

func readRange(t *testing.T, s *Source, f registry.File, off, n int64) []byte {
	t.Helper()
	rc, err := s.Open(context.Background(), f, off, n)
	if err != nil {
		t.Fatalf("Open(%s, %d, %d): %v", f.Path, off, n, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s [%d,+%d): %v", f.Path, off, n, err)
	}
	return b
}

func localBytes(t *testing.T, dir, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkListing compares a manifest with the hub's own description of the
// revision: every file once, sizes and the right kind of digest.
func checkListing(t *testing.T, m *registry.Manifest, want hubtest.Revision) {
	t.Helper()
	if m.Revision != want.Commit {
		t.Errorf("revision %s, hub commit %s", m.Revision, want.Commit)
	}
	if len(m.Files) != len(want.Files) {
		t.Errorf("%d files listed, hub has %d", len(m.Files), len(want.Files))
	}
	seen := map[string]int{}
	for _, f := range m.Files {
		seen[f.Path]++
	}
	for _, hf := range want.Files {
		if seen[hf.Path] != 1 {
			t.Errorf("%s listed %d times", hf.Path, seen[hf.Path])
			continue
		}
		f, _ := m.Lookup(hf.Path)
		if f.Size != hf.Size {
			t.Errorf("%s: size %d, hub %d", f.Path, f.Size, hf.Size)
		}
		if f.Role != registry.RoleOf(f.Path) {
			t.Errorf("%s: role %q", f.Path, f.Role)
		}
		if hf.LFS {
			if f.SHA256 != hf.SHA256 || f.GitSHA1 != "" {
				t.Errorf("LFS %s: sha256 %q gitsha1 %q, want sha256 %s and no git sha1", f.Path, f.SHA256, f.GitSHA1, hf.SHA256)
			}
		} else if f.GitSHA1 != hf.GitSHA1 || f.SHA256 != "" {
			t.Errorf("regular %s: sha256 %q gitsha1 %q, want git sha1 %s and no sha256", f.Path, f.SHA256, f.GitSHA1, hf.GitSHA1)
		}
	}
}

func TestResolveMain(t *testing.T) {
	srv, repo := newHub(t, hubtest.Options{})
	s := newSource(t, srv.URL, "")
	for _, rev := range []string{"", "main"} {
		m := resolve(t, s, hfRef(repoID, rev))
		checkListing(t, m, repo.Revisions["main"])
		if m.Name != repoID {
			t.Errorf("name %q", m.Name)
		}
		if !strings.Contains(m.Source, repoID+"@"+repo.Commit) || !strings.Contains(m.Source, srv.URL) {
			t.Errorf("source %q", m.Source)
		}
	}
	// A catalog reference names the manifest after the catalog repo.
	ref, err := registry.Parse("20b")
	if err != nil {
		t.Fatal(err)
	}
	if m := resolve(t, s, ref); m.Name != "openai/gpt-oss-20b" || m.Revision != repo.Commit {
		t.Errorf("catalog ref: %s@%s", m.Name, m.Revision)
	}
	if _, err := s.Resolve(context.Background(), registry.Ref{Scheme: registry.SchemeLocal, Repo: "/x"}); err == nil {
		t.Error("resolved a local reference")
	}
}

func TestResolveRevisions(t *testing.T) {
	srv, repo := newHub(t, hubtest.Options{})
	v2 := t.TempDir()
	os.WriteFile(filepath.Join(v2, "config.json"), []byte(`{"v":2}`), 0o644)
	os.MkdirAll(filepath.Join(v2, "sub"), 0o755)
	os.WriteFile(filepath.Join(v2, "sub", "model.safetensors"), bytes.Repeat([]byte("v2"), 5000), 0o644)
	rv2, err := srv.AddRevision(repoID, "v2", v2)
	if err != nil {
		t.Fatal(err)
	}
	pr := t.TempDir()
	os.WriteFile(filepath.Join(pr, "README.md"), []byte("pull request"), 0o644)
	rvPR, err := srv.AddRevision(repoID, "refs/pr/1", pr)
	if err != nil {
		t.Fatal(err)
	}
	repo, _ = srv.Repo(repoID)
	s := newSource(t, srv.URL, "")

	// A pinned commit, full and abbreviated.
	for _, rev := range []string{repo.Commit, repo.Commit[:7]} {
		checkListing(t, resolve(t, s, hfRef(repoID, rev)), repo.Revisions["main"])
	}
	// Another branch: its own commit, files, and Open reads that commit.
	m := resolve(t, s, hfRef(repoID, "v2"))
	checkListing(t, m, rv2)
	for _, p := range []string{"config.json", "sub/model.safetensors"} {
		f, _ := m.Lookup(p)
		if got := readRange(t, s, f, 0, -1); !bytes.Equal(got, localBytes(t, v2, p)) {
			t.Errorf("v2 %s: wrong bytes", p)
		}
	}
	// refs/pr/1 is sent as one escaped segment.
	srv.ResetStats()
	m = resolve(t, s, hfRef(repoID, "refs/pr/1"))
	checkListing(t, m, rvPR)
	f, _ := m.Lookup("README.md")
	if got := readRange(t, s, f, 0, -1); string(got) != "pull request" {
		t.Errorf("refs/pr/1 README: %q", got)
	}
	if st := srv.Stats(); st.Requests[hubtest.EndpointOther] != 0 {
		t.Errorf("requests the hub could not route: %v", st.Requests)
	}
	// Switching back to main forgets v2's state.
	m = resolve(t, s, hfRef(repoID, "main"))
	f, _ = m.Lookup("config.json")
	if got := readRange(t, s, f, 0, -1); !bytes.Equal(got, localBytes(t, tinyRepo(t), "config.json")) {
		t.Error("main config.json after v2: wrong bytes")
	}
}

func TestResolvePagination(t *testing.T) {
	srv, repo := newHub(t, hubtest.Options{PageSize: 2})
	s := newSource(t, srv.URL, "")
	m := resolve(t, s, hfRef(repoID, "main"))
	checkListing(t, m, repo.Revisions["main"])
	st := srv.Stats()
	// 17 files and 2 directories, 2 entries a page.
	if n := st.Requests[hubtest.EndpointTree]; n < int64(len(repo.Files)/2) {
		t.Errorf("%d tree pages for %d files with PageSize 2", n, len(repo.Files))
	}
	if st.Requests[hubtest.EndpointInfo] != 1 {
		t.Errorf("info requests: %d", st.Requests[hubtest.EndpointInfo])
	}
}

func TestOpenRanges(t *testing.T) {
	srv, repo := newHub(t, hubtest.Options{})
	s := newSource(t, srv.URL, "")
	m := resolve(t, s, hfRef(repoID, ""))
	var lfs, regular int
	for _, hf := range repo.Files {
		if hf.LFS {
			lfs++
		} else {
			regular++
		}
		want := localBytes(t, tinyRepo(t), hf.Path)
		f, _ := m.Lookup(hf.Path)
		size := f.Size
		cases := []struct{ off, n int64 }{
			{0, -1}, {0, size}, {0, 1}, {size - 1, 1}, {size - 1, -1},
			{size / 2, min(100, size-size/2)}, {size / 3, -1}, {size, 0}, {size, -1},
		}
		for _, c := range cases {
			got := readRange(t, s, f, c.off, c.n)
			end := size
			if c.n >= 0 {
				end = c.off + c.n
			}
			if !bytes.Equal(got, want[c.off:end]) {
				t.Errorf("%s (lfs %v) [%d,+%d): %d bytes, not the file's", f.Path, hf.LFS, c.off, c.n, len(got))
			}
		}
	}
	if lfs == 0 || regular == 0 {
		t.Fatalf("fixture has %d LFS and %d regular files; want both", lfs, regular)
	}
	// Ranges outside the file are refused before any request.
	f, _ := m.Lookup("config.json")
	for _, c := range []struct{ off, n int64 }{{-1, 1}, {f.Size + 1, -1}, {0, f.Size + 1}, {f.Size - 1, 2}} {
		if _, err := s.Open(context.Background(), f, c.off, c.n); err == nil || !registry.IsPermanent(err) {
			t.Errorf("Open(%d,%d) outside the file: %v", c.off, c.n, err)
		}
	}
	// A file that is not in the repository: 404 EntryNotFound.
	ghost := registry.File{Path: "no/such.json", Size: 10, GitSHA1: strings.Repeat("0", 40)}
	if _, err := s.Open(context.Background(), ghost, 0, -1); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Open of a missing file: %v", err)
	}
}

func TestOpenBeforeResolve(t *testing.T) {
	s := newSource(t, "http://127.0.0.1:1", "")
	if _, err := s.Open(context.Background(), registry.File{Path: "a", Size: 1}, 0, 1); err == nil {
		t.Fatal("Open before Resolve succeeded")
	}
}

func TestOpenReusesCDNURL(t *testing.T) {
	srv, _ := newHub(t, hubtest.Options{})
	s := newSource(t, srv.URL, "")
	m := resolve(t, s, hfRef(repoID, ""))
	f, _ := m.Lookup("original/model.safetensors")
	want := localBytes(t, tinyRepo(t), f.Path)
	srv.ResetStats()
	const parts = 5
	var got []byte
	for i := int64(0); i < parts; i++ {
		off := f.Size * i / parts
		end := f.Size * (i + 1) / parts
		got = append(got, readRange(t, s, f, off, end-off)...)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("parts do not reassemble the file")
	}
	st := srv.Stats()
	if st.Requests[hubtest.EndpointResolveGet] != 1 || st.Requests[hubtest.EndpointCDN] != parts {
		t.Errorf("resolve-get %d, cdn %d: want 1 and %d (the CDN URL reused)", st.Requests[hubtest.EndpointResolveGet], st.Requests[hubtest.EndpointCDN], parts)
	}
	if b := st.Bytes(repoID, f.Path); b != f.Size {
		t.Errorf("%d body bytes for a %d-byte file", b, f.Size)
	}
	// A new Resolve forgets the URLs.
	resolve(t, s, hfRef(repoID, ""))
	srv.ResetStats()
	readRange(t, s, f, 0, 10)
	if n := srv.Stats().Requests[hubtest.EndpointResolveGet]; n != 1 {
		t.Errorf("resolve-get after a new Resolve: %d", n)
	}
}

func TestOpenConcurrent(t *testing.T) {
	srv, _ := newHub(t, hubtest.Options{})
	s := newSource(t, srv.URL, "")
	m := resolve(t, s, hfRef(repoID, ""))
	var wg sync.WaitGroup
	for _, p := range []string{"original/model.safetensors", "model-00000-of-00001.safetensors", "tokenizer.json"} {
		f, _ := m.Lookup(p)
		want := localBytes(t, tinyRepo(t), p)
		const parts = 6
		for i := int64(0); i < parts; i++ {
			off, end := f.Size*i/parts, f.Size*(i+1)/parts
			wg.Add(1)
			go func() {
				defer wg.Done()
				rc, err := s.Open(context.Background(), f, off, end-off)
				if err != nil {
					t.Error(err)
					return
				}
				defer rc.Close()
				got, err := io.ReadAll(rc)
				if err != nil || !bytes.Equal(got, want[off:end]) {
					t.Errorf("%s [%d,%d): %v", p, off, end, err)
				}
			}()
		}
	}
	wg.Wait()
}

// The CDN answers 400 to any request with an Authorization header, so a
// download with a token only succeeds if the token stays on the hub.
func TestTokenNotSentToCDN(t *testing.T) {
	for _, cdnHost := range []string{"", "localhost"} {
		t.Run("cdnhost="+cdnHost, func(t *testing.T) {
			srv, _ := newHub(t, hubtest.Options{Tokens: []string{"hf_good"}, CDNHost: cdnHost}, hubtest.Gated("hf_good"))
			if cdnHost != "" && !strings.Contains(srv.CDNURL, cdnHost) {
				t.Fatalf("CDN URL %s", srv.CDNURL)
			}
			s := newSource(t, srv.URL, "hf_good")
			m := resolve(t, s, hfRef(repoID, ""))
			for _, p := range []string{"original/model.safetensors", "config.json"} {
				f, _ := m.Lookup(p)
				want := localBytes(t, tinyRepo(t), p)
				if got := readRange(t, s, f, 0, -1); !bytes.Equal(got, want) {
					t.Errorf("%s: wrong bytes", p)
				}
				if got := readRange(t, s, f, 1, f.Size-2); !bytes.Equal(got, want[1:f.Size-1]) {
					t.Errorf("%s ranged: wrong bytes", p)
				}
			}
			st := srv.Stats()
			if st.Status[400] != 0 || st.Requests[hubtest.EndpointCDN] == 0 {
				t.Errorf("statuses %v, requests %v", st.Status, st.Requests)
			}
			if strings.Contains(m.Source, "hf_good") || strings.Contains(s.Describe(), "hf_good") {
				t.Errorf("token in description: %s", m.Source)
			}
		})
	}
}

func TestExpiredCDNURLReresolves(t *testing.T) {
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	srv, _ := newHub(t, hubtest.Options{Now: now, URLTTL: time.Minute})
	s := newSource(t, srv.URL, "")
	m := resolve(t, s, hfRef(repoID, ""))
	f, _ := m.Lookup("original/model.safetensors")
	want := localBytes(t, tinyRepo(t), f.Path)
	readRange(t, s, f, 0, 100)
	skew.Store(int64(2 * time.Minute)) // the remembered URL has expired
	srv.ResetStats()
	if got := readRange(t, s, f, 100, 1000); !bytes.Equal(got, want[100:1100]) {
		t.Fatal("wrong bytes after re-resolving")
	}
	st := srv.Stats()
	if st.Status[403] != 1 || st.Requests[hubtest.EndpointResolveGet] != 1 || st.Requests[hubtest.EndpointCDN] != 2 {
		t.Errorf("want one 403 from the CDN, one resolve and a second CDN request: %v %v", st.Status, st.Requests)
	}
	// The fresh URL is remembered in turn.
	srv.ResetStats()
	readRange(t, s, f, 2000, 10)
	if st := srv.Stats(); st.Requests[hubtest.EndpointResolveGet] != 0 || st.Requests[hubtest.EndpointCDN] != 1 {
		t.Errorf("after re-resolve: %v", st.Requests)
	}
}

// A CDN that refuses every signed URL (a clock far off) is an error that
// does not blame the licence gate.
func TestCDNRefusesURL(t *testing.T) {
	srv, _ := newHub(t, hubtest.Options{URLTTL: -time.Hour})
	s := newSource(t, srv.URL, "")
	m := resolve(t, s, hfRef(repoID, ""))
	f, _ := m.Lookup("original/model.safetensors")
	_, err := s.Open(context.Background(), f, 0, 10)
	if err == nil {
		t.Fatal("Open with an expired URL succeeded")
	}
	var he *registry.HTTPError
	if !errors.As(err, &he) || he.Status != 403 {
		t.Fatalf("want an HTTPError 403: %v", err)
	}
	if strings.Contains(err.Error(), "gated") || strings.Contains(err.Error(), "accept") {
		t.Errorf("a CDN 403 is reported as a gated repo: %v", err)
	}
	if strings.Contains(err.Error(), "sig=") || strings.Contains(err.Error(), "expires=") {
		t.Errorf("error shows the signed query: %v", err)
	}
}

func TestErrors(t *testing.T) {
	srv, repo := newHub(t, hubtest.Options{Tokens: []string{"hf_good", "hf_other"}})
	if _, err := srv.AddRepo("org/gated", tinyRepo(t), hubtest.Gated("hf_good")); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.AddRepo("org/private", tinyRepo(t), hubtest.Private("hf_good")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	resolveErr := func(token string, ref registry.Ref) error {
		_, err := newSource(t, srv.URL, token).Resolve(ctx, ref)
		return err
	}
	openErr := func(token, repo string) error {
		s := newSource(t, srv.URL, token)
		m, err := s.Resolve(ctx, hfRef(repo, ""))
		if err != nil {
			return fmt.Errorf("resolve: %w", err)
		}
		f, _ := m.Lookup("original/model.safetensors")
		rc, err := s.Open(ctx, f, 0, -1)
		if err == nil {
			rc.Close()
		}
		return err
	}
	check := func(name string, err error, sentinel error, words ...string) {
		t.Helper()
		if !errors.Is(err, sentinel) {
			t.Errorf("%s: %v, want %v", name, err, sentinel)
			return
		}
		if !registry.IsPermanent(err) {
			t.Errorf("%s: %v is not permanent", name, err)
		}
		for _, w := range words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", name, err, w)
			}
		}
	}
	check("unknown repo", resolveErr("", hfRef("org/nope", "")), registry.ErrNotFound, "org/nope")
	check("unknown revision", resolveErr("", hfRef(repoID, "nope")), registry.ErrNotFound, "revision")
	check("unknown commit", resolveErr("", hfRef(repoID, strings.Repeat("ab", 20))), registry.ErrNotFound, "revision")

	// Gated: the listing is public, the download is not.
	err := openErr("", "org/gated")
	if !errors.Is(err, registry.ErrUnauthorized) && !errors.Is(err, registry.ErrForbidden) {
		t.Errorf("gated without token: %v", err)
	}
	check("gated without token", err, err, "accept", "org/gated", "no token")
	check("gated, token without access", openErr("hf_other", "org/gated"), registry.ErrForbidden, "accept", "org/gated")
	if err := openErr("hf_good", "org/gated"); err != nil {
		t.Errorf("gated, accepted token: %v", err)
	}

	// Private.
	check("private without token", resolveErr("", hfRef("org/private", "")), registry.ErrUnauthorized, "org/private", "HF_TOKEN")
	check("private, invalid token", resolveErr("hf_bad", hfRef("org/private", "")), registry.ErrUnauthorized, "token was refused")
	check("private, token without access", resolveErr("hf_other", hfRef("org/private", "")), registry.ErrNotFound, "org/private")
	if err := openErr("hf_good", "org/private"); err != nil {
		t.Errorf("private with access: %v", err)
	}
	// An invalid token is refused even on a public repo.
	check("public, invalid token", resolveErr("hf_bad", hfRef(repoID, "")), registry.ErrUnauthorized)
	_ = repo
}

func TestMetadata503Retried(t *testing.T) {
	t.Parallel()
	srv, repo := newHub(t, hubtest.Options{Faults: []hubtest.Fault{
		{Kind: hubtest.Fault503, Count: 2, RetryAfter: 1, Endpoints: []hubtest.Endpoint{hubtest.EndpointInfo}},
	}})
	s := newSource(t, srv.URL, "")
	start := time.Now()
	m := resolve(t, s, hfRef(repoID, ""))
	checkListing(t, m, repo.Revisions["main"])
	st := srv.Stats()
	if st.Faults[hubtest.Fault503] != 2 || st.Requests[hubtest.EndpointInfo] != 3 {
		t.Errorf("faults %v, requests %v", st.Faults, st.Requests)
	}
	// Retry-After: 1 was honoured before each retry.
	if d := time.Since(start); d < 1900*time.Millisecond {
		t.Errorf("two 503s with Retry-After: 1 took only %v", d)
	}
}

// The source does not retry downloads: a 503 reaches the transfer engine as
// a temporary HTTPError carrying Retry-After.
func TestDownload503IsTemporary(t *testing.T) {
	srv, _ := newHub(t, hubtest.Options{})
	s := newSource(t, srv.URL, "")
	m := resolve(t, s, hfRef(repoID, ""))
	for _, c := range []struct {
		file string
		ep   hubtest.Endpoint
	}{
		{"config.json", hubtest.EndpointResolveGet},
		{"original/model.safetensors", hubtest.EndpointCDN},
	} {
		srv.SetFaults(hubtest.Fault{Kind: hubtest.Fault503, Count: 1, RetryAfter: 7, Endpoints: []hubtest.Endpoint{c.ep}})
		f, _ := m.Lookup(c.file)
		_, err := s.Open(context.Background(), f, 0, 10)
		var he *registry.HTTPError
		if !errors.As(err, &he) {
			t.Errorf("%s: %v is not an HTTPError", c.file, err)
			continue
		}
		if he.Status != 503 || !he.Temporary() || registry.IsPermanent(err) || he.RetryAfter != 7*time.Second || registry.RetryAfterOf(err) != 7*time.Second {
			t.Errorf("%s: %+v", c.file, he)
		}
		if strings.Contains(err.Error(), "sig=") {
			t.Errorf("%s: signed URL in error: %v", c.file, err)
		}
		// The next try succeeds.
		want := localBytes(t, tinyRepo(t), c.file)
		if got := readRange(t, s, f, 0, 10); !bytes.Equal(got, want[:10]) {
			t.Errorf("%s: wrong bytes on retry", c.file)
		}
	}
	if n := srv.Stats().Faults[hubtest.Fault503]; n != 2 {
		t.Errorf("503s fired: %d", n)
	}
}

func TestBrokenBodies(t *testing.T) {
	srv, _ := newHub(t, hubtest.Options{})
	s := newSource(t, srv.URL, "")
	m := resolve(t, s, hfRef(repoID, ""))
	for _, file := range []string{"original/model.safetensors", "tokenizer.json"} {
		for _, kind := range []hubtest.FaultKind{hubtest.FaultTruncate, hubtest.FaultDrop} {
			srv.SetFaults(hubtest.Fault{Kind: kind, Count: 1, AfterBytes: 1000})
			f, _ := m.Lookup(file)
			rc, err := s.Open(context.Background(), f, 0, -1)
			if err != nil {
				t.Fatalf("%s %v: Open: %v", file, kind, err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err == nil || len(b) >= int(f.Size) {
				t.Errorf("%s %v: read %d bytes, err %v", file, kind, len(b), err)
			}
			if kind == hubtest.FaultTruncate && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("%s truncated: %v, want io.ErrUnexpectedEOF", file, err)
			}
		}
	}
}

func TestSpecialFileNames(t *testing.T) {
	dir := t.TempDir()
	names := []string{"dir with space/file #1 %25?.txt", "ünïcode/名前.json", "plus+and&.bin"}
	for i, n := range names {
		p := filepath.Join(dir, filepath.FromSlash(n))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, bytes.Repeat([]byte{byte('a' + i)}, 100+i), 0o644)
	}
	srv := hubtest.New(hubtest.Options{})
	t.Cleanup(srv.Close)
	if _, err := srv.AddRepo("org/odd", dir); err != nil {
		t.Fatal(err)
	}
	s := newSource(t, srv.URL, "")
	m := resolve(t, s, hfRef("org/odd", ""))
	for _, n := range names {
		f, ok := m.Lookup(n)
		if !ok {
			t.Errorf("%q not listed", n)
			continue
		}
		if got := readRange(t, s, f, 0, -1); !bytes.Equal(got, localBytes(t, dir, n)) {
			t.Errorf("%q: wrong bytes", n)
		}
	}
}

func TestTokenFromEnv(t *testing.T) {
	home := t.TempDir()
	write := func(p, s string) string {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokenPath := write(filepath.Join(home, "custom", "tok"), "from-token-path\n")
	hfHome := filepath.Join(home, "hfhome")
	write(filepath.Join(hfHome, "token"), "  from-hf-home \n")
	xdg := filepath.Join(home, "xdg")
	write(filepath.Join(xdg, "huggingface", "token"), "from-xdg")
	write(filepath.Join(home, ".cache", "huggingface", "token"), "from-home")

	set := func(kv ...string) {
		for _, k := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HOME", "XDG_CACHE_HOME"} {
			t.Setenv(k, "")
		}
		t.Setenv("HOME", home)
		for i := 0; i < len(kv); i += 2 {
			t.Setenv(kv[i], kv[i+1])
		}
	}
	all := []string{"HF_TOKEN", " from-hf-token ", "HUGGING_FACE_HUB_TOKEN", "from-legacy", "HF_TOKEN_PATH", tokenPath, "HF_HOME", hfHome, "XDG_CACHE_HOME", xdg}
	cases := []struct {
		name string
		env  []string
		want string
	}{
		{"HF_TOKEN first", all, "from-hf-token"},
		{"then HUGGING_FACE_HUB_TOKEN", append(all[2:], "HF_TOKEN", ""), "from-legacy"},
		{"blank HF_TOKEN is unset", append(all[2:], "HF_TOKEN", "  \n"), "from-legacy"},
		{"then HF_TOKEN_PATH", all[4:], "from-token-path"},
		{"HF_TOKEN_PATH replaces the default file", append(all[6:], "HF_TOKEN_PATH", filepath.Join(home, "missing")), ""},
		{"then HF_HOME/token", all[6:], "from-hf-home"},
		{"then XDG_CACHE_HOME/huggingface/token", all[8:], "from-xdg"},
		{"then ~/.cache/huggingface/token", nil, "from-home"},
		{"none", []string{"HOME", filepath.Join(home, "empty")}, ""},
	}
	for _, c := range cases {
		set(c.env...)
		if got := TokenFromEnv(); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	set("HF_ENDPOINT", "http://mirror.example:8080/", "HF_TOKEN", "tok")
	if o := OptionsFromEnv(); o.Endpoint != "http://mirror.example:8080" || o.Token != "tok" {
		t.Errorf("OptionsFromEnv: %+v", o)
	}
}

func TestNewAndDescribe(t *testing.T) {
	for _, bad := range []string{"ftp://host", "huggingface.co", "http://", "://x"} {
		if _, err := New(Options{Endpoint: bad}); !errors.Is(err, registry.ErrInvalidRef) {
			t.Errorf("endpoint %q: %v", bad, err)
		}
	}
	s, err := New(Options{})
	if err != nil || s.endpoint.String() != DefaultEndpoint {
		t.Fatalf("default endpoint: %v %v", s, err)
	}
	if d := s.Describe(); strings.Contains(d, " via ") {
		t.Errorf("default endpoint described as a mirror: %q", d)
	}
	s, err = New(Options{Endpoint: "https://user:secret@mirror.example/", Token: "hf_secret"})
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Describe(); strings.Contains(d, "secret") || !strings.Contains(d, "mirror.example") {
		t.Errorf("Describe leaks or misses the endpoint: %q", d)
	}
}

func TestExactReader(t *testing.T) {
	read := func(body string, n int64) (string, error) {
		r := registry.ExactReader(iotestOneByte(strings.NewReader(body)), io.NopCloser(nil), n)
		b, err := io.ReadAll(r)
		return string(b), err
	}
	if got, err := read("hello", 5); got != "hello" || err != nil {
		t.Errorf("exact: %q %v", got, err)
	}
	if got, err := read("hello world", 5); got != "hello" || err != nil {
		t.Errorf("longer body: %q %v", got, err)
	}
	if got, err := read("hel", 5); got != "hel" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short body: %q %v", got, err)
	}
	if got, err := read("", 0); got != "" || err != nil {
		t.Errorf("empty: %q %v", got, err)
	}
}

type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func iotestOneByte(r io.Reader) io.Reader { return oneByteReader{r} }

// A transport failure on the remembered CDN URL is reported without the
// URL's signature.
func TestNetworkErrorRedacted(t *testing.T) {
	srv, _ := newHub(t, hubtest.Options{})
	s := newSource(t, srv.URL, "")
	m := resolve(t, s, hfRef(repoID, ""))
	f, _ := m.Lookup("original/model.safetensors")
	readRange(t, s, f, 0, 10)
	srv.Close()
	_, err := s.Open(context.Background(), f, 10, 10)
	if err == nil {
		t.Fatal("Open with the servers gone succeeded")
	}
	if registry.IsPermanent(err) {
		t.Errorf("a refused connection is permanent: %v", err)
	}
	if strings.Contains(err.Error(), "sig=") || strings.Contains(err.Error(), "expires=") {
		t.Errorf("signed query in %v", err)
	}
}
