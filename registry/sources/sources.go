// Package sources picks the Source backend for a reference: one explicit
// table from scheme to constructor (no init() side effects), so the set of
// backends is visible in one place.
package sources

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/azure"
	"github.com/gptoss/gptoss/registry/databricks"
	"github.com/gptoss/gptoss/registry/hf"
	"github.com/gptoss/gptoss/registry/local"
	"github.com/gptoss/gptoss/registry/objstore"
	"github.com/gptoss/gptoss/registry/oci"
	"github.com/gptoss/gptoss/registry/ocilayout"
	"github.com/gptoss/gptoss/registry/s3"
)

// Options carry what backends need from the command line and environment.
type Options struct {
	HF     hf.Options   // endpoint and token; zero = from the environment
	OCI    oci.Options  // registry credentials and plain HTTP; see ociOptions for the environment
	Client *http.Client // shared HTTP client, nil = each backend's default
	S3     s3.Options   // endpoint, region, anonymous; zero = the AWS default chain and environment
	// Azure: endpoint, block size; zero = the AZURE_STORAGE_* environment,
	// then DefaultAzureCredential.
	Azure azure.Options
	// Databricks: workspace and token; empty fields come from
	// DATABRICKS_HOST/DATABRICKS_TOKEN, then ~/.databrickscfg.
	Databricks databricks.Options
	// Known supplies digests for an object-store prefix without a gptoss
	// manifest (objstore.SourceOptions.Known); nil = the catalog's.
	Known objstore.KnownFunc
}

// objectStore is one row of the object-store table: which locations it
// takes and how to open the bucket (and the prefix within it) they name.
type objectStore struct {
	match func(loc string) bool
	open  func(ctx context.Context, loc string, o Options) (objstore.Bucket, string, error)
}

// objectStores is every object-store backend. Each gives a Source and a
// Target through package objstore (pull --from, mirror --to,
// GPTOSS_MIRROR). Rows are tried in order, before the Hub-mirror https://
// case, so a specific https host (Azure's) must come first.
var objectStores = []objectStore{
	{match: func(l string) bool { return strings.HasPrefix(l, s3.Scheme) }, open: openS3},
	// az://ACCOUNT/CONTAINER/PREFIX and https://ACCOUNT.blob.core.windows.net/…: registry/azure
	{match: azure.IsURL, open: openAzure},
	// dbfs:/Volumes/CATALOG/SCHEMA/VOLUME/PATH: registry/databricks
	{match: databricks.Is, open: openDatabricks},
}

// openDatabricks opens a Unity Catalog volume: o.Databricks, with what it
// leaves empty from DATABRICKS_HOST/DATABRICKS_TOKEN or ~/.databrickscfg.
func openDatabricks(_ context.Context, loc string, o Options) (objstore.Bucket, string, error) {
	do := o.Databricks
	if do.Host == "" || do.Token == "" {
		env, err := databricks.OptionsFromEnv()
		if err != nil {
			return nil, "", err
		}
		if do.Host == "" {
			do.Host = env.Host
		}
		if do.Token == "" {
			do.Token = env.Token
		}
	}
	return databricks.Open(loc, do)
}

func openS3(ctx context.Context, loc string, o Options) (objstore.Bucket, string, error) {
	bucket, prefix, err := s3.ParseURL(loc)
	if err != nil {
		return nil, "", err
	}
	b, err := s3.New(ctx, bucket, o.S3)
	return b, prefix, err
}

func openAzure(_ context.Context, loc string, o Options) (objstore.Bucket, string, error) {
	ao := o.Azure
	if ao.Client == nil {
		ao.Client = o.Client
	}
	return azure.Open(loc, ao)
}

// IsObjectStore reports whether loc names an object-store location
// (s3://…, and the others of the table).
func IsObjectStore(loc string) bool {
	for _, st := range objectStores {
		if st.match(loc) {
			return true
		}
	}
	return false
}

// OpenBucket opens the bucket an object-store location names and returns
// it with the prefix within it.
func OpenBucket(ctx context.Context, loc string, o Options) (objstore.Bucket, string, error) {
	for _, st := range objectStores {
		if st.match(loc) {
			return st.open(ctx, loc, o)
		}
	}
	return nil, "", fmt.Errorf("%w: %q is not an object-store location", registry.ErrUnsupported, loc)
}

// ObjectSource is the Source for the snapshot at an object-store location.
func ObjectSource(ctx context.Context, loc string, o Options) (*objstore.Source, error) {
	b, prefix, err := OpenBucket(ctx, loc, o)
	if err != nil {
		return nil, err
	}
	return objstore.NewSource(b, prefix, objstore.SourceOptions{Known: o.Known})
}

// ObjectTarget is the Target that mirrors to an object-store location.
func ObjectTarget(ctx context.Context, loc string, o Options) (*objstore.Target, error) {
	b, prefix, err := OpenBucket(ctx, loc, o)
	if err != nil {
		return nil, err
	}
	return objstore.NewTarget(b, prefix)
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
// mirror (hf://host, http(s)://host), an OCI registry (oci://host/ns or
// oci://host/repo:tag, see OCITarget), or an object-store prefix holding
// one snapshot (s3://bucket/prefix and the other rows of objectStores);
// any other scheme is reported unsupported.
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
		case IsObjectStore(from):
			s, err := ObjectSource(context.Background(), from, o)
			if err != nil {
				return nil, ref, err
			}
			return s, ref, nil
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
