package azuritetest

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gptoss/gptoss/internal/testserve"
)

// Proxy is a reverse proxy in front of Azurite that counts the blob bytes
// it serves and can fail chosen requests, so tests can see resumes and
// retries. Shared-key and SAS signatures do not cover the host, so clients
// talk to it exactly as to Azurite.
type Proxy struct {
	Endpoint string // http://127.0.0.1:PORT/devstoreaccount1
	Host     string

	mu     sync.Mutex
	faults []*Fault
	body   atomic.Int64 // bytes of GET response bodies read from Azurite
	up     atomic.Int64 // bytes of Put Block / Put Blob request bodies sent to Azurite
	fired  atomic.Int64
	pace   testserve.Pace // over all downloads and uploads
}

// Fault fails the next Count requests that Match with Status and the
// x-ms-error-code Code (Count < 0: all of them).
type Fault struct {
	Match  func(r *http.Request) bool
	Count  int
	Status int
	Code   string
}

// IsStageBlock matches Put Block requests (comp=block).
func IsStageBlock(r *http.Request) bool {
	return r.Method == http.MethodPut && r.URL.Query().Get("comp") == "block"
}

// IsBlobGet matches blob downloads (a GET of a blob, not a listing).
func IsBlobGet(r *http.Request) bool {
	return r.Method == http.MethodGet && r.URL.Query().Get("comp") == "" && r.URL.Query().Get("restype") == ""
}

// Proxy starts a proxy in front of s for the test's lifetime.
func (s *Server) Proxy(t testing.TB) *Proxy {
	t.Helper()
	target, _ := url.Parse("http://" + s.Host)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1
	rp.ErrorLog = log.New(io.Discard, "", 0) // clients hanging up on purpose
	p := &Proxy{}
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodGet && IsBlobGet(resp.Request) {
			resp.Body = p.pace.Reader(resp.Request.Context(), resp.Body, func(n int64) { p.body.Add(n) })
		}
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := p.match(r); f != nil {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("x-ms-error-code", f.Code)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(f.Status)
			if r.Method != http.MethodHead {
				fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code><Message>injected by azuritetest</Message></Error>`, f.Code)
			}
			return
		}
		if r.Method == http.MethodPut && r.Body != nil && (IsStageBlock(r) || r.URL.Query().Get("comp") == "") {
			r.Body = p.pace.Reader(r.Context(), r.Body, func(n int64) { p.up.Add(n) })
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.Host = strings.TrimPrefix(srv.URL, "http://")
	p.Endpoint = srv.URL + "/" + s.Account
	return p
}

func (p *Proxy) match(r *http.Request) *Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.faults {
		if f.Count != 0 && f.Match(r) {
			if f.Count > 0 {
				f.Count--
			}
			p.fired.Add(1)
			return f
		}
	}
	return nil
}

// AddFault arms a fault.
func (p *Proxy) AddFault(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, &f)
}

// ClearFaults disarms every fault.
func (p *Proxy) ClearFaults() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
}

// Fired is how many requests were failed on purpose.
func (p *Proxy) Fired() int64 { return p.fired.Load() }

// BodyBytes is how many blob bytes were served through the proxy.
func (p *Proxy) BodyBytes() int64 { return p.body.Load() }

// UpBytes is how many bytes of blob uploads (Put Block, Put Blob) went
// through the proxy.
func (p *Proxy) UpBytes() int64 { return p.up.Load() }

// ResetBytes zeroes the byte counts.
func (p *Proxy) ResetBytes() { p.body.Store(0); p.up.Store(0) }

// SetRate caps the bytes per second of all downloads and uploads together
// (0: no cap). The proxy reads only as fast as it may pass bytes on, so
// BodyBytes and UpBytes are close to what arrived.
func (p *Proxy) SetRate(bytesPerSec int64) { p.pace.Set(bytesPerSec) }
