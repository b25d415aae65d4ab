package oci

import (
	"fmt"
	"net"
	"path"
	"regexp"
	"strings"

	"github.com/gptoss/gptoss/registry"
)

// Reference names an artifact in a registry:
// oci://host[:port]/repo[:tag|@sha256:hex].
type Reference struct {
	Host   string // "registry.corp:5000"
	Repo   string // "models/gpt-oss-20b"
	Tag    string // "hf"; empty when Digest is set or when the reference is a base
	Digest string // "sha256:…"
}

var (
	repoRe   = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	tagRe    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestRe = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// ParseRef reads oci://host[:port]/repo[:tag|@sha256:hex]. The scheme is
// optional. Tag and digest may both be absent: the caller decides the
// default (see WithModel).
func ParseRef(s string) (Reference, error) {
	orig := s
	s = strings.TrimPrefix(s, "oci://")
	bad := func(why string) (Reference, error) {
		return Reference{}, fmt.Errorf("%w: %q: %s (want oci://host[:port]/repo[:tag|@sha256:…])", registry.ErrInvalidRef, orig, why)
	}
	i := strings.Index(s, "/")
	if i <= 0 {
		return bad("no repository")
	}
	var r Reference
	r.Host, s = s[:i], s[i+1:]
	if strings.ContainsAny(r.Host, "@?#") || strings.Contains(r.Host, " ") {
		return bad("bad host")
	}
	if j := strings.Index(s, "@"); j >= 0 {
		r.Digest, s = s[j+1:], s[:j]
		if !digestRe.MatchString(r.Digest) {
			return bad("bad digest")
		}
	}
	if j := strings.LastIndex(s, ":"); j >= 0 && !strings.Contains(s[j:], "/") {
		r.Tag, s = s[j+1:], s[:j]
		if !tagRe.MatchString(r.Tag) {
			return bad("bad tag")
		}
	}
	r.Repo = strings.TrimSuffix(s, "/")
	if !repoRe.MatchString(r.Repo) {
		return bad("bad repository name (lower-case letters, digits, '.', '_', '-', '/')")
	}
	return r, nil
}

// String is the canonical oci:// form.
func (r Reference) String() string {
	s := "oci://" + r.Host + "/" + r.Repo
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// reference is the tag or digest that names the manifest.
func (r Reference) reference() string {
	if r.Digest != "" {
		return r.Digest
	}
	if r.Tag != "" {
		return r.Tag
	}
	return "latest"
}

// WithModel completes a base reference for one model, the way `gptoss
// mirror` and GPTOSS_MIRROR lay models out: a reference without tag or
// digest is a namespace; the model's base name is appended as the last
// repository component (unless the path already ends with it) and the
// format is the tag. So oci://host/models, model openai/gpt-oss-20b, format
// hf → oci://host/models/gpt-oss-20b:hf. A reference with a tag or digest
// is returned unchanged.
func (r Reference) WithModel(name, format string) Reference {
	if r.Tag != "" || r.Digest != "" {
		return r
	}
	base := strings.ToLower(path.Base(name))
	if base != "" && base != "." && base != "/" && path.Base(r.Repo) != base {
		r.Repo += "/" + base
	}
	if format == "" {
		format = DefaultTag
	}
	r.Tag = format
	return r
}

// DefaultTag is the tag used when neither the reference nor the model
// gives a format.
const DefaultTag = "custom"

// IsLoopback reports whether host (with or without a port) is localhost or
// a loopback address: registries there are spoken to over plain HTTP.
func IsLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
