package hubtest

import (
	"github.com/gptoss/gptoss/internal/testserve"

	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Server. The zero value is a working hub on two random
// loopback ports.
type Options struct {
	// Addr and CDNAddr are the listen addresses of the hub and of the CDN
	// (default "127.0.0.1:0": a random free port each).
	Addr    string
	CDNAddr string
	// CDNHost, when set, replaces the host name in redirect URLs (the port
	// stays the CDN listener's). "localhost" makes the CDN a different host
	// name from the hub's 127.0.0.1, as on the real Hub; by default both use
	// the listeners' IP and differ only by port.
	CDNHost string

	// PageSize is the number of entries per page of the tree endpoint
	// (default 1000, as on the Hub). A "limit" query parameter overrides it.
	PageSize int

	// Tokens are the valid access tokens (sent as "Authorization: Bearer T").
	// A request carrying any other token gets 401 "Invalid credentials in
	// Authorization header". When Tokens is empty every token is valid.
	Tokens []string

	// SigningKey signs CDN URLs (HMAC-SHA256). Default: 32 random bytes.
	SigningKey []byte
	// URLTTL is the lifetime of a signed CDN URL (default 1h). A negative
	// value makes every URL already expired.
	URLTTL time.Duration

	// LFSThreshold: files larger than this are LFS files (default
	// DefaultLFSThreshold = 10 MiB). LFSPatterns: base-name globs of files
	// that are always LFS (default DefaultLFSPatterns).
	LFSThreshold int64
	LFSPatterns  []string

	// Faults are injected into matching requests; see Fault. They can be
	// replaced at run time with SetFaults / AddFault.
	Faults []Fault
	// Rate caps every file body response (hub or CDN) at this many bytes/s,
	// per request (0 = uncapped). Changeable with SetRate.
	Rate int64
	// HeaderDelay delays every response (hub and CDN) before its headers.
	// Changeable with SetHeaderDelay.
	HeaderDelay time.Duration
	// Seed seeds the PRNG behind Fault.Probability. With Seed 0 a fault
	// with a Probability fires on every matching request (counted only).
	Seed uint64

	// Now is the clock used for URL expiry (default time.Now).
	Now func() time.Time
	// Logf, when set, receives one line per request.
	Logf func(format string, args ...any)
}

// RepoOption configures one repo in AddRepo.
type RepoOption func(*repoConfig)

type repoConfig struct {
	private       bool
	privateTokens []string
	gated         bool
	accepted      []string
	branch        string
	extra         []branchDir
}

type branchDir struct{ branch, dir string }

// Private makes the repo private: without a token every endpoint answers 401
// (X-Error-Code: RepoNotFound); with a valid token that is not in tokens (when
// tokens is non-empty), 404 RepoNotFound, as the Hub hides private repos.
// With no tokens listed every valid token has access.
func Private(tokens ...string) RepoOption {
	return func(c *repoConfig) { c.private = true; c.privateTokens = append(c.privateTokens, tokens...) }
}

// Gated makes the repo gated ("manual" in its info). Metadata endpoints stay
// open as on the Hub, but file downloads (resolve) need a valid token that
// is in accepted: no token → 401, a valid token that has not accepted the
// licence → 403, both with X-Error-Code: GatedRepo.
func Gated(accepted ...string) RepoOption {
	return func(c *repoConfig) { c.gated = true; c.accepted = append(c.accepted, accepted...) }
}

// DefaultBranch names the branch dir is served as (default "main").
func DefaultBranch(name string) RepoOption { return func(c *repoConfig) { c.branch = name } }

// WithBranch serves dir as an additional branch of the repo (for instance a
// second revision "v2" or "refs/pr/1").
func WithBranch(name, dir string) RepoOption {
	return func(c *repoConfig) { c.extra = append(c.extra, branchDir{name, dir}) }
}

// Server is a running test hub: the Hub API and resolve endpoints on URL and
// a signed-URL CDN on CDNURL. It is safe for concurrent use.
type Server struct {
	// URL is the hub base URL (what HF_ENDPOINT is set to), e.g.
	// "http://127.0.0.1:34567", without a trailing slash.
	URL string
	// CDNURL is the CDN base URL (scheme://host:port) that LFS downloads are
	// redirected to.
	CDNURL string

	opts    Options
	key     []byte
	hubLn   net.Listener
	cdnLn   net.Listener
	hubSrv  *http.Server
	cdnSrv  *http.Server
	closeMu sync.Once

	mu    sync.RWMutex
	repos map[string]*repo

	rate        atomic.Int64
	headerDelay atomic.Int64
	faults      testserve.Set[Endpoint]
	stats       statsState
}

// New starts a server and panics if it cannot listen, like httptest.NewServer.
func New(opts Options) *Server {
	s, err := Start(opts)
	if err != nil {
		panic(fmt.Sprintf("hubtest: %v", err))
	}
	return s
}

// Start starts a server on opts.Addr / opts.CDNAddr.
func Start(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.CDNAddr == "" {
		opts.CDNAddr = "127.0.0.1:0"
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 1000
	}
	if opts.URLTTL == 0 {
		opts.URLTTL = time.Hour
	}
	if opts.LFSThreshold <= 0 {
		opts.LFSThreshold = DefaultLFSThreshold
	}
	if opts.LFSPatterns == nil {
		opts.LFSPatterns = DefaultLFSPatterns
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, repos: map[string]*repo{}}
	s.key = opts.SigningKey
	if len(s.key) == 0 {
		s.key = make([]byte, 32)
		rand.Read(s.key)
	}
	s.rate.Store(opts.Rate)
	s.headerDelay.Store(int64(opts.HeaderDelay))
	s.faults.Seed(opts.Seed)
	s.faults.Set(opts.Faults)
	s.stats.reset()

	var err error
	if s.hubLn, err = net.Listen("tcp", opts.Addr); err != nil {
		return nil, err
	}
	if s.cdnLn, err = net.Listen("tcp", opts.CDNAddr); err != nil {
		s.hubLn.Close()
		return nil, err
	}
	s.URL = "http://" + s.hubLn.Addr().String()
	cdnAddr := s.cdnLn.Addr().(*net.TCPAddr)
	host := cdnAddr.IP.String()
	if opts.CDNHost != "" {
		host = opts.CDNHost
	}
	s.CDNURL = fmt.Sprintf("http://%s", net.JoinHostPort(host, fmt.Sprint(cdnAddr.Port)))
	errLog := log.New(discard{}, "", 0)
	s.hubSrv = &http.Server{Handler: http.HandlerFunc(s.serveHub), ErrorLog: errLog, ReadHeaderTimeout: 30 * time.Second}
	s.cdnSrv = &http.Server{Handler: http.HandlerFunc(s.serveCDN), ErrorLog: errLog, ReadHeaderTimeout: 30 * time.Second}
	go s.hubSrv.Serve(s.hubLn)
	go s.cdnSrv.Serve(s.cdnLn)
	return s, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Close stops both listeners and closes all connections, including those with
// downloads in flight.
func (s *Server) Close() {
	s.closeMu.Do(func() {
		s.hubSrv.Close()
		s.cdnSrv.Close()
	})
}

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	return errors.Join(s.hubSrv.Shutdown(ctx), s.cdnSrv.Shutdown(ctx))
}

// Endpoint returns the hub base URL (same as s.URL); handy as HF_ENDPOINT.
func (s *Server) Endpoint() string { return s.URL }

// ResolveURL returns the resolve URL of a file at rev (rev is path-escaped as
// huggingface_hub does).
func (s *Server) ResolveURL(repoID, rev, file string) string {
	return s.URL + "/" + repoID + "/resolve/" + escapeSegment(rev) + "/" + escapePath(file)
}

func (s *Server) isLFS(p string, size int64) bool {
	if size > s.opts.LFSThreshold {
		return true
	}
	base := path.Base(p)
	for _, pat := range s.opts.LFSPatterns {
		if ok, _ := path.Match(pat, base); ok {
			return true
		}
	}
	return false
}

// AddRepo scans dir and serves it as model repo repoID ("org/name") on its
// default branch. The files must not change while served. Adding an existing
// repoID replaces it.
func (s *Server) AddRepo(repoID, dir string, opts ...RepoOption) (Repo, error) {
	if err := checkRepoID(repoID); err != nil {
		return Repo{}, err
	}
	cfg := repoConfig{branch: "main"}
	for _, o := range opts {
		o(&cfg)
	}
	rp := &repo{
		id: repoID, defaultBranch: cfg.branch,
		private: cfg.private, privateTokens: set(cfg.privateTokens),
		gated: cfg.gated, accepted: set(cfg.accepted),
		revs: map[string]*revision{}, commits: map[string]*revision{},
	}
	for _, bd := range append([]branchDir{{cfg.branch, dir}}, cfg.extra...) {
		rv, err := scanDir(bd.dir, bd.branch, s.isLFS)
		if err != nil {
			return Repo{}, err
		}
		rp.revs[bd.branch] = rv
		rp.commits[rv.Commit] = rv
	}
	s.mu.Lock()
	s.repos[repoID] = rp
	s.mu.Unlock()
	return rp.snapshot(), nil
}

// AddRevision scans dir and serves it as branch of an existing repo (adding
// or replacing the branch). It returns the branch's revision.
func (s *Server) AddRevision(repoID, branch, dir string) (Revision, error) {
	rv, err := scanDir(dir, branch, s.isLFS)
	if err != nil {
		return Revision{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rp := s.repos[repoID]
	if rp == nil {
		return Revision{}, fmt.Errorf("hubtest: no repo %q", repoID)
	}
	// Copy-on-write so readers holding the old maps are unaffected.
	nrp := *rp
	nrp.revs = map[string]*revision{}
	nrp.commits = map[string]*revision{}
	for b, r := range rp.revs {
		if b != branch {
			nrp.revs[b] = r
			nrp.commits[r.Commit] = r
		}
	}
	nrp.revs[branch] = rv
	nrp.commits[rv.Commit] = rv
	s.repos[repoID] = &nrp
	return rv.Revision, nil
}

// RemoveRepo stops serving repoID.
func (s *Server) RemoveRepo(repoID string) {
	s.mu.Lock()
	delete(s.repos, repoID)
	s.mu.Unlock()
}

// Repo returns a description of a served repo.
func (s *Server) Repo(repoID string) (Repo, bool) {
	s.mu.RLock()
	rp := s.repos[repoID]
	s.mu.RUnlock()
	if rp == nil {
		return Repo{}, false
	}
	return rp.snapshot(), true
}

// SetGateAccepted records whether token has accepted repoID's gate.
func (s *Server) SetGateAccepted(repoID, token string, accepted bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp := s.repos[repoID]
	if rp == nil {
		return fmt.Errorf("hubtest: no repo %q", repoID)
	}
	nrp := *rp
	nrp.accepted = map[string]bool{}
	for k, v := range rp.accepted {
		nrp.accepted[k] = v
	}
	if accepted {
		nrp.accepted[token] = true
	} else {
		delete(nrp.accepted, token)
	}
	s.repos[repoID] = &nrp
	return nil
}

func (s *Server) lookup(repoID string) *repo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.repos[repoID]
}

func checkRepoID(id string) error {
	parts := strings.Split(id, "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return fmt.Errorf("hubtest: repo id %q is not of the form org/name", id)
	}
	return nil
}

func set(xs []string) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// SetRate changes the per-request body rate cap in bytes/s (0 = uncapped).
// It applies to responses that start afterwards.
func (s *Server) SetRate(bytesPerSec int64) { s.rate.Store(bytesPerSec) }

// SetHeaderDelay changes the delay before every response's headers.
func (s *Server) SetHeaderDelay(d time.Duration) { s.headerDelay.Store(int64(d)) }

// SetFaults replaces the fault rules (their counters start afresh).
func (s *Server) SetFaults(faults ...Fault) { s.faults.Set(faults) }

// AddFault appends a fault rule.
func (s *Server) AddFault(f Fault) { s.faults.Add(f) }

// ClearFaults removes every fault rule.
func (s *Server) ClearFaults() { s.faults.Set(nil) }

// Stats returns a copy of the request and byte counters.
func (s *Server) Stats() Stats { return s.stats.snapshot() }

// ResetStats zeroes all counters.
func (s *Server) ResetStats() { s.stats.reset() }

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}
