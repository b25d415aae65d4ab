package s3test

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

// Proxy sits between a client and the server on its own loopback port:
// it counts the bytes of object bodies it passes (GET responses) and can
// cap their rate, so tests can interrupt a pull halfway and measure what a
// resume fetches again. It keeps the client's Host header, so SigV4
// signatures made for the proxy's address stay valid.
type Proxy struct {
	URL    string // http://127.0.0.1:PORT: the endpoint to give clients
	bytes  atomic.Int64
	mu     sync.Mutex
	pace   testserve.Pace
	faults []*fault
	per    map[string]int64 // URL path → GET body bytes
}

type fault struct {
	method, query string // the request's method and a substring of its query
	status, left  int
}

// Fail answers the next n requests with this method whose query contains
// query (e.g. "partNumber=2") with status and an S3 error body, without
// passing them on.
func (p *Proxy) Fail(method, query string, status, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, &fault{method, query, status, n})
}

func (p *Proxy) fault(r *http.Request) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.faults {
		if f.left > 0 && r.Method == f.method && strings.Contains(r.URL.RawQuery, f.query) {
			f.left--
			return f.status
		}
	}
	return 0
}

// Proxy starts a proxy in front of s, closed at cleanup.
func (s *Server) Proxy(tb testing.TB) *Proxy {
	target, err := url.Parse(s.Endpoint)
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // the host the client signed
		},
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.Method == http.MethodGet {
				path := resp.Request.URL.Path
				resp.Body = p.pace.Reader(resp.Request.Context(), resp.Body, func(n int64) { p.count(path, n) })
			}
			return nil
		},
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0), // cut requests are what tests do
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st := p.fault(r); st != 0 {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(st)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by s3test</Message></Error>`, faultCode(st))
			return
		}
		rp.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func faultCode(status int) string {
	switch status {
	case http.StatusServiceUnavailable:
		return "SlowDown"
	case http.StatusForbidden:
		return "AccessDenied"
	case http.StatusNotFound:
		return "NoSuchKey"
	}
	return "InternalError"
}

// BodyBytes is how many GET body bytes have passed since the last reset.
func (p *Proxy) BodyBytes() int64 { return p.bytes.Load() }

// PathBytes is how many GET body bytes of the objects whose URL path ends
// in suffix have passed since the last reset.
func (p *Proxy) PathBytes(suffix string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for k, v := range p.per {
		if strings.HasSuffix(k, suffix) {
			n += v
		}
	}
	return n
}

// ResetBytes sets the counters to zero.
func (p *Proxy) ResetBytes() {
	p.mu.Lock()
	p.per = nil
	p.mu.Unlock()
	p.bytes.Store(0)
}

// SetRate caps GET bodies at bytesPerSec in total (0: no cap).
func (p *Proxy) SetRate(bytesPerSec int) { p.pace.Set(int64(bytesPerSec)) }

// count adds n GET body bytes of the object at path.
func (p *Proxy) count(path string, n int64) {
	p.bytes.Add(n)
	p.mu.Lock()
	if p.per == nil {
		p.per = map[string]int64{}
	}
	p.per[path] += n
	p.mu.Unlock()
}
