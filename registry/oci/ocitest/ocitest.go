// Package ocitest starts a real OCI registry (Debian's docker-registry, the
// CNCF distribution registry 2.8) on a free loopback port for tests, with
// its storage in a temporary directory, and optionally an authenticating
// front (Basic, or the Bearer token flow) in front of it.
//
// When the binary is missing the test is skipped, or fails when CI=true
// (CI installs it: apt-get install docker-registry).
package ocitest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gptoss/gptoss/internal/testproc"
)

// Auth puts an authenticating proxy in front of the registry.
type Auth struct {
	Scheme             string // "basic" or "bearer"
	Username, Password string
}

// Registry is a running registry.
type Registry struct {
	Host string // 127.0.0.1:PORT (the proxy's when Auth is set)
	URL  string // http://Host
	Dir  string // storage root
}

// Binary returns the docker-registry binary, or "".
func Binary() string {
	if p, err := exec.LookPath("docker-registry"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/docker-registry"); err == nil {
		return "/usr/bin/docker-registry"
	}
	return ""
}

// Require skips (or, with CI=true, fails) the test when no registry binary
// is installed, and returns the binary.
func Require(t testing.TB) string {
	t.Helper()
	bin := Binary()
	if bin == "" {
		testproc.Missing(t, "docker-registry not installed (apt-get install -y --no-install-recommends docker-registry)")
	}
	return bin
}

// Start runs a registry for the test's lifetime. auth may be nil.
func Start(t testing.TB, auth *Auth) *Registry {
	t.Helper()
	bin := Require(t)
	dir := t.TempDir()
	storage := filepath.Join(dir, "storage")
	addr := testproc.Start(t, testproc.Spec{
		Name: "docker-registry", Dir: dir, Timeout: 15 * time.Second,
		Command: func(addr string, _, _ int) ([]string, error) {
			cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: gptoss-test-secret
`, storage, addr)
			cfgPath := filepath.Join(dir, "config.yml")
			return []string{bin, "serve", cfgPath}, os.WriteFile(cfgPath, []byte(cfg), 0o644)
		},
		Ready: testproc.Answers("/v2/", 200),
	}).Addr
	r := &Registry{Host: addr, URL: "http://" + addr, Dir: storage}
	if auth != nil {
		r.front(t, *auth)
	}
	return r
}

// front puts an authenticating reverse proxy before the registry and
// points r at it.
func (r *Registry) front(t testing.TB, a Auth) {
	target, _ := url.Parse(r.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	const tok = "test-token-7f3a"
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/token" {
			u, p, ok := req.BasicAuth()
			if !ok || u != a.Username || p != a.Password {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 300})
			return
		}
		h := req.Header.Get("Authorization")
		switch a.Scheme {
		case "basic":
			want := "Basic " + base64.StdEncoding.EncodeToString([]byte(a.Username+":"+a.Password))
			if h != want {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		default:
			if h != "Bearer "+tok {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test-registry",scope="repository:x:pull"`, srv.URL))
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		req.Header.Del("Authorization")
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	r.Host = strings.TrimPrefix(srv.URL, "http://")
}
