package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gptoss/gptoss/internal/s3test"
	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/objstore"
	"github.com/gptoss/gptoss/registry/s3"
)

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func hexsum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func open(t *testing.T, srv *s3test.Server, bucket string, env []string, o s3.Options) *s3.Bucket {
	t.Helper()
	srv.Setenv(t, env)
	b, err := s3.New(context.Background(), bucket, o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBucketRoundTrip(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket(t, "models")
	ctx := context.Background()
	b := open(t, srv, "models", srv.Env(), s3.Options{Part: objstore.PartOptions{PartSize: 5 << 20, Concurrency: 3}})
	small := randBytes(1000, 1)
	big := randBytes(12<<20+123, 2) // 3 parts of 5 MiB
	for key, data := range map[string][]byte{"p/small.json": small, "p/sub/big.bin": big, "p/empty": {}} {
		if err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), hexsum(data)); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		got, err := os.ReadFile(srv.Path("models", key))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s on the server's disk differs (%v)", key, err)
		}
		o, ok, err := b.Head(ctx, key)
		if err != nil || !ok || o.Size != int64(len(data)) || o.SHA256 != hexsum(data) {
			t.Fatalf("head %s = %+v %v %v", key, o, ok, err)
		}
	}
	objs, err := b.List(ctx, "p/")
	if err != nil || len(objs) != 3 {
		t.Fatalf("list: %v %+v", err, objs)
	}
	for _, o := range objs {
		if o.SHA256 == "" || o.ETag == "" {
			t.Errorf("list %s: no sha256 or etag: %+v", o.Key, o)
		}
	}
	for _, c := range []struct{ off, n int64 }{{0, -1}, {0, int64(len(big))}, {5<<20 - 3, 7}, {int64(len(big)) - 1, 1}, {100, -1}} {
		rc, err := b.Open(ctx, "p/sub/big.bin", c.off, c.n)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		want := big[c.off:]
		if c.n >= 0 {
			want = big[c.off : c.off+c.n]
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("range %d+%d: %d bytes, %v", c.off, c.n, len(got), err)
		}
	}
	if _, ok, err := b.Head(ctx, "p/nope"); ok || err != nil {
		t.Fatalf("head of a missing key: %v %v", ok, err)
	}
	if _, err := b.Open(ctx, "p/nope", 0, 10); !errors.Is(err, registry.ErrNotFound) || !registry.IsPermanent(err) {
		t.Fatalf("open of a missing key: %v", err)
	}
}

func TestBucketErrors(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket(t, "models")
	ctx := context.Background()
	check := func(name string, err error, kind error, words ...string) {
		t.Helper()
		if !errors.Is(err, kind) || !registry.IsPermanent(err) {
			t.Fatalf("%s: %v, want %v (permanent)", name, err, kind)
		}
		msg := err.Error()
		for _, secret := range []string{s3test.Secret, s3test.OtherSecret, "wrong-secret", s3test.OtherAccess, "operation error"} {
			if strings.Contains(msg, secret) {
				t.Fatalf("%s: message leaks %q: %s", name, secret, msg)
			}
		}
		for _, w := range words {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q does not say %q", name, msg, w)
			}
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("%s: more than one line: %q", name, msg)
		}
	}
	b := open(t, srv, "no-such-bucket", srv.Env(), s3.Options{})
	_, err := b.List(ctx, "")
	check("missing bucket", err, registry.ErrNotFound, "no-such-bucket", "does not exist")

	b = open(t, srv, "models", srv.EnvAs(s3test.Access, "wrong-secret"), s3.Options{})
	_, err = b.List(ctx, "")
	check("wrong secret", err, registry.ErrUnauthorized, "credentials were rejected", "AWS_PROFILE")

	b = open(t, srv, "models", srv.EnvAs(s3test.OtherAccess, s3test.OtherSecret), s3.Options{})
	_, err = b.List(ctx, "")
	check("no permission (list)", err, registry.ErrForbidden, "access denied", "s3:ListBucket")
	err = b.Put(ctx, "x", strings.NewReader("x"), 1, "")
	check("no permission (put)", err, registry.ErrForbidden, "access denied", "s3:PutObject")

	b = open(t, srv, "models", srv.EnvAs("", ""), s3.Options{})
	if unsigned, noCreds := b.Anonymous(ctx); !unsigned || !noCreds {
		t.Fatalf("no credentials: Anonymous() = %v, %v", unsigned, noCreds)
	}
	_, err = b.List(ctx, "")
	check("no credentials", err, registry.ErrUnauthorized, "no AWS credentials were found")
}

func TestParseURL(t *testing.T) {
	for in, want := range map[string][2]string{
		"s3://models":               {"models", ""},
		"s3://models/":              {"models", ""},
		"s3://models/a/gpt-oss-20b": {"models", "a/gpt-oss-20b"},
	} {
		b, p, err := s3.ParseURL(in)
		if err != nil || b != want[0] || p != want[1] {
			t.Errorf("ParseURL(%q) = %q %q %v", in, b, p, err)
		}
	}
	for _, bad := range []string{"s3://", "s3://ab", "s3://Upper/x", "s3://models/../x", "http://x/y", "s3://models/a//b"} {
		if _, _, err := s3.ParseURL(bad); !errors.Is(err, registry.ErrInvalidRef) {
			t.Errorf("ParseURL(%q): %v", bad, err)
		}
	}
}

func TestWrongRegion(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket(t, "models")
	b := open(t, srv, "models", srv.Env(), s3.Options{Region: "eu-west-3"})
	_, err := b.List(context.Background(), "")
	if !registry.IsPermanent(err) || !strings.Contains(err.Error(), "does not take region eu-west-3") || !strings.Contains(err.Error(), "--region") {
		t.Fatalf("wrong region: %v", err)
	}
}

// Multipart uploads through a proxy that fails parts: a temporary failure
// is retried for that part alone; a permanent one aborts the upload,
// leaving no object and no stored parts.
func TestMultipartRetryAndAbort(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket(t, "models")
	px := srv.Proxy(t)
	ctx := context.Background()
	b := open(t, srv, "models", srv.Env(), s3.Options{Endpoint: px.URL,
		Part: objstore.PartOptions{PartSize: 5 << 20, Concurrency: 2, Backoff: time.Millisecond}})
	data := randBytes(16<<20, 3) // 4 parts
	px.Fail(http.MethodPut, "partNumber=2&", http.StatusServiceUnavailable, 2)
	px.Fail(http.MethodPut, "partNumber=4&", http.StatusInternalServerError, 1)
	if err := b.Put(ctx, "ok.bin", bytes.NewReader(data), int64(len(data)), hexsum(data)); err != nil {
		t.Fatalf("put with temporary part failures: %v", err)
	}
	got, err := os.ReadFile(srv.Path("models", "ok.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("object differs after retried parts (%v)", err)
	}

	px.Fail(http.MethodPut, "partNumber=3&", http.StatusForbidden, 1)
	err = b.Put(ctx, "bad.bin", bytes.NewReader(data), int64(len(data)), hexsum(data))
	if !errors.Is(err, registry.ErrForbidden) || !strings.Contains(err.Error(), "part 3 of 4") {
		t.Fatalf("put with a refused part: %v", err)
	}
	if _, ok, _ := b.Head(ctx, "bad.bin"); ok {
		t.Error("a failed upload is visible")
	}
	if n := srv.PendingUploads(t, "models"); n != 0 {
		t.Errorf("%d multipart uploads left behind", n)
	}

	// Cancelled midway: aborted too.
	cctx, cancel := context.WithCancel(ctx)
	r := &cancelAfter{r: bytes.NewReader(data), at: 6 << 20, cancel: cancel}
	if err := b.Put(cctx, "cancelled.bin", r, int64(len(data)), hexsum(data)); err == nil {
		t.Fatal("a cancelled upload succeeded")
	}
	if _, ok, _ := b.Head(ctx, "cancelled.bin"); ok {
		t.Error("a cancelled upload is visible")
	}
	if n := srv.PendingUploads(t, "models"); n != 0 {
		t.Errorf("%d multipart uploads left behind after a cancel", n)
	}
}

// cancelAfter cancels a context once a read reaches offset at.
type cancelAfter struct {
	r      io.ReaderAt
	at     int64
	cancel func()
}

func (c *cancelAfter) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) >= c.at {
		c.cancel()
	}
	return c.r.ReadAt(p, off)
}
