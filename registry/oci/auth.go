package oci

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gptoss/gptoss/registry"
)

// The registry auth flow (distribution token spec): a request without
// credentials gets 401 and a WWW-Authenticate challenge, either Basic or
// Bearer realm=…,service=…,scope=…; for Bearer we get a token from the
// realm (with basic credentials when we have some) and retry. Tokens are
// cached per scope until they expire.

type challenge struct {
	scheme string // "basic" or "bearer"
	params map[string]string
}

func parseChallenge(h string) (challenge, bool) {
	h = strings.TrimSpace(h)
	i := strings.IndexByte(h, ' ')
	if i < 0 {
		if strings.EqualFold(h, "basic") {
			return challenge{scheme: "basic"}, true
		}
		return challenge{}, false
	}
	c := challenge{scheme: strings.ToLower(h[:i]), params: map[string]string{}}
	rest := h[i+1:]
	for rest != "" {
		rest = strings.TrimLeft(rest, " ,")
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			break
		}
		k := strings.ToLower(strings.TrimSpace(rest[:eq]))
		rest = rest[eq+1:]
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := 1
			for end < len(rest) && rest[end] != '"' {
				if rest[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(rest) {
				v, rest = rest[1:], ""
			} else {
				v, rest = rest[1:end], rest[end+1:]
			}
			v = strings.ReplaceAll(v, `\"`, `"`)
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			v, rest = strings.TrimSpace(rest[:end]), rest[end:]
		}
		c.params[k] = v
	}
	return c, c.scheme == "basic" || c.scheme == "bearer"
}

type token struct {
	value   string
	expires time.Time
}

type authState struct {
	mu     sync.Mutex
	basic  bool             // the registry asked for Basic
	bearer *challenge       // the registry's last Bearer challenge
	tokens map[string]token // by scope
}

// bearerChallenge returns the registry's Bearer challenge, if it sent one.
func (a *authState) bearerChallenge() (challenge, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.bearer == nil {
		return challenge{}, false
	}
	return *a.bearer, true
}

func (a *authState) get(scope string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.basic {
		return "", true
	}
	t, ok := a.tokens[scope]
	if !ok || (!t.expires.IsZero() && time.Now().After(t.expires)) {
		return "", false
	}
	return t.value, true
}

// fetchToken asks the challenge's realm for a token for scope.
func (c *Client) fetchToken(ctx context.Context, ch challenge, scope string) (string, error) {
	realm := ch.params["realm"]
	u, err := url.Parse(realm)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return "", &registry.Permanent{Err: fmt.Errorf("%w: registry %s: bad token realm %q", registry.ErrUnauthorized, c.ref.Host, realm)}
	}
	if u.Scheme == "http" && !c.plainHTTP && !IsLoopback(u.Host) {
		return "", &registry.Permanent{Err: fmt.Errorf("%w: registry %s: refusing to send credentials to a plain-HTTP token realm %s", registry.ErrUnauthorized, c.ref.Host, u.Redacted())}
	}
	q := u.Query()
	if s := ch.params["service"]; s != "" {
		q.Set("service", s)
	}
	if scope != "" {
		q.Set("scope", scope)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("User-Agent", c.ua)
	if u, p := c.creds(); u != "" || p != "" {
		req.SetBasicAuth(u, p)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("registry %s: token: %w", c.ref.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e := &registry.HTTPError{Op: "token", URL: redact(u), Status: resp.StatusCode,
			RetryAfter: registry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now(), time.Minute)}
		if resp.StatusCode == 401 || resp.StatusCode == 403 {
			e.Message = c.credHint()
		}
		return "", e
	}
	var tr struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tr); err != nil {
		return "", fmt.Errorf("registry %s: token response: %w", c.ref.Host, err)
	}
	t := tr.Token
	if t == "" {
		t = tr.AccessToken
	}
	if t == "" {
		return "", &registry.Permanent{Err: fmt.Errorf("%w: registry %s: the token server returned no token", registry.ErrUnauthorized, c.ref.Host)}
	}
	exp := time.Duration(tr.ExpiresIn) * time.Second
	if exp <= 0 {
		exp = 60 * time.Second // the spec's default
	}
	c.auth.mu.Lock()
	c.auth.tokens[scope] = token{value: t, expires: time.Now().Add(exp - exp/10)}
	c.auth.bearer = &ch
	c.auth.mu.Unlock()
	return t, nil
}

func (c *Client) credHint() string {
	if u, p := c.creds(); u == "" && p == "" {
		return fmt.Sprintf("registry %s needs credentials: use --username/--password-stdin, GPTOSS_REGISTRY_USERNAME/GPTOSS_REGISTRY_PASSWORD, or `docker login %s`", c.ref.Host, c.ref.Host)
	}
	return fmt.Sprintf("the credentials for %s were refused (user %q)", c.ref.Host, c.username)
}

// dockerCredentials looks host up in ~/.docker/config.json (or
// $DOCKER_CONFIG/config.json): a credential helper (credHelpers, credsStore)
// or an inline "auth". It returns empty strings when nothing is there.
func dockerCredentials(host string) (user, pass string) {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", ""
		}
		dir = filepath.Join(home, ".docker")
	}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return "", ""
	}
	var cfg struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
		} `json:"auths"`
		CredHelpers map[string]string `json:"credHelpers"`
		CredsStore  string            `json:"credsStore"`
	}
	if json.Unmarshal(data, &cfg) != nil {
		return "", ""
	}
	keys := []string{host, "https://" + host, "http://" + host, "https://" + host + "/v1/", "https://" + host + "/v2/"}
	for _, k := range keys {
		a, ok := cfg.Auths[k]
		if !ok {
			continue
		}
		if a.Auth != "" {
			if b, err := base64.StdEncoding.DecodeString(a.Auth); err == nil {
				if u, p, ok := strings.Cut(string(b), ":"); ok {
					return u, p
				}
			}
		}
		if a.Username != "" {
			return a.Username, a.Password
		}
	}
	helper := cfg.CredHelpers[host]
	if helper == "" {
		helper = cfg.CredsStore
	}
	if helper == "" || strings.ContainsAny(helper, "/\\ ") {
		return "", ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker-credential-"+helper, "get")
	cmd.Stdin = strings.NewReader(host)
	var out bytes.Buffer
	cmd.Stdout = &out
	if cmd.Run() != nil {
		return "", ""
	}
	var cr struct{ Username, Secret string }
	if json.Unmarshal(out.Bytes(), &cr) != nil {
		return "", ""
	}
	return cr.Username, cr.Secret
}
