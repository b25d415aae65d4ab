package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/logging"

	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/objstore"
)

// Scheme is the URL scheme of S3 locations.
const Scheme = "s3://"

// MetaSHA256 is the user metadata key holding a file's sha256 (sent as
// x-amz-meta-sha256).
const MetaSHA256 = "sha256"

// Options steer a Bucket. The zero value uses the AWS default chain for
// everything.
type Options struct {
	// Endpoint is the base URL of an S3-compatible store
	// (http://127.0.0.1:7070). "" means AWS_ENDPOINT_URL_S3, else
	// AWS_ENDPOINT_URL, else AWS itself. A custom endpoint is spoken to
	// path-style (http://host/bucket/key).
	Endpoint string
	// Region is the bucket's region. "" means: discovered from the bucket
	// (x-amz-bucket-region) on AWS, else AWS_REGION / the profile, else
	// us-east-1.
	Region string
	// Anonymous sends unsigned requests (public buckets; aws
	// --no-sign-request). It is also used when no credentials are found.
	Anonymous bool
	// Part steers multipart uploads (default 64 MiB parts, 8 at a time).
	Part objstore.PartOptions
	// Client is the HTTP client; nil is one tuned for many parallel
	// ranged reads to one host.
	Client config.HTTPClient
}

// ParseURL splits s3://bucket/prefix. The bucket name follows S3's rules
// (3–63 characters: lower-case letters, digits, '.', '-').
func ParseURL(s string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return "", "", fmt.Errorf("%w: %q is not an s3://bucket/prefix URL", registry.ErrInvalidRef, s)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if !validBucket(bucket) {
		return "", "", fmt.Errorf("%w: %q: bad bucket name %q (3-63 characters: a-z, 0-9, '.', '-')", registry.ErrInvalidRef, s, bucket)
	}
	if _, err := objstore.CleanPrefix(prefix); err != nil {
		return "", "", fmt.Errorf("%w: %q: %v", registry.ErrInvalidRef, s, err)
	}
	return bucket, prefix, nil
}

func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for _, r := range b {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// Bucket is one S3 bucket. It implements objstore.Bucket.
type Bucket struct {
	name     string
	endpoint string // "" for AWS
	region   string
	anon     bool // unsigned requests
	noCreds  bool // anonymous because no credentials were found
	keyID    string
	part     objstore.PartOptions

	cfg      aws.Config
	hc       config.HTTPClient
	explicit string // --region
	once     sync.Once
	c        *s3.Client
}

// New opens bucket with the default AWS configuration chain (environment,
// shared config and credentials files with AWS_PROFILE, SSO, web identity,
// ECS and EC2 instance roles). Nothing goes over the network yet: the
// credentials are looked up, and on AWS without a --region the bucket is
// asked for its region (one unsigned HEAD), at the first request, so an
// offline command that never needs the bucket never touches it.
func New(ctx context.Context, bucket string, o Options) (*Bucket, error) {
	if !validBucket(bucket) {
		return nil, fmt.Errorf("%w: bad bucket name %q", registry.ErrInvalidRef, bucket)
	}
	if o.Endpoint == "" {
		o.Endpoint = firstEnv("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return nil, fmt.Errorf("%w: endpoint %q: want http(s)://host[:port] without credentials", registry.ErrInvalidRef, redactURL(o.Endpoint))
		}
		o.Endpoint = strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/")
	}
	var hc config.HTTPClient = o.Client
	if hc == nil {
		hc = defaultClient()
	}
	b := &Bucket{name: bucket, endpoint: o.Endpoint, anon: o.Anonymous, part: o.Part}
	lo := []func(*config.LoadOptions) error{
		config.WithHTTPClient(hc),
		// The SDK logs warnings (IMDSv1 fallback …) to stderr itself; gptoss
		// reports through its errors.
		config.WithLogger(logging.Nop{}),
		config.WithClientLogMode(0),
		// gptoss checks sha256 itself; a CRC over every GET would only
		// cost CPU, and multipart objects have no whole-object CRC anyway.
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
	}
	if o.Region != "" {
		lo = append(lo, config.WithRegion(o.Region))
	}
	if o.Anonymous {
		lo = append(lo, config.WithCredentialsProvider(aws.AnonymousCredentials{}))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		// A malformed ~/.aws/config or a profile that does not exist.
		return nil, fmt.Errorf("%w: AWS configuration: %v", registry.ErrUnauthorized, scrub(err.Error(), ""))
	}
	b.cfg, b.hc, b.explicit = cfg, hc, o.Region
	return b, nil
}

// client finishes the setup once, at the first request: credentials (none
// found: unsigned requests), then the region.
func (b *Bucket) client(ctx context.Context) *s3.Client {
	b.once.Do(func() {
		ctx := context.WithoutCancel(ctx)
		cfg := b.cfg
		if !b.anon {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			creds, err := cfg.Credentials.Retrieve(rctx)
			cancel()
			if err != nil || !creds.HasKeys() {
				// No credentials anywhere: public buckets still work.
				cfg.Credentials = aws.AnonymousCredentials{}
				b.anon, b.noCreds = true, true
			} else {
				b.keyID = creds.AccessKeyID
			}
		}
		switch {
		case b.explicit != "":
			b.region = b.explicit
		case b.endpoint == "":
			b.region = discoverRegion(ctx, b.hc, b.name)
		}
		if b.region == "" {
			b.region = cfg.Region
		}
		if b.region == "" {
			b.region = "us-east-1"
		}
		cfg.Region = b.region
		b.c = s3.NewFromConfig(cfg, func(so *s3.Options) {
			if b.endpoint != "" {
				so.BaseEndpoint = aws.String(b.endpoint)
				so.UsePathStyle = true
			}
		})
	})
	return b.c
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// defaultClient keeps as many idle connections per host as a pull opens
// (the SDK's default pool keeps 10 and would reconnect the rest).
func defaultClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = 512
		t.MaxIdleConnsPerHost = 256
		t.ResponseHeaderTimeout = time.Minute
	}).WithDialerOptions(func(d *net.Dialer) { d.Timeout = 10 * time.Second })
}

// discoverRegion asks AWS where the bucket lives: an unsigned HEAD answers
// with x-amz-bucket-region whatever the status (200, 301, 403).
func discoverRegion(ctx context.Context, hc config.HTTPClient, bucket string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	host := bucket + ".s3.amazonaws.com"
	if strings.Contains(bucket, ".") {
		host = "s3.amazonaws.com/" + bucket // dots break the TLS wildcard
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, "https://"+host, nil)
	if err != nil {
		return ""
	}
	resp, err := hc.Do(req)
	if err != nil {
		return ""
	}
	resp.Body.Close()
	return resp.Header.Get("X-Amz-Bucket-Region")
}

// Describe is s3://bucket.
func (b *Bucket) Describe() string { return Scheme + b.name }

// Region is the region requests are signed for (settled by the first
// request, or by this call).
func (b *Bucket) Region(ctx context.Context) string { b.client(ctx); return b.region }

// Anonymous reports whether requests go unsigned, and whether that is
// because no credentials were found.
func (b *Bucket) Anonymous(ctx context.Context) (unsigned, noCredentials bool) {
	b.client(ctx)
	return b.anon, b.noCreds
}

// maxHeadConcurrency bounds the HEADs List sends for metadata, and
// maxHeads the listings it sends them for at all.
const (
	maxHeadConcurrency = 16
	maxHeads           = 1000
)

// List lists every object under prefix (ListObjectsV2, all pages) and
// fills in each object's sha256 metadata with a HEAD per object (S3
// listings carry no user metadata), up to 16 at a time, for listings of
// at most 1000 objects.
func (b *Bucket) List(ctx context.Context, prefix string) ([]objstore.Object, error) {
	var out []objstore.Object
	p := s3.NewListObjectsV2Paginator(b.client(ctx), &s3.ListObjectsV2Input{Bucket: &b.name, Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, b.wrap("list", prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, objstore.Object{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), ETag: unquote(aws.ToString(o.ETag))})
		}
	}
	if len(out) > maxHeads {
		return out, nil // not a model snapshot's few dozen files: no metadata
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, maxHeadConcurrency)
	)
	for i := range out {
		if strings.HasSuffix(out[i].Key, "/") {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			o, ok, err := b.Head(ctx, out[i].Key)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if ok && o.Size == out[i].Size {
				out[i].SHA256 = o.SHA256
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// Head returns the object's size, ETag and sha256 metadata.
func (b *Bucket) Head(ctx context.Context, key string) (objstore.Object, bool, error) {
	r, err := b.client(ctx).HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.name, Key: &key})
	if err != nil {
		var nf *types.NotFound
		if errors.As(err, &nf) || statusOf(err) == http.StatusNotFound {
			return objstore.Object{}, false, nil
		}
		return objstore.Object{}, false, b.wrap("head", key, err)
	}
	o := objstore.Object{Key: key, Size: aws.ToInt64(r.ContentLength), ETag: unquote(aws.ToString(r.ETag))}
	if v := strings.ToLower(r.Metadata[MetaSHA256]); registry.IsSHA256Hex(v) {
		o.SHA256 = v
	}
	return o, true, nil
}

// Open is a ranged GetObject. The SDK does not retry it (the transfer
// engine does, from the offset reached); the Content-Range must be the
// one asked for.
func (b *Bucket) Open(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if n == 0 {
		return io.NopCloser(strings.NewReader("")), nil
	}
	in := &s3.GetObjectInput{Bucket: &b.name, Key: &key}
	if off > 0 || n > 0 {
		rg := fmt.Sprintf("bytes=%d-", off)
		if n > 0 {
			rg += fmt.Sprint(off + n - 1)
		}
		in.Range = &rg
	}
	r, err := b.client(ctx).GetObject(ctx, in, func(o *s3.Options) { o.Retryer = aws.NopRetryer{} })
	if err != nil {
		return nil, b.wrap("download", key, err)
	}
	if in.Range != nil {
		var a, z, total int64
		cr := aws.ToString(r.ContentRange)
		if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &a, &z, &total); err != nil || a != off || (n > 0 && z != off+n-1) {
			r.Body.Close()
			return nil, fmt.Errorf("download %s/%s: asked for bytes %d-%d, got %q", b.Describe(), key, off, off+n-1, cr)
		}
		if n < 0 {
			n = z - a + 1
		}
	} else if n < 0 {
		n = aws.ToInt64(r.ContentLength)
	}
	return registry.ExactReader(r.Body, r.Body, n), nil
}

// Put uploads an object: one PutObject up to the part size, else a
// multipart upload whose parts go up in parallel, each retried on its own;
// on failure the upload is aborted, so no object (and no stored part)
// remains. The sha256 goes into the x-amz-meta-sha256 metadata.
func (b *Bucket) Put(ctx context.Context, key string, r io.ReaderAt, size int64, sha256hex string) error {
	meta := map[string]string{}
	if sha256hex != "" {
		meta[MetaSHA256] = sha256hex
	}
	ps := b.part.PartSizeFor(size)
	if size <= ps {
		_, err := b.client(ctx).PutObject(ctx, &s3.PutObjectInput{Bucket: &b.name, Key: &key, Body: io.NewSectionReader(r, 0, size),
			ContentLength: aws.Int64(size), Metadata: meta})
		if err != nil {
			return b.wrap("upload", key, err)
		}
		return nil
	}
	cr, err := b.client(ctx).CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &b.name, Key: &key, Metadata: meta})
	if err != nil {
		return b.wrap("upload", key, err)
	}
	id := cr.UploadId
	parts := make([]types.CompletedPart, b.part.NumParts(size))
	err = objstore.UploadParts(ctx, size, b.part, func(ctx context.Context, i int, off, n int64) error {
		num := int32(i + 1)
		up, err := b.client(ctx).UploadPart(ctx, &s3.UploadPartInput{Bucket: &b.name, Key: &key, UploadId: id, PartNumber: &num,
			Body: io.NewSectionReader(r, off, n), ContentLength: aws.Int64(n)}, func(o *s3.Options) { o.Retryer = aws.NopRetryer{} })
		if err != nil {
			return b.wrap("upload", key, err)
		}
		parts[i] = types.CompletedPart{ETag: up.ETag, PartNumber: &num}
		return nil
	})
	if err == nil {
		_, err = b.client(ctx).CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &b.name, Key: &key, UploadId: id,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
		if err != nil {
			err = b.wrap("upload", key, err)
		}
	}
	if err != nil {
		// Abort even when ctx is cancelled: stored parts cost money and
		// the upload must leave nothing behind.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		b.abort(actx, key, id)
		cancel()
		return err
	}
	return nil
}

// abort aborts a multipart upload until the server no longer lists it: a
// part whose request this client gave up on (a cancelled context) may
// still be stored by the server after the first abort, which recreates
// the upload (the S3 API reference for AbortMultipartUpload says to abort
// again until ListParts finds none). A few tries, 50 ms apart and growing.
func (b *Bucket) abort(ctx context.Context, key string, id *string) {
	c := b.client(ctx)
	in := &s3.AbortMultipartUploadInput{Bucket: &b.name, Key: &key, UploadId: id}
	wait := 50 * time.Millisecond
	for range 5 {
		c.AbortMultipartUpload(ctx, in)
		lp, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: &b.name, Key: &key, UploadId: id})
		if err != nil || len(lp.Parts) == 0 {
			// gone (NoSuchUpload), or nothing stored and nothing more we can do
			if err == nil {
				c.AbortMultipartUpload(ctx, in)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// Delete removes an object (tests and cleanup; not part of objstore.Bucket).
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if _, err := b.client(ctx).DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.name, Key: &key}); err != nil {
		return b.wrap("delete", key, err)
	}
	return nil
}

func unquote(s string) string { return strings.Trim(s, `"`) }

var _ objstore.Bucket = (*Bucket)(nil)
