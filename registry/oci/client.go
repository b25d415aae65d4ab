// Package oci is the OCI registry backend (Docker Registry HTTP API v2 /
// OCI distribution spec): a Source that pulls model artifacts (CNCF
// ModelPack, and the raw-file variants of KitOps ModelKits and Docker Model
// Runner) and a Target that pushes the cache's models as ModelPack
// artifacts.
//
// Layers are files: one layer per file, the path in the
// org.cncf.model.filepath (or org.opencontainers.image.title) annotation,
// the layer digest is the file's SHA-256. So `fetch` reads blobs with
// parallel ranged GETs, resumes them and checks every byte, as for any
// source. Uploads are chunked (POST, PATCH with Content-Range, PUT
// ?digest=) and resume from the registry's offset after a failed chunk.
//
// Authentication: anonymous, Basic, or the distribution token flow
// (WWW-Authenticate: Bearer realm=…), with credentials from Options or from
// ~/.docker/config.json (inline auths or a credential helper). Credentials
// are never printed.
package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gptoss/gptoss/registry"
)

// Options configure a Client.
type Options struct {
	PlainHTTP          bool         // speak http:// (always so for localhost and loopback addresses)
	Username, Password string       // empty: GPTOSS_REGISTRY_USERNAME/PASSWORD, then ~/.docker/config.json
	Client             *http.Client // nil: a client tuned for parallel long transfers
	ChunkSize          int64        // upload chunk size (default 64 MiB)
	UserAgent          string
}

// DefaultChunkSize is the size of one PATCH of a chunked upload.
const DefaultChunkSize = 64 << 20

// maxManifestSize bounds a manifest read into memory.
const maxManifestSize = 4 << 20

// Client speaks to one repository of one registry. It implements
// registry.Source and registry.Target.
type Client struct {
	ref                Reference
	base               string // scheme://host
	plainHTTP          bool
	username, password string
	http               *http.Client
	ua                 string
	chunk              int64
	auth               authState
	credsOnce          sync.Once

	mu       sync.Mutex
	resolved string // digest of the manifest of the last Resolve
	created  time.Time
}

var (
	_ registry.Source    = (*Client)(nil)
	_ registry.Target    = (*Client)(nil)
	_ registry.Describer = (*Client)(nil)
)

// New returns a client for ref (oci://host[:port]/repo[:tag|@sha256:…]).
// Without tag or digest the tag is "latest".
func New(ref string, o Options) (*Client, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	return NewRef(r, o), nil
}

// NewRef is New for a parsed reference.
func NewRef(r Reference, o Options) *Client {
	c := &Client{ref: r, username: o.Username, password: o.Password, chunk: o.ChunkSize, ua: o.UserAgent,
		plainHTTP: o.PlainHTTP || IsLoopback(r.Host)}
	c.auth.tokens = map[string]token{}
	if c.username == "" && c.password == "" {
		c.username, c.password = os.Getenv("GPTOSS_REGISTRY_USERNAME"), os.Getenv("GPTOSS_REGISTRY_PASSWORD")
	}
	if c.chunk <= 0 {
		c.chunk = DefaultChunkSize
	}
	if c.ua == "" {
		c.ua = "gptoss/0 (+https://github.com/gptoss/gptoss)"
	}
	scheme := "https"
	if c.plainHTTP {
		scheme = "http"
	}
	c.base = scheme + "://" + r.Host
	hc := o.Client
	if hc == nil {
		hc = &http.Client{Transport: registry.NewTransport()}
	}
	cc := *hc
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http = &cc
	return c
}

// Ref is the reference the client points at.
func (c *Client) Ref() Reference { return c.ref }

// Describe names the artifact, without credentials.
func (c *Client) Describe() string {
	c.mu.Lock()
	d := c.resolved
	c.mu.Unlock()
	r := c.ref
	if d != "" && r.Digest == "" {
		return r.String() + "@" + d
	}
	return r.String()
}

func (c *Client) url(parts ...string) string {
	return c.base + "/v2/" + c.ref.Repo + "/" + strings.Join(parts, "/")
}

// request is one registry call that can be replayed (after a 401).
type request struct {
	op, method, url string
	header          http.Header
	body            func() io.Reader // nil: no body
	size            int64            // body length
	push            bool             // needs push scope
}

// do sends rq with the credentials the registry asks for, once more after
// a 401 challenge.
func (c *Client) do(ctx context.Context, rq request) (*http.Response, error) {
	scope := "repository:" + c.ref.Repo + ":pull"
	if rq.push {
		scope += ",push"
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, rq.method, rq.url, nil)
		if err != nil {
			return nil, err
		}
		if rq.body != nil {
			req.Body = io.NopCloser(rq.body())
			req.ContentLength = rq.size
			if rq.size == 0 {
				req.Body = http.NoBody
			}
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(rq.body()), nil }
		}
		for k, v := range rq.header {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", c.ua)
		tok, ok := c.auth.get(scope)
		if !ok && attempt == 0 {
			// The token for this scope expired (or was never fetched) on a
			// registry known to want one: get it before sending, rather
			// than send a large chunk only to see a 401.
			if ch, known := c.auth.bearerChallenge(); known {
				if tok, err = c.fetchToken(ctx, ch, scope); err != nil {
					return nil, err
				}
				ok = true
			}
		}
		if ok {
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			} else if u, p := c.creds(); u != "" || p != "" {
				req.SetBasicAuth(u, p)
			}
		}
		resp, err := c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%s %s: %s", rq.op, c.ref.Host, strings.ReplaceAll(err.Error(), rq.url, redactString(rq.url)))
		}
		if resp.StatusCode != http.StatusUnauthorized || attempt > 0 {
			return resp, nil
		}
		ch, ok := parseChallenge(resp.Header.Get("WWW-Authenticate"))
		if !ok {
			return resp, nil
		}
		drain(resp)
		switch ch.scheme {
		case "basic":
			if u, p := c.creds(); u == "" && p == "" {
				return nil, &registry.HTTPError{Op: rq.op, URL: redactString(rq.url), Status: 401, Message: c.credHint()}
			}
			c.auth.mu.Lock()
			c.auth.basic = true
			c.auth.mu.Unlock()
		case "bearer":
			if _, err := c.fetchToken(ctx, ch, scope); err != nil {
				return nil, err
			}
		}
	}
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

func redact(u *url.URL) string {
	c := *u
	c.RawQuery, c.User, c.Fragment = "", nil, ""
	return c.String()
}

func redactString(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(url)"
	}
	return redact(u)
}

// httpError turns a failed response into a *registry.HTTPError carrying the
// registry's error code and message.
func (c *Client) httpError(op, u string, resp *http.Response) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
	e := &registry.HTTPError{Op: op, URL: redactString(u), Status: resp.StatusCode,
		RetryAfter: registry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now(), time.Minute)}
	var oe struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &oe) == nil && len(oe.Errors) > 0 {
		e.Code, e.Message = oe.Errors[0].Code, oe.Errors[0].Message
	}
	switch resp.StatusCode {
	case 401, 403:
		e.Message = strings.TrimSpace(e.Message + "; " + c.credHint())
	case 404:
		if e.Message == "" {
			e.Message = "not found in " + c.ref.String()
		}
	}
	return e
}

// resolveLocation makes a Location header absolute against the registry.
func (c *Client) resolveLocation(loc string) (string, error) {
	if loc == "" {
		return "", fmt.Errorf("registry %s: upload response without Location", c.ref.Host)
	}
	base, _ := url.Parse(c.base + "/")
	u, err := base.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("registry %s: bad Location %q", c.ref.Host, redactString(loc))
	}
	return u.String(), nil
}

// BaseURL is the registry's scheme and host: http:// with plain HTTP.
func (c *Client) BaseURL() string { return c.base }

// creds returns the credentials: from Options or the environment, else
// (looked up once, only when a registry asks) ~/.docker/config.json.
func (c *Client) creds() (string, string) {
	c.credsOnce.Do(func() {
		if c.username == "" && c.password == "" {
			c.username, c.password = dockerCredentials(c.ref.Host)
		}
	})
	return c.username, c.password
}
