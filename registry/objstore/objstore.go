package objstore

import (
	"context"
	"io"
	"path"
	"strings"

	"github.com/gptoss/gptoss/registry"
)

// ManifestName is the object a mirror writes last beside the files, under
// the prefix: the snapshot's registry.Manifest (every file's path, size,
// sha256, the source and the revision). It is the source of truth for a
// pull: an object store's own checksums are not the file's sha256.
const ManifestName = "gptoss-manifest.json"

// Object is one object of a bucket listing.
type Object struct {
	Key    string // the full key, prefix included
	Size   int64
	SHA256 string // lower-case hex from the object's metadata (x-amz-meta-sha256 …); "" if none
	ETag   string // the store's entity tag, quotes removed; "" if the store has none
}

// Bucket is one object store container (an S3 bucket, an Azure container, a
// Databricks volume) seen through the five operations gptoss needs. A
// backend is one small Bucket; listing, resume, verification, manifests and
// skip-if-present live once, in Source and Target.
//
// Errors wrap registry's kinds so the CLI maps them onto exit codes and the
// transfer engine knows what to retry: a missing bucket or key wraps
// registry.ErrNotFound, missing or rejected credentials
// registry.ErrUnauthorized, refused access registry.ErrForbidden, and a
// failed HTTP exchange carries a *registry.HTTPError (with its Status, so
// registry.IsPermanent tells a 503 from a 404). Messages are one actionable
// line and never contain credentials, signatures or SAS tokens.
type Bucket interface {
	// List returns every object whose key starts with prefix, recursively,
	// all pages, in any order. An empty result is not an error.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Open reads n bytes of key from off (n < 0: to the end). The reader
	// yields exactly that many bytes or fails with io.ErrUnexpectedEOF
	// (registry.ExactReader); a server that sends another range is an error
	// (registry.CheckRange). It honours ctx for the whole body.
	Open(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
	// Put stores size bytes read from r under key, with sha256hex (when not
	// "") in the object's metadata. r may be read concurrently at different
	// offsets: large objects go up in parallel parts or blocks, each retried
	// on its own (see UploadParts). The object appears only when complete;
	// a failed Put leaves nothing visible (and aborts what it started).
	Put(ctx context.Context, key string, r io.ReaderAt, size int64, sha256hex string) error
	// Head returns the object at key; ok is false (and err nil) when there
	// is none.
	Head(ctx context.Context, key string) (obj Object, ok bool, err error)
	// Describe names the bucket for messages (s3://bucket, az://acct/cont),
	// never with credentials.
	Describe() string
}

// CleanPrefix normalises a prefix given by a user: no leading slash, and a
// trailing slash unless empty, so that "models/20b" never also matches
// "models/20b-old/…". It refuses "..", "." and empty elements.
func CleanPrefix(p string) (string, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return "", nil
	}
	if _, err := registry.CleanPath(p); err != nil {
		return "", err
	}
	return p + "/", nil
}

// Join is the key of the snapshot path rel under a prefix from CleanPrefix.
func Join(prefix, rel string) string { return prefix + rel }

// Location is the URL-ish form of bucket+prefix for messages:
// Describe() + "/" + prefix without its trailing slash.
func Location(b Bucket, prefix string) string {
	d := strings.TrimRight(b.Describe(), "/")
	if p := strings.TrimSuffix(prefix, "/"); p != "" {
		return d + "/" + p
	}
	return d
}

// relKey returns key relative to prefix, or false if it is not under it or
// not a clean snapshot path (a "directory marker" object, "a//b", "..").
func relKey(prefix, key string) (string, bool) {
	rel, ok := strings.CutPrefix(key, prefix)
	if !ok || rel == "" || strings.HasSuffix(rel, "/") {
		return "", false
	}
	if c, err := registry.CleanPath(rel); err != nil || c != rel || path.Clean(rel) != rel {
		return "", false
	}
	return rel, true
}
