package azure

// The backend against a real Blob service: Azurite (internal/azuritetest).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/gptoss/gptoss/internal/azuritetest"
	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/objstore"
)

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// keyOpts is the shared key for an Azurite server at endpoint.
func keyOpts(s *azuritetest.Server, endpoint string) Options {
	return Options{Getenv: env(map[string]string{EnvKey: s.Key, EnvBlobEndpoint: endpoint}),
		Parts: objstore.PartOptions{PartSize: 1 << 20, Concurrency: 4}}
}

func openBucket(t *testing.T, url string, o Options) (*Bucket, string) {
	t.Helper()
	b, prefix, err := Open(url, o)
	if err != nil {
		t.Fatal(err)
	}
	return b, prefix
}

func readAll(t *testing.T, b *Bucket, key string, off, n int64) ([]byte, error) {
	t.Helper()
	rc, err := b.Open(context.Background(), key, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestBucketAzurite(t *testing.T) {
	s := azuritetest.Start(t)
	s.CreateContainer(t, "models")
	ctx := context.Background()
	b, prefix := openBucket(t, "az://devstoreaccount1/models/gpt-oss-20b", keyOpts(s, s.Endpoint))
	if prefix != "gpt-oss-20b/" || b.Describe() != "az://devstoreaccount1/models" {
		t.Fatalf("prefix %q, %s", prefix, b.Describe())
	}

	small := []byte(`{"hello": "world"}`)
	big := randBytes(5<<20+12345, 1) // six 1 MiB blocks
	if err := b.Put(ctx, prefix+"config.json", bytes.NewReader(small), int64(len(small)), hexSHA(small)); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, prefix+"sub/model.safetensors", bytes.NewReader(big), int64(len(big)), hexSHA(big)); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, prefix+"empty", bytes.NewReader(nil), 0, ""); err != nil {
		t.Fatal(err)
	}
	// A directory placeholder as ADLS Gen2 accounts list them: not a file.
	if _, err := s.Container(t, "models").NewBlockBlobClient(prefix+"sub").UploadBuffer(ctx, nil,
		&blockblob.UploadBufferOptions{Metadata: map[string]*string{"hdi_isfolder": ptr("true")}}); err != nil {
		t.Fatal(err)
	}
	// The large one went up as staged blocks, committed in order.
	bl, err := s.Container(t, "models").NewBlockBlobClient(prefix+"sub/model.safetensors").GetBlockList(ctx, blockblob.BlockListTypeAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(bl.CommittedBlocks); n != 6 || len(bl.UncommittedBlocks) != 0 {
		t.Errorf("%d committed blocks, %d uncommitted; want 6, 0", n, len(bl.UncommittedBlocks))
	}

	objs, err := b.List(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]objstore.Object{}
	for _, o := range objs {
		got[o.Key] = o
	}
	if len(got) != 3 || got[prefix+"config.json"].SHA256 != hexSHA(small) || got[prefix+"sub/model.safetensors"].Size != int64(len(big)) ||
		got[prefix+"sub/model.safetensors"].SHA256 != hexSHA(big) || got[prefix+"empty"].SHA256 != "" || got[prefix+"config.json"].ETag == "" {
		t.Errorf("list: %+v", objs)
	}
	if objs, err := b.List(ctx, "nothing-here/"); err != nil || len(objs) != 0 {
		t.Errorf("empty prefix: %v %v", objs, err)
	}

	o, ok, err := b.Head(ctx, prefix+"sub/model.safetensors")
	if err != nil || !ok || o.Size != int64(len(big)) || o.SHA256 != hexSHA(big) {
		t.Errorf("head: %+v %v %v", o, ok, err)
	}
	if _, ok, err := b.Head(ctx, prefix+"missing"); ok || err != nil {
		t.Errorf("head of a missing blob: %v %v", ok, err)
	}

	key := prefix + "sub/model.safetensors"
	L := int64(len(big))
	for _, r := range [][2]int64{{0, -1}, {0, L}, {1 << 20, 3}, {L - 10, -1}, {L - 10, 10}, {123, 0}} {
		data, err := readAll(t, b, key, r[0], r[1])
		end := L
		if r[1] >= 0 {
			end = r[0] + r[1]
		}
		if err != nil || !bytes.Equal(data, big[r[0]:end]) {
			t.Errorf("range %v: %d bytes, %v", r, len(data), err)
		}
	}
	if data, err := readAll(t, b, prefix+"empty", 0, -1); err != nil || len(data) != 0 {
		t.Errorf("empty blob: %q %v", data, err)
	}
	if _, err := readAll(t, b, key, L-10, 20); !errors.Is(err, registry.ErrSizeMismatch) || !registry.IsPermanent(err) {
		t.Errorf("range past the end: %v", err)
	}
	if _, err := readAll(t, b, prefix+"missing", 0, 10); !errors.Is(err, registry.ErrNotFound) || !registry.IsPermanent(err) {
		t.Errorf("missing blob: %v", err)
	}
	// Cancelling the context stops a download.
	cctx, cancel := context.WithCancel(ctx)
	rc, err := b.Open(cctx, key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.ReadAll(rc); err == nil {
		t.Error("a cancelled download read to the end")
	}
	rc.Close()

	// Overwrite: the new content and metadata replace the old atomically.
	if err := b.Put(ctx, prefix+"config.json", bytes.NewReader(big), L, hexSHA(big)); err != nil {
		t.Fatal(err)
	}
	if o, _, _ := b.Head(ctx, prefix+"config.json"); o.Size != L || o.SHA256 != hexSHA(big) {
		t.Errorf("overwritten: %+v", o)
	}
}

// failingReader fails reads at or after off, once armed.
type failingReader struct {
	r     io.ReaderAt
	off   int64
	armed atomic.Bool
}

func (f *failingReader) ReadAt(p []byte, off int64) (int, error) {
	if f.armed.Load() && off+int64(len(p)) > f.off {
		return 0, &registry.Permanent{Err: errors.New("disk read error")}
	}
	return f.r.ReadAt(p, off)
}

type countingReader struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// A block upload that fails for good leaves no blob, and the next one
// stages only the missing blocks; one that fails for a
// while (503 ServerBusy) is retried block by block and the blob is whole.
func TestPutBlocksAtomicAndRetried(t *testing.T) {
	s := azuritetest.Start(t)
	s.CreateContainer(t, "models")
	p := s.Proxy(t)
	ctx := context.Background()
	b, _ := openBucket(t, "az://devstoreaccount1/models", keyOpts(s, p.Endpoint))
	data := randBytes(4<<20+1, 2)

	// One block at a time, so that blocks 0-2 are staged when block 3
	// fails for good.
	fr := &failingReader{r: bytes.NewReader(data), off: 3 << 20}
	fr.armed.Store(true)
	b.parts.Concurrency = 1
	if err := b.Put(ctx, "x.bin", fr, int64(len(data)), hexSHA(data)); err == nil || !strings.Contains(err.Error(), "disk read error") {
		t.Fatalf("put with a failing reader: %v", err)
	}
	if _, ok, err := b.Head(ctx, "x.bin"); ok || err != nil {
		t.Fatalf("a failed upload left a blob (%v, %v)", ok, err)
	}
	// The next Put of the same file stages only the missing blocks.
	b.parts.Concurrency = 4
	cr := &countingReader{r: bytes.NewReader(data)}
	if err := b.Put(ctx, "x.bin", cr, int64(len(data)), hexSHA(data)); err != nil {
		t.Fatal(err)
	}
	if want := int64(len(data)) - 3<<20; cr.n.Load() != want {
		t.Errorf("the resumed upload read %d bytes, want the %d not staged before", cr.n.Load(), want)
	}
	if got, err := readAll(t, b, "x.bin", 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("resumed upload: %d bytes, %v", len(got), err)
	}
	if err := b.Delete(ctx, "x.bin"); err != nil {
		t.Fatal(err)
	}

	p.AddFault(azuritetest.Fault{Match: azuritetest.IsStageBlock, Count: 3, Status: http.StatusServiceUnavailable, Code: "ServerBusy"})
	b.parts.Backoff = 1
	if err := b.Put(ctx, "x.bin", bytes.NewReader(data), int64(len(data)), hexSHA(data)); err != nil {
		t.Fatal(err)
	}
	if p.Fired() != 3 {
		t.Errorf("%d faults fired, want 3", p.Fired())
	}
	got, err := readAll(t, b, "x.bin", 0, -1)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("after retries: %d bytes, %v", len(got), err)
	}

	// A block that keeps failing: the error says what and where, once.
	p.AddFault(azuritetest.Fault{Match: azuritetest.IsStageBlock, Count: -1, Status: http.StatusServiceUnavailable, Code: "ServerBusy"})
	err = b.Put(ctx, "y.bin", bytes.NewReader(data), int64(len(data)), hexSHA(data))
	if err == nil || !strings.Contains(err.Error(), "HTTP 503 (ServerBusy)") || strings.Contains(err.Error(), "\n") {
		t.Errorf("persistent 503: %v", err)
	}
}

// Bad credentials, a missing container and too few permissions each give
// one line that says what to do, the right sentinel, and no secret.
func TestErrorsAzurite(t *testing.T) {
	s := azuritetest.Start(t)
	s.CreateContainer(t, "models")
	ctx := context.Background()
	data := []byte("0123456789")
	put := func(b *Bucket) error { return b.Put(ctx, "f.bin", bytes.NewReader(data), 10, hexSHA(data)) }
	noSecret := func(what string, err error, secrets ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		msg := err.Error()
		t.Logf("%s: %s", what, msg)
		if strings.Contains(msg, "\n") {
			t.Errorf("%s: more than one line", what)
		}
		for _, sec := range secrets {
			if strings.Contains(msg, sec) {
				t.Errorf("%s: the message shows a secret", what)
			}
		}
	}

	// A wrong key (valid base64, another account's).
	wrong := "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXkgd3Jvbmcga2V5IHdyb25nIGtleQ=="
	b, _ := openBucket(t, "az://devstoreaccount1/models", Options{Getenv: env(map[string]string{EnvKey: wrong, EnvBlobEndpoint: s.Endpoint})})
	_, err := b.List(ctx, "")
	noSecret("wrong key", err, wrong)
	// Azure says 403 AuthenticationFailed, Azurite 403 AuthorizationFailure:
	// both are exit 4 (ErrUnauthorized or ErrForbidden) and name the key.
	authErr := func(err error) bool {
		return (errors.Is(err, registry.ErrUnauthorized) || errors.Is(err, registry.ErrForbidden)) && strings.Contains(err.Error(), "wrong account key")
	}
	if !authErr(err) || !strings.Contains(err.Error(), "AZURE_STORAGE_KEY") {
		t.Errorf("wrong key: %v", err)
	}
	_, _, err = b.Head(ctx, "f.bin")
	if !authErr(err) {
		t.Errorf("wrong key, head: %v", err)
	}

	// A missing container.
	b, _ = openBucket(t, "az://devstoreaccount1/nosuch", keyOpts(s, s.Endpoint))
	_, err = b.List(ctx, "")
	noSecret("missing container", err)
	if !errors.Is(err, registry.ErrNotFound) || !strings.Contains(err.Error(), `container "nosuch" does not exist`) {
		t.Errorf("missing container: %v", err)
	}
	noSecret("missing container, put", put(b))

	// A read-only SAS used for writing.
	ro := s.SAS(t, "models", "rl")
	b, _ = openBucket(t, "az://devstoreaccount1/models?"+ro, Options{Getenv: env(map[string]string{EnvBlobEndpoint: s.Endpoint})})
	err = put(b)
	sig := ro[strings.Index(ro, "sig=")+4:]
	noSecret("read-only SAS", err, ro, sig)
	if !errors.Is(err, registry.ErrForbidden) || !strings.Contains(err.Error(), "sp=racwl") {
		t.Errorf("read-only SAS: %v", err)
	}
	if _, err := b.List(ctx, ""); err != nil {
		t.Errorf("read-only SAS may list: %v", err)
	}
	// A tampered SAS.
	bad := strings.Replace(ro, "sig=", "sig=AAAA", 1)
	b, _ = openBucket(t, "az://devstoreaccount1/models?"+bad, Options{Getenv: env(map[string]string{EnvBlobEndpoint: s.Endpoint})})
	_, err = b.List(ctx, "")
	noSecret("tampered SAS", err, bad, "AAAA"+sig)
	if !authErr(err) {
		t.Errorf("tampered SAS: %v", err)
	}
	// Unreachable, with a SAS in the URL: a network error, no secret.
	b, _ = openBucket(t, "az://devstoreaccount1/models?"+ro, Options{Getenv: env(map[string]string{EnvBlobEndpoint: "http://127.0.0.1:1"})})
	_, err = readAll(t, b, "f.bin", 0, 10)
	noSecret("unreachable", err, ro, sig)
	if registry.IsPermanent(err) {
		t.Errorf("a refused connection is permanent: %v", err)
	}
}

// The objstore Source and Target on Azure: a mirror's files and manifest,
// read back by a Source, byte for byte.
func TestObjstoreOnAzurite(t *testing.T) {
	s := azuritetest.Start(t)
	s.CreateContainer(t, "models")
	ctx := context.Background()
	b, prefix := openBucket(t, "az://devstoreaccount1/models/m", Options{Getenv: env(map[string]string{EnvConnectionString: s.ConnectionString()})})
	files := map[string][]byte{"config.json": []byte(`{}`), "w/model.safetensors": randBytes(3<<20, 3)}
	m := &registry.Manifest{Name: "openai/gpt-oss-20b", Revision: strings.Repeat("ab", 20), Format: "hf", Source: "test"}
	tg, err := objstore.NewTarget(b, prefix)
	if err != nil {
		t.Fatal(err)
	}
	for p, d := range files {
		f := registry.File{Path: p, Size: int64(len(d)), SHA256: hexSHA(d)}
		m.Files = append(m.Files, f)
		if err := tg.Put(ctx, f, bytes.NewReader(d)); err != nil {
			t.Fatal(err)
		}
		if ok, err := tg.Stat(ctx, f); !ok || err != nil {
			t.Errorf("stat after put: %v %v", ok, err)
		}
	}
	if err := tg.Commit(ctx, m); err != nil {
		t.Fatal(err)
	}
	src, err := objstore.NewSource(b, prefix, objstore.SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := src.Resolve(ctx, registry.Ref{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != m.Revision || len(got.Files) != 2 || !src.HasManifest() || src.Describe() != "az://devstoreaccount1/models/m" {
		t.Fatalf("resolved %+v", got)
	}
	for _, f := range got.Files {
		rc, err := src.Open(ctx, f, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(d, files[f.Path]) || f.SHA256 != hexSHA(d) {
			t.Errorf("%s differs", f.Path)
		}
	}
}

// --no-sign-request: a public container reads without credentials; a
// private one says that it is not public.
func TestAnonymousAzurite(t *testing.T) {
	s := azuritetest.Start(t)
	ctx := context.Background()
	if _, err := s.Container(t, "public").Create(ctx, &container.CreateOptions{Access: ptr(container.PublicAccessTypeContainer)}); err != nil {
		t.Fatal(err)
	}
	s.CreateContainer(t, "private")
	data := randBytes(1000, 4)
	for _, c := range []string{"public", "private"} {
		b, _ := openBucket(t, "az://devstoreaccount1/"+c, keyOpts(s, s.Endpoint))
		if err := b.Put(ctx, "m/x.bin", bytes.NewReader(data), 1000, hexSHA(data)); err != nil {
			t.Fatal(err)
		}
	}
	anon := Options{Anonymous: true, Getenv: env(map[string]string{EnvKey: s.Key, EnvBlobEndpoint: s.Endpoint})}
	b, _ := openBucket(t, "az://devstoreaccount1/public/m", anon)
	objs, err := b.List(ctx, "m/")
	if err != nil || len(objs) != 1 || objs[0].SHA256 != hexSHA(data) {
		t.Fatalf("anonymous list: %+v %v", objs, err)
	}
	if got, err := readAll(t, b, "m/x.bin", 10, 20); err != nil || !bytes.Equal(got, data[10:30]) {
		t.Errorf("anonymous read: %v", err)
	}
	b, _ = openBucket(t, "az://devstoreaccount1/private/m", anon)
	_, err = b.List(ctx, "m/")
	t.Logf("private, anonymous: %v", err)
	if err == nil || !strings.Contains(err.Error(), "does not allow public (anonymous) access") || !registry.IsPermanent(err) {
		t.Errorf("anonymous list of a private container: %v", err)
	}
	if errors.Is(err, registry.ErrUnauthorized) == errors.Is(err, registry.ErrForbidden) && !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("anonymous list of a private container: %v maps to no exit code", err)
	}
}
