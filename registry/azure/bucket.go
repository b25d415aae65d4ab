package azure

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/objstore"
)

// MetaSHA256 is the blob metadata key (x-ms-meta-gptoss_sha256) that holds a
// file's sha256: Azure keeps no usable digest of a block-assembled blob.
const MetaSHA256 = "gptoss_sha256"

// MaxBlocks is Azure's limit of committed blocks per blob.
const MaxBlocks = 50_000

// Options configure a Bucket. Zero values take the defaults.
type Options struct {
	// Endpoint is the blob service URL (an emulator, a private endpoint);
	// default AZURE_STORAGE_BLOB_ENDPOINT, the connection string's
	// BlobEndpoint, or https://ACCOUNT.blob.core.windows.net.
	Endpoint string
	// Anonymous sends no credentials at all: a container with public read
	// access (the CLI's --no-sign-request).
	Anonymous bool
	// Getenv reads the environment (tests); default os.Getenv.
	Getenv func(string) string
	// Client does the HTTP; default a client tuned for many parallel
	// connections to one host.
	Client *http.Client
	// Parts steer uploads: block size (default GPTOSS_AZURE_BLOCK_MB MiB,
	// else 64 MiB), blocks in flight per file (default 8), tries per block.
	// MaxParts is Azure's 50 000.
	Parts objstore.PartOptions
}

// Bucket is one Azure Blob container: an objstore.Bucket.
type Bucket struct {
	loc   Location
	svc   string
	c     *container.Client
	creds credentials
	parts objstore.PartOptions
}

var _ objstore.Bucket = (*Bucket)(nil)

// defaultClient keeps enough idle connections for a parallel pull (the
// standard transport keeps 2 per host and would reconnect all the time).
var defaultClient = &http.Client{Transport: func() *http.Transport {
	t := registry.NewTransport()
	t.ForceAttemptHTTP2 = true
	return t
}()}

// New returns the container a location names, with credentials resolved as
// resolve documents. It does not touch the network.
func New(loc Location, o Options) (*Bucket, error) {
	svc, creds, err := resolve(loc, o)
	if err != nil {
		return nil, err
	}
	hc := o.Client
	if hc == nil {
		hc = defaultClient
	}
	co := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: hc,
		// Listing, HEAD, the commit and the start of a download are
		// retried here, briefly; blocks are retried by UploadParts, which
		// sees each failure (noRetry), and broken download bodies by fetch.
		Retry:     policy.RetryOptions{MaxRetries: 3, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: 3 * time.Second},
		Telemetry: policy.TelemetryOptions{ApplicationID: "gptoss"},
	}}
	curl := svc + "/" + loc.Container
	var c *container.Client
	switch {
	case creds.anonymous:
		c, err = container.NewClientWithNoCredential(curl, co)
	case creds.sas != "":
		c, err = container.NewClientWithNoCredential(curl+"?"+creds.sas, co)
	case creds.key != nil:
		c, err = container.NewClientWithSharedKeyCredential(curl, creds.key, co)
	default:
		c, err = container.NewClient(curl, creds.token, co)
	}
	if err != nil {
		return nil, scrub(fmt.Errorf("azure: %s: %w", loc, err), creds.secrets)
	}
	po := o.Parts
	po.MaxParts = MaxBlocks
	if po.PartSize == 0 {
		if v := getenvOr(o.Getenv)(EnvBlockMB); v != "" {
			mb, err := strconv.Atoi(v)
			if err != nil || mb < 1 || mb > 4000 {
				return nil, fmt.Errorf("%w: %s=%q: want a block size in MiB, 1 to 4000", registry.ErrInvalidRef, EnvBlockMB, v)
			}
			po.PartSize = int64(mb) << 20
		}
	}
	return &Bucket{loc: loc, svc: svc, c: c, creds: creds, parts: po}, nil
}

func getenvOr(f func(string) string) func(string) string {
	if f == nil {
		return os.Getenv
	}
	return f
}

// Open parses an Azure URL and returns its container and the cleaned
// prefix (objstore.CleanPrefix).
func Open(rawURL string, o Options) (*Bucket, string, error) {
	loc, err := ParseURL(rawURL)
	if err != nil {
		return nil, "", err
	}
	prefix, err := objstore.CleanPrefix(loc.Prefix)
	if err != nil {
		return nil, "", err
	}
	b, err := New(loc, o)
	return b, prefix, err
}

// Describe is az://ACCOUNT/CONTAINER, without credentials.
func (b *Bucket) Describe() string { return "az://" + b.loc.Account + "/" + b.loc.Container }

// Location is the parsed URL the bucket came from (its SAS included).
func (b *Bucket) Location() Location { return b.loc }

// Credentials names where the credentials came from, for messages
// ("AZURE_STORAGE_KEY", "the URL's SAS token", …), never their value.
func (b *Bucket) Credentials() string { return b.creds.how }

// noRetry turns the SDK's own retries off for one call whose caller retries.
func noRetry(ctx context.Context) context.Context {
	return policy.WithRetryOptions(ctx, policy.RetryOptions{MaxRetries: -1})
}

// sha256Of reads the sha256 metadata, whatever case the service returned
// the key in (HTTP headers are case-insensitive: a HEAD gives
// "Gptoss_sha256"), accepting a plain "sha256" key as other tools write it.
func sha256Of(meta map[string]*string) string {
	var plain string
	for k, v := range meta {
		if v == nil {
			continue
		}
		s := strings.ToLower(strings.TrimSpace(*v))
		switch strings.ToLower(k) {
		case MetaSHA256:
			if registry.IsSHA256Hex(s) {
				return s
			}
		case "sha256":
			if registry.IsSHA256Hex(s) {
				plain = s
			}
		}
	}
	return plain
}

// isFolder reports a directory placeholder: on accounts with a
// hierarchical namespace (ADLS Gen2) every directory is listed as an empty
// blob with hdi_isfolder=true metadata, which is not a file of a snapshot.
func isFolder(meta map[string]*string) bool {
	for k, v := range meta {
		if strings.EqualFold(k, "hdi_isfolder") && v != nil && strings.EqualFold(*v, "true") {
			return true
		}
	}
	return false
}

func etag(e *azcore.ETag) string {
	if e == nil {
		return ""
	}
	return strings.Trim(string(*e), `"`)
}

// List returns every blob under prefix, all pages, with the sha256 metadata.
func (b *Bucket) List(ctx context.Context, prefix string) ([]objstore.Object, error) {
	pager := b.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix:  &prefix,
		Include: container.ListBlobsInclude{Metadata: true},
	})
	var out []objstore.Object
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, b.fail("list", prefix, err)
		}
		for _, it := range page.Segment.BlobItems {
			if it == nil || it.Name == nil || isFolder(it.Metadata) {
				continue
			}
			o := objstore.Object{Key: *it.Name, SHA256: sha256Of(it.Metadata)}
			if p := it.Properties; p != nil {
				if p.ContentLength != nil {
					o.Size = *p.ContentLength
				}
				o.ETag = etag(p.ETag)
			}
			out = append(out, o)
		}
	}
	return out, nil
}

// Head returns the blob's size, sha256 metadata and ETag; ok is false when
// there is no such blob (a missing container is an error).
func (b *Bucket) Head(ctx context.Context, key string) (objstore.Object, bool, error) {
	p, err := b.c.NewBlobClient(key).GetProperties(ctx, nil)
	if err != nil {
		if bloberror.HasCode(err, bloberror.BlobNotFound) {
			return objstore.Object{}, false, nil
		}
		return objstore.Object{}, false, b.fail("head", key, err)
	}
	o := objstore.Object{Key: key, SHA256: sha256Of(p.Metadata), ETag: etag(p.ETag)}
	if p.ContentLength != nil {
		o.Size = *p.ContentLength
	}
	return o, true, nil
}

// Open reads n bytes of the blob from off (n < 0: to the end) with one
// ranged GET, checking that the service sent exactly that range.
func (b *Bucket) Open(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if off < 0 {
		return nil, &registry.Permanent{Err: fmt.Errorf("azure: %s/%s: negative offset %d", b.Describe(), key, off)}
	}
	if n == 0 {
		return io.NopCloser(strings.NewReader("")), nil
	}
	rng := blob.HTTPRange{Offset: off}
	if n > 0 {
		rng.Count = n
	}
	// The request itself gets the SDK's quick retries (a 503 ServerBusy on
	// the manifest must not fail a pull: objstore reads it directly); a
	// body that breaks off is the caller's to retry (fetch resumes it).
	resp, err := b.c.NewBlobClient(key).DownloadStream(ctx, &blob.DownloadStreamOptions{Range: rng})
	if err != nil {
		return nil, b.fail("download", key, err)
	}
	body := resp.Body
	want := n
	ranged := off != 0 || n > 0
	if ranged {
		var a, z, total int64
		cr := ""
		if resp.ContentRange != nil {
			cr = *resp.ContentRange
		}
		if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &a, &z, &total); err != nil {
			body.Close()
			return nil, fmt.Errorf("download %s/%s: bad Content-Range %q", b.Describe(), key, cr)
		}
		if n > 0 && off+n > total {
			body.Close()
			return nil, &registry.Permanent{Err: fmt.Errorf("%w: %s/%s has %d bytes, asked for bytes %d-%d", registry.ErrSizeMismatch, b.Describe(), key, total, off, off+n-1)}
		}
		if n < 0 {
			want = total - off
		}
		if a != off || z != off+want-1 {
			body.Close()
			return nil, fmt.Errorf("download %s/%s: asked for bytes %d-%d, got %s", b.Describe(), key, off, off+want-1, cr)
		}
	} else {
		if resp.ContentLength == nil {
			body.Close()
			return nil, fmt.Errorf("download %s/%s: no Content-Length", b.Describe(), key)
		}
		want = *resp.ContentLength
	}
	if resp.ContentLength != nil && *resp.ContentLength != want {
		body.Close()
		return nil, fmt.Errorf("download %s/%s: %d bytes announced for a %d-byte range", b.Describe(), key, *resp.ContentLength, want)
	}
	return registry.ExactReader(&scrubReader{body, b}, body, want), nil
}

// scrubReader keeps a failing body read's error free of secrets.
type scrubReader struct {
	r io.Reader
	b *Bucket
}

func (s *scrubReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = scrub(err, s.b.creds.secrets)
	}
	return n, err
}

// contentType is what a browser or a tool that reads the container sees.
func contentType(key string) string {
	switch path.Ext(key) {
	case ".json":
		return "application/json"
	case ".md", ".jinja", ".txt":
		return "text/plain; charset=utf-8"
	}
	switch path.Base(key) {
	case "LICENSE", "USAGE_POLICY":
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// Put uploads size bytes of r as a block blob with the sha256 in its
// metadata. A file that fits in one block goes up in one Put Blob; a larger
// one in parallel Put Block calls (objstore.UploadParts: each block retried
// on its own) and one Put Block List, which is when the blob appears,
// atomically, replacing any blob of that name.
//
// Block ids are derived from the file's sha256, the block size and the
// block's index, so they name content: a Put that was interrupted (killed,
// network gone) left its staged blocks on the service, and the next Put of
// the same file asks for the uncommitted block list and stages only the
// blocks that are missing — a mirror of a 60 GB file resumes. Without a
// sha256 the ids carry a random upload id instead. The service drops
// uncommitted blocks a week after they were staged.
func (b *Bucket) Put(ctx context.Context, key string, r io.ReaderAt, size int64, sha256hex string) error {
	meta := map[string]*string{}
	if sha256hex != "" {
		meta[MetaSHA256] = &sha256hex
	}
	hdr := &blob.HTTPHeaders{BlobContentType: ptr(contentType(key))}
	bb := b.c.NewBlockBlobClient(key)
	section := func(off, n int64) io.ReadSeekCloser {
		return streaming.NopCloser(io.NewSectionReader(r, off, n))
	}
	ps := b.parts.PartSizeFor(size)
	if size <= ps {
		one := b.parts
		one.Concurrency = 1
		return objstore.UploadParts(ctx, size, one, func(ctx context.Context, _ int, off, n int64) error {
			_, err := bb.Upload(noRetry(ctx), section(off, n), &blockblob.UploadOptions{Metadata: meta, HTTPHeaders: hdr})
			return b.fail("upload", key, err)
		})
	}
	ids, err := blockIDs(sha256hex, ps, b.parts.NumParts(size))
	if err != nil {
		return err
	}
	staged := map[string]int64{}
	if sha256hex != "" {
		if staged, err = b.uncommitted(ctx, bb, key); err != nil {
			return err
		}
	}
	err = objstore.UploadParts(ctx, size, b.parts, func(ctx context.Context, i int, off, n int64) error {
		if got, ok := staged[ids[i]]; ok && got == n {
			return nil // staged by an earlier, interrupted upload of this file
		}
		_, err := bb.StageBlock(noRetry(ctx), ids[i], section(off, n), nil)
		return b.fail("upload block", key, err)
	})
	if err != nil {
		return err
	}
	_, err = bb.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{Metadata: meta, HTTPHeaders: hdr})
	return b.fail("commit", key, err)
}

// blockIDs names the blocks of a file: "gptoss-<sha256[:24]>-<block
// size>-<index>" (or a random upload id for the hash), base64, all of one
// length as Azure requires.
func blockIDs(sha256hex string, blockSize int64, n int) ([]string, error) {
	id := sha256hex
	if len(id) < 24 {
		var rnd [12]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, err
		}
		id = hex.EncodeToString(rnd[:])
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "gptoss-%s-%012d-%06d", id[:24], blockSize, i))
	}
	return ids, nil
}

// uncommitted returns the blob's staged, uncommitted blocks by id and size.
// Not knowing them only costs a re-upload: any error but cancellation is
// "none" (a blob that does not exist, credentials that may write but not
// read), and the Put Block calls that follow report what is wrong.
func (b *Bucket) uncommitted(ctx context.Context, bb *blockblob.Client, key string) (map[string]int64, error) {
	out := map[string]int64{}
	bl, err := bb.GetBlockList(ctx, blockblob.BlockListTypeUncommitted, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return out, nil
	}
	for _, blk := range bl.UncommittedBlocks {
		if blk != nil && blk.Name != nil && blk.Size != nil {
			out[*blk.Name] = *blk.Size
		}
	}
	return out, nil
}

// Delete removes a blob (tests and cleanup); a missing one is not an error.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	_, err := b.c.NewBlobClient(key).Delete(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return nil
	}
	return b.fail("delete", key, err)
}

func ptr[T any](v T) *T { return &v }
