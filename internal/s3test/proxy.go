package s3test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/time/rate"
)

// Proxy sits between a client and the server on its own loopback port:
// it counts the bytes of object bodies it passes (GET responses) and can
// cap their rate, so tests can interrupt a pull halfway and measure what a
// resume fetches again. It keeps the client's Host header, so SigV4
// signatures made for the proxy's address stay valid.
type Proxy struct {
	URL   string // http://127.0.0.1:PORT: the endpoint to give clients
	bytes atomic.Int64
	mu    sync.Mutex
	lim   *rate.Limiter // nil: no cap
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
				resp.Body = &countingBody{rc: resp.Body, p: p, ctx: resp.Request.Context()}
			}
			return nil
		},
		FlushInterval: -1,
	}
	srv := httptest.NewServer(rp)
	tb.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// BodyBytes is how many GET body bytes have passed since the last reset.
func (p *Proxy) BodyBytes() int64 { return p.bytes.Load() }

// ResetBytes sets the counter to zero.
func (p *Proxy) ResetBytes() { p.bytes.Store(0) }

// SetRate caps GET bodies at bytesPerSec in total (0: no cap).
func (p *Proxy) SetRate(bytesPerSec int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if bytesPerSec <= 0 {
		p.lim = nil
		return
	}
	p.lim = rate.NewLimiter(rate.Limit(bytesPerSec), 32<<10)
}

func (p *Proxy) limiter() *rate.Limiter {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lim
}

type countingBody struct {
	rc  io.ReadCloser
	p   *Proxy
	ctx context.Context
}

func (c *countingBody) Read(b []byte) (int, error) {
	lim := c.p.limiter()
	if lim != nil && len(b) > lim.Burst() {
		b = b[:lim.Burst()]
	}
	n, err := c.rc.Read(b)
	if n > 0 {
		c.p.bytes.Add(int64(n))
		if lim != nil {
			if werr := lim.WaitN(c.ctx, n); werr != nil && err == nil {
				err = werr
			}
		}
	}
	return n, err
}

func (c *countingBody) Close() error { return c.rc.Close() }
