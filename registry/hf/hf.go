// Package hf is the Hugging Face Hub source: it speaks the Hub's download
// protocol the way huggingface_hub and huggingface.js do.
//
//	GET  {endpoint}/api/models/{repo}/revision/{rev}      revision → 40-hex commit
//	GET  {endpoint}/api/models/{repo}/tree/{commit}?recursive=true
//	                                                      listing, Link-paginated;
//	                                                      lfs.oid = sha256, oid = git blob sha1
//	GET  {endpoint}/{repo}/resolve/{commit}/{path}        302 to a CDN for LFS files
//	                                                      (X-Linked-Etag, X-Linked-Size,
//	                                                      X-Repo-Commit), bytes for others
//
// Redirects are followed by hand: a relative (same-host) redirect keeps the
// token, a cross-host one (the signed CDN URL) drops it. The CDN URL is
// remembered per file, so every ranged part after the first goes straight
// to the CDN; an expired signature (403 from the CDN) re-resolves once.
//
// Environment, as huggingface_hub: HF_ENDPOINT; HF_TOKEN, then
// HUGGING_FACE_HUB_TOKEN, then the token file HF_TOKEN_PATH (default
// $HF_HOME/token, HF_HOME defaulting to $XDG_CACHE_HOME/huggingface or
// ~/.cache/huggingface); HF_HUB_OFFLINE.
//
// Reference: https://huggingface.co/docs/hub/api
package hf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gptoss/gptoss/registry"
)

// DefaultEndpoint is the public Hub.
const DefaultEndpoint = "https://huggingface.co"

// Options configure a Source.
type Options struct {
	Endpoint  string       // base URL; "" = DefaultEndpoint
	Token     string       // bearer token; "" = anonymous
	Client    *http.Client // nil = a client tuned for many parallel downloads
	UserAgent string
}

// OptionsFromEnv reads HF_ENDPOINT and the token the way huggingface_hub does.
func OptionsFromEnv() Options {
	o := Options{Endpoint: strings.TrimRight(os.Getenv("HF_ENDPOINT"), "/")}
	o.Token = TokenFromEnv()
	return o
}

// TokenFromEnv returns HF_TOKEN, HUGGING_FACE_HUB_TOKEN or the token file.
func TokenFromEnv() string {
	for _, v := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"} {
		if t := strings.TrimSpace(os.Getenv(v)); t != "" {
			return t
		}
	}
	p := os.Getenv("HF_TOKEN_PATH")
	if p == "" {
		home := os.Getenv("HF_HOME")
		if home == "" {
			base := os.Getenv("XDG_CACHE_HOME")
			if base == "" {
				if h, err := os.UserHomeDir(); err == nil {
					base = filepath.Join(h, ".cache")
				}
			}
			home = filepath.Join(base, "huggingface")
		}
		p = filepath.Join(home, "token")
	}
	if b, err := os.ReadFile(p); err == nil {
		return strings.TrimSpace(string(b))
	}
	return ""
}

// Source reads models from a Hugging Face Hub.
type Source struct {
	endpoint *url.URL
	token    string
	client   *http.Client
	ua       string

	mu     sync.Mutex
	repo   string
	commit string
	cdn    map[string]string // path → signed CDN URL from the last redirect
}

// New returns a Hub source.
func New(o Options) (*Source, error) {
	ep := o.Endpoint
	if ep == "" {
		ep = DefaultEndpoint
	}
	u, err := url.Parse(strings.TrimRight(ep, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: bad Hugging Face endpoint %q", registry.ErrInvalidRef, ep)
	}
	c := o.Client
	if c == nil {
		c = NewHTTPClient()
	}
	// We follow redirects ourselves (see package doc).
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	ua := o.UserAgent
	if ua == "" {
		ua = "gptoss/0 (+https://github.com/gptoss/gptoss)"
	}
	return &Source{endpoint: u, token: o.Token, client: &cc, ua: ua, cdn: map[string]string{}}, nil
}

// NewHTTPClient returns a client for many parallel long downloads: no
// overall timeout (the transfer engine's stall watchdog bounds a stuck body),
// bounded connect and header waits, no transparent gzip.
func NewHTTPClient() *http.Client {
	t := registry.NewTransport()
	t.ResponseHeaderTimeout = time.Minute
	return &http.Client{Transport: t}
}

// Describe names the source without credentials.
func (s *Source) Describe() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := "hf://" + s.repo
	if s.commit != "" {
		d += "@" + s.commit
	}
	if s.endpoint.String() != DefaultEndpoint {
		d += " via " + s.endpoint.Redacted()
	}
	return d
}

func (s *Source) apiURL(parts ...string) string {
	return s.endpoint.String() + "/" + strings.Join(parts, "/")
}

// escapeRev escapes a revision with no safe characters, as huggingface_hub
// does (refs/pr/1 → refs%2Fpr%2F1).
func escapeRev(rev string) string { return url.PathEscape(rev) }

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, x := range parts {
		parts[i] = url.PathEscape(x)
	}
	return strings.Join(parts, "/")
}

// maxAPIResponse bounds JSON the Hub sends us.
const maxAPIResponse = 64 << 20

// Resolve pins the revision to a commit and lists every file at it.
func (s *Source) Resolve(ctx context.Context, ref registry.Ref) (*registry.Manifest, error) {
	if ref.Scheme != registry.SchemeHF {
		return nil, fmt.Errorf("hf: cannot resolve %s", ref)
	}
	rev := ref.Revision
	if rev == "" {
		rev = "main"
	}
	var info struct {
		SHA   string `json:"sha"`
		Gated any    `json:"gated"`
	}
	if err := s.getJSON(ctx, "revision", s.apiURL("api/models", ref.Repo, "revision", escapeRev(rev)), ref.Repo, &info); err != nil {
		return nil, err
	}
	if !registry.IsCommit(info.SHA) {
		return nil, &registry.Permanent{Err: fmt.Errorf("%w: %s@%s: the Hub answered commit %q", registry.ErrInvalidManifest, ref.Repo, rev, info.SHA)}
	}
	if registry.IsCommit(rev) && rev != info.SHA {
		return nil, &registry.Permanent{Err: fmt.Errorf("%w: asked for commit %s, the Hub answered %s", registry.ErrInvalidManifest, rev, info.SHA)}
	}
	files, err := s.listTree(ctx, ref.Repo, info.SHA)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.repo, s.commit = ref.Repo, info.SHA
	s.cdn = map[string]string{}
	s.mu.Unlock()
	m := &registry.Manifest{Name: ref.Repo, Revision: info.SHA, Source: s.Describe(), Files: files}
	if ref.Model != nil {
		m.Name = ref.Model.Repo
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

type treeEntry struct {
	Type string `json:"type"`
	Path string `json:"path"`
	Size int64  `json:"size"`
	OID  string `json:"oid"`
	LFS  *struct {
		OID  string `json:"oid"`
		Size int64  `json:"size"`
	} `json:"lfs"`
}

const maxPages = 10000

func (s *Source) listTree(ctx context.Context, repo, commit string) ([]registry.File, error) {
	next := s.apiURL("api/models", repo, "tree", commit) + "?recursive=true&expand=false"
	var files []registry.File
	for page := 0; next != ""; page++ {
		if page >= maxPages {
			return nil, fmt.Errorf("%w: tree listing of %s has more than %d pages", registry.ErrInvalidManifest, repo, maxPages)
		}
		var entries []treeEntry
		hdr, err := s.getJSONHeader(ctx, "tree", next, repo, &entries)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.Type != "file" {
				continue
			}
			f := registry.File{Path: e.Path, Size: e.Size, GitSHA1: strings.ToLower(e.OID)}
			if e.LFS != nil {
				if e.LFS.Size != e.Size {
					return nil, &registry.Permanent{Err: fmt.Errorf("%w: %s: listing says %d bytes, its LFS pointer %d", registry.ErrInvalidManifest, e.Path, e.Size, e.LFS.Size)}
				}
				f.SHA256 = strings.ToLower(e.LFS.OID)
				f.GitSHA1 = "" // the git blob is the pointer file, not the content
			}
			f.Role = registry.RoleOf(e.Path)
			files = append(files, f)
		}
		next, err = s.nextLink(hdr.Get("Link"))
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}

// nextLink extracts rel="next" from an RFC 5988 Link header. It only
// follows links to the endpoint's own origin.
func (s *Source) nextLink(h string) (string, error) {
	for _, part := range strings.Split(h, ",") {
		segs := strings.Split(part, ";")
		if len(segs) < 2 {
			continue
		}
		isNext := false
		for _, p := range segs[1:] {
			p = strings.TrimSpace(p)
			if p == `rel="next"` || p == "rel=next" {
				isNext = true
			}
		}
		if !isNext {
			continue
		}
		raw := strings.Trim(strings.TrimSpace(segs[0]), "<>")
		u, err := s.endpoint.Parse(raw)
		if err != nil {
			return "", fmt.Errorf("%w: bad Link header %q", registry.ErrInvalidManifest, h)
		}
		if u.Scheme != s.endpoint.Scheme || u.Host != s.endpoint.Host {
			return "", &registry.Permanent{Err: fmt.Errorf("%w: pagination link leaves %s: %s", registry.ErrInvalidManifest, s.endpoint.Host, redact(u))}
		}
		return u.String(), nil
	}
	return "", nil
}

func (s *Source) getJSON(ctx context.Context, op, u, repo string, v any) error {
	_, err := s.getJSONHeader(ctx, op, u, repo, v)
	return err
}

func (s *Source) getJSONHeader(ctx context.Context, op, u, repo string, v any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	s.decorate(req, true)
	req.Header.Set("Accept", "application/json")
	resp, err := s.doRetry(ctx, req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, s.httpError(op, req.URL, resp, repo)
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxAPIResponse))
	if err := dec.Decode(v); err != nil {
		return nil, &registry.Permanent{Err: fmt.Errorf("%w: %s %s: %v", registry.ErrInvalidManifest, op, redact(req.URL), err)}
	}
	return resp.Header, nil
}

// doRetry performs a metadata request, retrying temporary failures a few
// times (downloads are retried by the transfer engine instead).
func (s *Source) doRetry(ctx context.Context, req *http.Request) (*http.Response, error) {
	var resp *http.Response
	// Every failure here is worth another try: what the caller's status
	// checks refuse comes back as a response, not an error.
	r := registry.Retry{Attempts: 5, Base: 500 * time.Millisecond, Retryable: func(error) bool { return true }}
	err := r.Do(ctx, func() error {
		var err error
		resp, err = s.client.Do(req.Clone(ctx))
		if err != nil {
			return fmt.Errorf("%s: %w", redact(req.URL), err)
		}
		if resp.StatusCode == 408 || resp.StatusCode == 429 || resp.StatusCode >= 500 {
			err := s.httpError("request", req.URL, resp, "")
			resp.Body.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *Source) decorate(req *http.Request, auth bool) {
	req.Header.Set("User-Agent", s.ua)
	req.Header.Set("Accept-Encoding", "identity")
	if auth && s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
}

// redact drops the query (signatures) and any user info from a URL.
func redact(u *url.URL) string {
	c := *u
	c.RawQuery, c.User, c.Fragment = "", nil, ""
	return c.String()
}

// httpError turns a failed response into an *registry.HTTPError with a
// message that tells the user what to do.
func (s *Source) httpError(op string, u *url.URL, resp *http.Response, repo string) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	e := &registry.HTTPError{Op: op, URL: redact(u), Status: resp.StatusCode, Code: resp.Header.Get("X-Error-Code"),
		RetryAfter: registry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now(), time.Minute)}
	var msg struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &msg) == nil && msg.Error != "" {
		e.Message = msg.Error
	} else if m := resp.Header.Get("X-Error-Message"); m != "" {
		e.Message = m
	}
	page := redact(s.endpoint) + "/" + repo // no credentials from the endpoint URL in messages
	// Only the Hub speaks for the repo: a 401/403 from the CDN is about the
	// signed URL (expired, or a clock far off), not about access rights.
	hub := u.Host == s.endpoint.Host
	switch {
	case !hub && (resp.StatusCode == 401 || resp.StatusCode == 403):
		if e.Message == "" {
			e.Message = "the download server refused the signed URL (expired? check the system clock)"
		}
	case e.Code == "GatedRepo" || (resp.StatusCode == 403 && repo != ""):
		e.Message = fmt.Sprintf("%s is gated: open %s while logged in, accept the licence, then pull again with a token of that account (HF_TOKEN or `hf auth login`)", repo, page)
		if s.token == "" {
			e.Message += "; no token is set"
		}
	case resp.StatusCode == 401 && repo != "":
		if s.token == "" {
			e.Message = fmt.Sprintf("%s needs authentication (a private or gated repo, or a wrong name): set HF_TOKEN to a token with read access", repo)
		} else {
			e.Message = fmt.Sprintf("the token was refused for %s: check HF_TOKEN (it may be expired or lack read access), or the repo name", repo)
		}
	case e.Code == "RevisionNotFound":
		e.Message = "revision not found in " + repo
	case e.Code == "RepoNotFound" || (resp.StatusCode == 404 && op == "revision"):
		e.Message = fmt.Sprintf("model repository %s not found at %s (a private repo also answers this without a token)", repo, s.endpoint.Host)
	case e.Code == "EntryNotFound":
		e.Message = "file not found"
	}
	return e
}

// Open reads a byte range of a file of the resolved commit.
func (s *Source) Open(ctx context.Context, f registry.File, off, n int64) (io.ReadCloser, error) {
	if off < 0 || off > f.Size || (n >= 0 && off+n > f.Size) {
		return nil, &registry.Permanent{Err: fmt.Errorf("hf: range %d+%d outside %s (%d bytes)", off, n, f.Path, f.Size)}
	}
	if n < 0 {
		n = f.Size - off
	}
	s.mu.Lock()
	repo, commit, cdn := s.repo, s.commit, s.cdn[f.Path]
	s.mu.Unlock()
	if commit == "" {
		return nil, fmt.Errorf("hf: Open before Resolve")
	}
	if cdn != "" {
		rc, err := s.get(ctx, f, cdn, off, n, false)
		if err == nil {
			return rc, nil
		}
		var he *registry.HTTPError
		if !errors.As(err, &he) || (he.Status != 403 && he.Status != 401 && he.Status != 404 && he.Status != 410) {
			return nil, err
		}
		// The signed URL expired: forget it and resolve again.
		s.mu.Lock()
		delete(s.cdn, f.Path)
		s.mu.Unlock()
	}
	u := s.apiURL(repo, "resolve", commit, escapePath(f.Path))
	return s.get(ctx, f, u, off, n, true)
}

const maxRedirects = 5

// get requests [off, off+n) of f from u, following redirects by hand.
func (s *Source) get(ctx context.Context, f registry.File, raw string, off, n int64, viaHub bool) (io.ReadCloser, error) {
	cur, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	auth := viaHub
	for hop := 0; ; hop++ {
		if hop > maxRedirects {
			return nil, &registry.Permanent{Err: fmt.Errorf("hf: %s: too many redirects", f.Path)}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, cur.String(), nil)
		if err != nil {
			return nil, err
		}
		s.decorate(req, auth)
		if n == 0 {
			// A zero-length read needs no request body at all.
			return io.NopCloser(strings.NewReader("")), nil
		}
		if !(off == 0 && n == f.Size) {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
		}
		resp, err := s.client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("download %s: %s", f.Path, strings.ReplaceAll(err.Error(), cur.String(), redact(cur)))
		}
		if err := s.checkLinked(f, resp); err != nil {
			resp.Body.Close()
			return nil, err
		}
		switch resp.StatusCode {
		case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			loc, err := cur.Parse(resp.Header.Get("Location"))
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // drain, so the connection is reused
			resp.Body.Close()
			if err != nil || (loc.Scheme != "http" && loc.Scheme != "https") {
				return nil, &registry.Permanent{Err: fmt.Errorf("hf: %s: bad redirect", f.Path)}
			}
			if loc.Host != cur.Host || loc.Scheme != cur.Scheme {
				auth = false // a signed URL on another host: never send the token there
				s.mu.Lock()
				s.cdn[f.Path] = loc.String()
				s.mu.Unlock()
			}
			cur = loc
			continue
		case http.StatusOK, http.StatusPartialContent:
			if err := registry.CheckRange(resp, f, off, n, "server"); err != nil {
				resp.Body.Close()
				return nil, err
			}
			return registry.ExactReader(resp.Body, resp.Body, n), nil
		default:
			err := s.httpError("download "+f.Path, cur, resp, s.repoName())
			resp.Body.Close()
			return nil, err
		}
	}
}

func (s *Source) repoName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.repo
}

// checkLinked compares the Hub's X-Linked-* headers with the listing.
func (s *Source) checkLinked(f registry.File, resp *http.Response) error {
	if et := normETag(resp.Header.Get("X-Linked-Etag")); et != "" && f.SHA256 != "" && registry.IsSHA256Hex(et) && et != f.SHA256 {
		return &registry.Permanent{Err: fmt.Errorf("%w: %s: the Hub's X-Linked-Etag is %s, its listing said %s", registry.ErrDigestMismatch, f.Path, et, f.SHA256)}
	}
	if ls := resp.Header.Get("X-Linked-Size"); ls != "" {
		if v, err := strconv.ParseInt(ls, 10, 64); err == nil && v != f.Size {
			return &registry.Permanent{Err: fmt.Errorf("%w: %s: X-Linked-Size %d, listing %d", registry.ErrSizeMismatch, f.Path, v, f.Size)}
		}
	}
	if c := resp.Header.Get("X-Repo-Commit"); c != "" {
		s.mu.Lock()
		commit := s.commit
		s.mu.Unlock()
		if c != commit {
			return &registry.Permanent{Err: fmt.Errorf("%w: %s: served from commit %s, expected %s", registry.ErrInvalidManifest, f.Path, c, commit)}
		}
	}
	return nil
}

func normETag(s string) string {
	s = strings.TrimPrefix(strings.TrimSpace(s), "W/")
	return strings.ToLower(strings.Trim(s, `"`))
}
