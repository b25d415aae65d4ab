// Package sources picks the Source backend for a reference: one explicit
// table from scheme to constructor (no init() side effects), so the set of
// backends is visible in one place.
package sources

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/hf"
	"github.com/gptoss/gptoss/registry/local"
	"github.com/gptoss/gptoss/registry/oci"
	"github.com/gptoss/gptoss/registry/ocilayout"
)

// Options carry what backends need from the command line and environment.
type Options struct {
	HF     hf.Options   // endpoint and token; zero = from the environment
	OCI    oci.Options  // registry credentials and plain HTTP; see ociOptions for the environment
	Client *http.Client // shared HTTP client, nil = each backend's default
}

// ociOptions adds the environment to the OCI options: GPTOSS_PLAIN_HTTP=1
// speaks http:// to the registry (always so for localhost and loopback
// addresses); credentials come from GPTOSS_REGISTRY_USERNAME/PASSWORD or
// ~/.docker/config.json (see package oci).
func (o Options) ociOptions() oci.Options {
	oo := o.OCI
	if !oo.PlainHTTP {
		st, _ := LoadSettings() // a bad config file is reported by For
		oo.PlainHTTP = st.PlainHTTP
	}
	if oo.Client == nil {
		oo.Client = o.Client
	}
	return oo
}

// OCITarget completes an oci:// location for one model the way mirror and
// pull agree on: oci://host/ns (no tag or digest) is a namespace, the model
// goes to oci://host/ns/<model base name>:<format>, e.g.
// oci://host/models/gpt-oss-20b:hf; a location that already ends in the
// model's base name only gets the tag; one with a tag or digest is used as
// it is.
func OCITarget(location, name, format string) (oci.Reference, error) {
	r, err := oci.ParseRef(location)
	if err != nil {
		return r, err
	}
	return r.WithModel(name, format), nil
}

// ociFormat is the tag a pull of ref looks for under a namespace: the
// requested format, the catalog default, or "custom" for a selection.
func ociFormat(ref registry.Ref) string {
	switch {
	case ref.Format != "":
		return ref.Format
	case ref.Model != nil && len(ref.Include) == 0:
		return ref.Model.DefaultFormat
	}
	return oci.DefaultTag
}

// hfOptions fills the endpoint and token from the environment when neither
// is given, keeping the other fields (client, user agent).
func (o Options) hfOptions() hf.Options {
	ho := o.HF
	if ho.Endpoint == "" && ho.Token == "" {
		env := hf.OptionsFromEnv()
		ho.Endpoint, ho.Token = env.Endpoint, env.Token
	}
	if o.Client != nil {
		ho.Client = o.Client
	}
	return ho
}

// IsNetwork reports whether a source reaches over the network (a Hub, a
// registry) rather than reading this machine's disks: offline mode forbids
// only the former.
func IsNetwork(s registry.Source) bool {
	switch s.(type) {
	case *local.Source, *ocilayout.Source:
		return false
	}
	return true
}

// Offline reports whether GPTOSS_OFFLINE or HF_HUB_OFFLINE is set to a true
// value (1, on, yes, true), else whether the configuration file says
// "offline": true (see LoadSettings; a malformed file counts as not
// offline here and is reported by For).
func Offline() bool {
	s, _ := LoadSettings()
	return s.Offline
}

// Mirror returns GPTOSS_MIRROR, else the configuration file's "mirror": a
// source location that replaces the default (Hugging Face) for catalog
// models, so `gptoss pull 20b` works unchanged inside an air gap.
func Mirror() string {
	s, _ := LoadSettings()
	return s.Mirror
}

// For returns the source for ref. from, when set (--from), names where to
// get the model instead of the reference's own scheme: a directory, a Hub
// mirror (hf://host, http(s)://host), or an OCI registry (oci://host/ns or
// oci://host/repo:tag, see OCITarget); any other scheme is reported
// unsupported.
func For(ref registry.Ref, from string, o Options) (registry.Source, registry.Ref, error) {
	st, err := LoadSettings()
	if err != nil {
		return nil, ref, err
	}
	if from == "" && ref.Model != nil {
		from = st.Mirror
	}
	if from != "" {
		switch {
		case strings.HasPrefix(from, "hf://") || strings.HasPrefix(from, "http://") || strings.HasPrefix(from, "https://"):
			// A Hub mirror (an endpoint speaking the Hub protocol).
			ep := strings.TrimPrefix(from, "hf://")
			if !strings.Contains(ep, "://") {
				ep = "https://" + ep
			}
			ho := o.hfOptions()
			ho.Endpoint = ep
			s, err := hf.New(ho)
			return s, ref, err
		case strings.HasPrefix(from, "oci://"):
			r, err := OCITarget(from, ref.Name(), ociFormat(ref))
			if err != nil {
				return nil, ref, err
			}
			return oci.NewRef(r, o.ociOptions()), ref, nil
		case strings.Contains(from, "://") && !strings.HasPrefix(from, "file://"):
			scheme := from[:strings.Index(from, "://")]
			return nil, ref, fmt.Errorf("%w: source scheme %s:// is not available in this build yet", registry.ErrUnsupported, scheme)
		default:
			dir := strings.TrimPrefix(from, "file://")
			var s registry.Source
			var err error
			if ocilayout.Is(dir) {
				// An OCI image layout directory or tar (gptoss export, or
				// another gptoss cache): digests come from its manifests.
				s, err = ocilayout.NewSource(dir)
			} else {
				s, err = local.New(dir)
			}
			if err != nil {
				return nil, ref, err
			}
			ref.Scheme = registry.SchemeLocal
			return s, ref, nil
		}
	}
	switch ref.Scheme {
	case registry.SchemeHF:
		s, err := hf.New(o.hfOptions())
		return s, ref, err
	case registry.SchemeLocal:
		if ocilayout.Is(ref.Repo) {
			s, err := ocilayout.NewSource(ref.Repo)
			return s, ref, err
		}
		s, err := local.New(ref.Repo)
		return s, ref, err
	}
	return nil, ref, fmt.Errorf("%w: no source for scheme %q", registry.ErrUnsupported, ref.Scheme)
}
