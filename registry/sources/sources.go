// Package sources picks the Source backend for a reference: one explicit
// table from scheme to constructor (no init() side effects), so the set of
// backends is visible in one place.
package sources

import (
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/hf"
	"github.com/gptoss/gptoss/registry/local"
)

// Options carry what backends need from the command line and environment.
type Options struct {
	HF     hf.Options   // endpoint and token; zero = from the environment
	Client *http.Client // shared HTTP client, nil = each backend's default
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

// Offline reports whether GPTOSS_OFFLINE or HF_HUB_OFFLINE is set to a true
// value (1, on, yes, true).
func Offline() bool {
	for _, v := range []string{"GPTOSS_OFFLINE", "HF_HUB_OFFLINE"} {
		switch strings.ToLower(os.Getenv(v)) {
		case "1", "on", "yes", "true":
			return true
		}
	}
	return false
}

// Mirror returns GPTOSS_MIRROR: a source location that replaces the default
// (Hugging Face) for catalog models, so `gptoss pull 20b` works unchanged
// inside an air gap.
func Mirror() string { return os.Getenv("GPTOSS_MIRROR") }

// For returns the source for ref. from, when set (--from), names where to
// get the model instead of the reference's own scheme: a directory, or
// hf://ENDPOINT-less Hub (any other scheme is reported unsupported).
func For(ref registry.Ref, from string, o Options) (registry.Source, registry.Ref, error) {
	if from == "" && ref.Model != nil {
		from = Mirror()
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
		case strings.Contains(from, "://") && !strings.HasPrefix(from, "file://"):
			scheme := from[:strings.Index(from, "://")]
			return nil, ref, fmt.Errorf("%w: source scheme %s:// is not available in this build yet", registry.ErrUnsupported, scheme)
		default:
			s, err := local.New(strings.TrimPrefix(from, "file://"))
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
		s, err := local.New(ref.Repo)
		return s, ref, err
	}
	return nil, ref, fmt.Errorf("%w: no source for scheme %q", registry.ErrUnsupported, ref.Scheme)
}
