package registry

import (
	"net"
	"net/http"
	"time"
)

// NewTransport is the HTTP transport of every backend that speaks HTTP
// itself (hf, oci, azure, databricks): idle pools large enough for a
// parallel pull (the standard transport keeps 2 per host and would
// reconnect all the time), bounded connect, TLS and header waits but no
// overall timeout (the fetch engine's stall watchdog bounds a stuck body),
// no transparent gzip (bytes are hashed as stored), HTTP/1.1 (one TCP
// stream per range: parallel connections are the point) and 256 KiB
// buffers. Callers adjust a field where their service needs it.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ReadBufferSize:        256 << 10,
		WriteBufferSize:       256 << 10,
	}
}
