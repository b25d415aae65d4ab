package azure

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/gptoss/gptoss/registry"
)

// Location is a parsed Azure Blob URL: which account, container and prefix,
// the service endpoint when the URL names one, and a SAS token when the URL
// carries one. SAS is a secret: it is never part of String.
type Location struct {
	Account   string
	Container string
	Prefix    string // as given (objstore.CleanPrefix normalises it)
	Endpoint  string // the blob service URL when the URL gave one (https form), else ""
	SAS       string // the URL's query string, without '?', when it has a signature
}

// String is the location without credentials: az://account/container/prefix.
func (l Location) String() string {
	s := "az://" + l.Account + "/" + l.Container
	if p := strings.Trim(l.Prefix, "/"); p != "" {
		s += "/" + p
	}
	return s
}

// blobHostSuffixes are the public and sovereign clouds' blob service hosts:
// https://ACCOUNT.<suffix>/… is an Azure Blob URL (and not a Hub mirror).
var blobHostSuffixes = []string{
	".blob.core.windows.net",
	".blob.core.chinacloudapi.cn",
	".blob.core.usgovcloudapi.net",
	".blob.storage.azure.net", // DNS-zone endpoints (account.zNN.blob.storage.azure.net)
}

// IsURL reports whether s names Azure Blob storage: az://… or
// https://ACCOUNT.blob.core.windows.net/… (and the sovereign clouds).
func IsURL(s string) bool {
	if strings.HasPrefix(s, "az://") {
		return true
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" {
		return false
	}
	_, ok := accountFromHost(u.Hostname())
	return ok
}

func accountFromHost(host string) (string, bool) {
	host = strings.ToLower(host)
	for _, suf := range blobHostSuffixes {
		if strings.HasSuffix(host, suf) {
			acct, _, _ := strings.Cut(strings.TrimSuffix(host, suf), ".")
			return acct, acct != ""
		}
	}
	return "", false
}

var (
	accountRE   = regexp.MustCompile(`^[a-z0-9]{3,24}$`)
	containerRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
)

// ParseURL reads az://ACCOUNT/CONTAINER[/PREFIX][?SAS] or
// https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX][?SAS]. Errors
// never repeat the query string (it may hold a signature).
func ParseURL(s string) (Location, error) {
	var l Location
	q := ""
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s, q = s[:i], s[i+1:]
	}
	bad := func(why string) (Location, error) {
		return Location{}, fmt.Errorf("%w: %s: %s (want az://ACCOUNT/CONTAINER/PREFIX or https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX)", registry.ErrInvalidRef, redactURL(s), why)
	}
	var rest string
	switch {
	case strings.HasPrefix(s, "az://"):
		var ok bool
		l.Account, rest, ok = strings.Cut(strings.TrimPrefix(s, "az://"), "/")
		if !ok {
			return bad("no container")
		}
	case strings.HasPrefix(s, "https://"):
		u, err := url.Parse(s)
		if err != nil {
			return bad("not a URL")
		}
		acct, ok := accountFromHost(u.Hostname())
		if !ok {
			return bad("not an Azure Blob host")
		}
		if u.User != nil {
			return bad("user information in the URL")
		}
		l.Account = acct
		l.Endpoint = "https://" + u.Host
		rest = strings.TrimPrefix(u.Path, "/")
	default:
		return bad("not an Azure Blob URL")
	}
	l.Container, l.Prefix, _ = strings.Cut(rest, "/")
	if !accountRE.MatchString(l.Account) {
		return bad(fmt.Sprintf("storage account name %q must be 3-24 lower-case letters and digits", l.Account))
	}
	if l.Container == "" {
		return bad("no container")
	}
	if l.Container != "$root" && (!containerRE.MatchString(l.Container) || strings.Contains(l.Container, "--")) {
		return bad(fmt.Sprintf("container name %q must be 3-63 lower-case letters, digits and single hyphens", l.Container))
	}
	if q != "" {
		v, err := url.ParseQuery(q)
		if err != nil || v.Get("sig") == "" {
			return bad("the query is not a SAS token (no sig=)")
		}
		l.SAS = q
	}
	return l, nil
}

// serviceURL is the blob service URL for the account: the endpoint given
// (an emulator's or a private endpoint), else the public cloud's. An
// endpoint on a loopback or IP address without a path is path-style (the
// emulator's http://127.0.0.1:10000/ACCOUNT): the account is appended.
func serviceURL(endpoint, account string) (string, error) {
	if endpoint == "" {
		return "https://" + account + ".blob.core.windows.net", nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%w: blob endpoint %q is not an http(s) URL", registry.ErrInvalidRef, redactURL(endpoint))
	}
	if u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("%w: blob endpoint %s must not carry credentials (put the SAS in AZURE_STORAGE_SAS_TOKEN)", registry.ErrInvalidRef, redactURL(endpoint))
	}
	p := strings.TrimRight(u.Path, "/")
	if p == "" {
		h := u.Hostname()
		if ip := net.ParseIP(h); ip != nil || h == "localhost" {
			p = "/" + account
		}
	}
	return u.Scheme + "://" + u.Host + p, nil
}

// redactURL drops a URL's query string and user information.
func redactURL(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[:i] + "?REDACTED"
	}
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	return s
}
