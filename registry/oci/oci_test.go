package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/fetch"
	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/oci/ocitest"
)

func TestParseRef(t *testing.T) {
	for _, c := range []struct{ in, host, repo, tag, digest string }{
		{"oci://reg.corp/models/gpt-oss-20b:hf", "reg.corp", "models/gpt-oss-20b", "hf", ""},
		{"oci://127.0.0.1:5000/models", "127.0.0.1:5000", "models", "", ""},
		{"reg.corp:443/a/b/c@sha256:" + strings.Repeat("ab", 32), "reg.corp:443", "a/b/c", "", "sha256:" + strings.Repeat("ab", 32)},
		{"oci://[::1]:5000/x:v1.2", "[::1]:5000", "x", "v1.2", ""},
	} {
		r, err := ParseRef(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if r.Host != c.host || r.Repo != c.repo || r.Tag != c.tag || r.Digest != c.digest {
			t.Errorf("%s: %+v", c.in, r)
		}
	}
	for _, bad := range []string{"oci://", "oci://host", "oci://host/", "oci://host/Upper", "oci://host/x:bad tag", "oci://host/x@sha256:123", "oci://host/a//b"} {
		if _, err := ParseRef(bad); !errors.Is(err, registry.ErrInvalidRef) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	base, _ := ParseRef("oci://h/models")
	if got := base.WithModel("openai/gpt-oss-20b", "hf").String(); got != "oci://h/models/gpt-oss-20b:hf" {
		t.Errorf("WithModel %s", got)
	}
	same, _ := ParseRef("oci://h/models/gpt-oss-20b")
	if got := same.WithModel("openai/gpt-oss-20b", "").String(); got != "oci://h/models/gpt-oss-20b:"+DefaultTag {
		t.Errorf("WithModel on the model's own repo %s", got)
	}
	tagged, _ := ParseRef("oci://h/x:v1")
	if got := tagged.WithModel("openai/gpt-oss-20b", "hf").String(); got != "oci://h/x:v1" {
		t.Errorf("WithModel changed a tagged ref: %s", got)
	}
	for h, want := range map[string]bool{"localhost:5000": true, "127.0.0.1:1": true, "[::1]:80": true, "reg.corp": false, "10.0.0.1:5000": false} {
		if IsLoopback(h) != want {
			t.Errorf("IsLoopback(%s) != %v", h, want)
		}
	}
}

func TestParseChallenge(t *testing.T) {
	c, ok := parseChallenge(`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push"`)
	if !ok || c.scheme != "bearer" || c.params["realm"] != "https://auth.docker.io/token" || c.params["service"] != "registry.docker.io" || c.params["scope"] != "repository:a/b:pull,push" {
		t.Errorf("%+v", c)
	}
	if c, ok := parseChallenge(`Basic realm="x"`); !ok || c.scheme != "basic" {
		t.Errorf("%+v", c)
	}
	if _, ok := parseChallenge(`Negotiate`); ok {
		t.Error("Negotiate accepted")
	}
}

type blob struct {
	f    registry.File
	data []byte
}

func makeFiles(t *testing.T, sizes map[string]int) ([]blob, *registry.Manifest) {
	rng := rand.New(rand.NewSource(int64(len(sizes))))
	m := &registry.Manifest{Name: "openai/gpt-oss-20b", Revision: strings.Repeat("c", 40), Format: "hf", Source: "hf://openai/gpt-oss-20b"}
	var out []blob
	for p, n := range sizes {
		data := make([]byte, n)
		rng.Read(data)
		s := sha256.Sum256(data)
		f := registry.File{Path: p, Size: int64(n), SHA256: hex.EncodeToString(s[:])}
		out = append(out, blob{f, data})
		m.Files = append(m.Files, f)
	}
	m.SortFiles()
	return out, m
}

func push(t *testing.T, c *Client, blobs []blob, m *registry.Manifest) {
	t.Helper()
	ctx := context.Background()
	for _, b := range blobs {
		ok, err := c.Stat(ctx, b.f)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			continue
		}
		if err := c.Put(ctx, b.f, bytes.NewReader(b.data)); err != nil {
			t.Fatalf("put %s: %v", b.f.Path, err)
		}
	}
	if err := c.Commit(ctx, m); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, s registry.Source, f registry.File, off, n int64) []byte {
	t.Helper()
	rc, err := s.Open(context.Background(), f, off, n)
	if err != nil {
		t.Fatalf("open %s %d+%d: %v", f.Path, off, n, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", f.Path, err)
	}
	return b
}

var testSizes = map[string]int{"config.json": 300, "model-00001-of-00002.safetensors": 700 << 10, "model-00002-of-00002.safetensors": 300<<10 + 7, "empty.txt": 0}

func TestRoundTrip(t *testing.T) {
	reg := ocitest.Start(t, nil)
	blobs, m := makeFiles(t, testSizes)
	dst, err := New("oci://"+reg.Host+"/models/gpt-oss-20b:hf", Options{ChunkSize: 128 << 10})
	if err != nil {
		t.Fatal(err)
	}
	push(t, dst, blobs, m)
	for _, b := range blobs {
		if ok, err := dst.Stat(context.Background(), b.f); err != nil || !ok {
			t.Errorf("Stat %s after push: %v %v", b.f.Path, ok, err)
		}
	}

	src, err := New("oci://"+reg.Host+"/models/gpt-oss-20b:hf", Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := src.Resolve(context.Background(), registry.Ref{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != m.Name || got.Revision != m.Revision || got.Format != "hf" || len(got.Files) != len(m.Files) {
		t.Fatalf("resolved %+v", got)
	}
	if !strings.Contains(src.Describe(), "@sha256:") {
		t.Errorf("Describe %q", src.Describe())
	}
	for _, b := range blobs {
		f, ok := got.Lookup(b.f.Path)
		if !ok || f.SHA256 != b.f.SHA256 || f.Size != b.f.Size {
			t.Fatalf("%s: %+v", b.f.Path, f)
		}
		if !bytes.Equal(readAll(t, src, f, 0, -1), b.data) {
			t.Errorf("%s differs", f.Path)
		}
		if f.Size > 10 {
			if !bytes.Equal(readAll(t, src, f, 3, 5), b.data[3:8]) {
				t.Errorf("%s: range differs", f.Path)
			}
		}
	}
	// Through the transfer engine into a cache: parallel ranges, verified.
	store, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	eng := fetch.New(fetch.Options{Connections: 4, PartSize: 64 << 10})
	if err := eng.Fetch(context.Background(), src, got, store, nil); err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if !store.HasBlob(b.f.SHA256, b.f.Size) {
			t.Errorf("%s not in the cache", b.f.Path)
		}
	}
	// Pinning by digest gives the same artifact; a second commit is idempotent.
	byDigest, err := New(src.Describe(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m2, err := byDigest.Resolve(context.Background(), registry.Ref{}); err != nil || m2.Revision != m.Revision {
		t.Fatalf("by digest: %v", err)
	}
	if err := dst.Commit(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	// A catalog ref names the model; a commit the mirror does not hold is not found.
	ref, _ := registry.Parse("20b")
	if m3, err := src.Resolve(context.Background(), ref); err != nil || m3.Name != ref.Name() {
		t.Fatalf("catalog ref: %v", err)
	}
	ref.Revision = strings.Repeat("d", 40)
	if _, err := src.Resolve(context.Background(), ref); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("other commit: %v", err)
	}
	// A missing tag is not found.
	missing, _ := New("oci://"+reg.Host+"/models/gpt-oss-20b:nope", Options{})
	if _, err := missing.Resolve(context.Background(), registry.Ref{}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("missing tag: %v", err)
	}
}

// failingTransport fails the nth PATCH once: before it reaches the
// registry, or after (the response is lost).
type failingTransport struct {
	n       int32
	after   bool
	patches atomic.Int32
	failed  atomic.Int32
}

func (f *failingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPatch && f.patches.Add(1) == f.n {
		f.failed.Add(1)
		if !f.after {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, errors.New("injected: connection reset")
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		return nil, errors.New("injected: response lost")
	}
	return http.DefaultTransport.RoundTrip(req)
}

func TestChunkedUploadResumes(t *testing.T) {
	reg := ocitest.Start(t, nil)
	for _, after := range []bool{false, true} {
		tr := &failingTransport{n: 3, after: after}
		blobs, m := makeFiles(t, map[string]int{"model.safetensors": 1<<20 + 11})
		m.Files[0].Path = "model.safetensors"
		tag := "before"
		if after {
			tag = "after"
			// Different bytes, so the blob is not already there.
			blobs[0].data[0] ^= 1
			s := sha256.Sum256(blobs[0].data)
			blobs[0].f.SHA256 = hex.EncodeToString(s[:])
			m.Files[0] = blobs[0].f
		}
		dst, err := New("oci://"+reg.Host+"/resume:"+tag, Options{ChunkSize: 256 << 10, Client: &http.Client{Transport: tr}})
		if err != nil {
			t.Fatal(err)
		}
		push(t, dst, blobs, m)
		if tr.failed.Load() != 1 {
			t.Fatalf("after=%v: the injected failure did not happen (%d PATCHes)", after, tr.patches.Load())
		}
		src, _ := New("oci://"+reg.Host+"/resume:"+tag, Options{})
		got, err := src.Resolve(context.Background(), registry.Ref{})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(readAll(t, src, got.Files[0], 0, -1), blobs[0].data) {
			t.Errorf("after=%v: blob differs after a resumed upload", after)
		}
		t.Logf("after=%v: %d PATCHes", after, tr.patches.Load())
	}
}

// A registry that serves other bytes than the manifest's digest (corrupted
// storage here): fetch's digest check fails and nothing is published.
func TestLyingDigest(t *testing.T) {
	reg := ocitest.Start(t, nil)
	blobs, m := makeFiles(t, map[string]int{"config.json": 100, "model.safetensors": 200 << 10})
	dst, _ := New("oci://"+reg.Host+"/liar:hf", Options{})
	push(t, dst, blobs, m)
	var victim blob
	for _, b := range blobs {
		if b.f.Path == "model.safetensors" {
			victim = b
		}
	}
	p := filepath.Join(reg.Dir, "docker/registry/v2/blobs/sha256", victim.f.SHA256[:2], victim.f.SHA256, "data")
	bad := append([]byte(nil), victim.data...)
	bad[len(bad)/2] ^= 0xff
	if err := os.WriteFile(p, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	src, _ := New("oci://"+reg.Host+"/liar:hf", Options{})
	got, err := src.Resolve(context.Background(), registry.Ref{})
	if err != nil {
		t.Fatal(err)
	}
	store, _ := cache.Open(t.TempDir())
	eng := fetch.New(fetch.Options{Connections: 4, PartSize: 64 << 10, MaxAttempts: 2, Backoff: time.Millisecond})
	err = eng.Fetch(context.Background(), src, got, store, nil)
	if !errors.Is(err, registry.ErrDigestMismatch) {
		t.Fatalf("fetch of a lying blob: %v", err)
	}
	if store.HasBlob(victim.f.SHA256, victim.f.Size) {
		t.Error("a blob with the wrong digest was published")
	}
}

// pushRaw uploads config and manifest bytes as they are.
func pushRaw(t *testing.T, c *Client, manifest map[string]any, layers ...[]byte) {
	t.Helper()
	ctx := context.Background()
	for _, l := range layers {
		loc, err := c.startUpload(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.finishUpload(ctx, loc, registry.Digest(l), l); err != nil {
			t.Fatal(err)
		}
	}
	body, _ := json.Marshal(manifest)
	resp, err := c.do(ctx, request{op: "put", method: http.MethodPut, url: c.url("manifests", c.ref.Tag), push: true,
		header: http.Header{"Content-Type": {registry.MediaTypeOCIManifest}},
		body:   func() io.Reader { return bytes.NewReader(body) }, size: int64(len(body))})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("put manifest: %d %s", resp.StatusCode, b)
	}
}

func desc(mt string, b []byte, ann map[string]string) map[string]any {
	d := map[string]any{"mediaType": mt, "digest": registry.Digest(b), "size": len(b)}
	if ann != nil {
		d["annotations"] = ann
	}
	return d
}

func TestForeignArtifacts(t *testing.T) {
	reg := ocitest.Start(t, nil)
	cfg := []byte(`{}`)
	w := []byte("weights-bytes")
	tok := []byte(`{"tokenizer":1}`)
	cases := []struct {
		tag      string
		manifest map[string]any
		err      error
		want     []string
	}{
		{"kitops", map[string]any{"schemaVersion": 2, "mediaType": registry.MediaTypeOCIManifest, "artifactType": ArtifactTypeKitOps,
			"config": desc(MediaTypeKitOpsConfig, cfg, nil),
			"layers": []any{desc("application/vnd.kitops.modelkit.model.v1.raw", w, map[string]string{AnnotationTitle: "model.gguf"}),
				desc("application/vnd.kitops.modelkit.code.v1.raw", tok, map[string]string{AnnotationTitle: "tok/tokenizer.json"})}},
			nil, []string{"model.gguf", "tok/tokenizer.json"}},
		{"docker", map[string]any{"schemaVersion": 2, "mediaType": registry.MediaTypeOCIManifest, "artifactType": registry.ArtifactTypeModel,
			"config": desc(registry.MediaTypeModelConfig, cfg, nil),
			"layers": []any{desc("application/vnd.cncf.model.weight.v1.gguf", w, map[string]string{registry.AnnotationFilepath: "model.gguf"})}},
			nil, []string{"model.gguf"}},
		{"docker-v01", map[string]any{"schemaVersion": 2, "mediaType": registry.MediaTypeOCIManifest,
			"config": desc("application/vnd.docker.ai.model.config.v0.1+json", cfg, nil),
			"layers": []any{desc("application/vnd.docker.ai.gguf.v3", w, nil), desc("application/vnd.docker.ai.license", tok, nil)}},
			nil, []string{"model.gguf", "LICENSE"}},
		{"tar", map[string]any{"schemaVersion": 2, "mediaType": registry.MediaTypeOCIManifest, "artifactType": registry.ArtifactTypeModel,
			"config": desc(registry.MediaTypeModelConfig, cfg, nil),
			"layers": []any{desc("application/vnd.cncf.model.weight.v1.tar", w, map[string]string{registry.AnnotationFilepath: "weights"})}},
			registry.ErrUnsupported, nil},
		{"image", map[string]any{"schemaVersion": 2, "mediaType": registry.MediaTypeOCIManifest,
			"config": desc("application/vnd.oci.image.config.v1+json", cfg, nil),
			"layers": []any{desc("application/vnd.oci.image.layer.v1.tar+gzip", w, nil)}},
			registry.ErrUnsupported, nil},
		{"unknown", map[string]any{"schemaVersion": 2, "mediaType": registry.MediaTypeOCIManifest, "artifactType": "application/vnd.example.thing.v1",
			"config": desc("application/vnd.oci.empty.v1+json", cfg, nil),
			"layers": []any{desc("application/vnd.example.blob", w, nil)}},
			registry.ErrUnsupported, nil},
		{"escape", map[string]any{"schemaVersion": 2, "mediaType": registry.MediaTypeOCIManifest, "artifactType": registry.ArtifactTypeModel,
			"config": desc(registry.MediaTypeModelConfig, cfg, nil),
			"layers": []any{desc(registry.MediaTypeWeightRaw, w, map[string]string{registry.AnnotationFilepath: "../../etc/passwd"})}},
			registry.ErrInvalidManifest, nil},
	}
	for _, c := range cases {
		cl, _ := New("oci://"+reg.Host+"/foreign:"+c.tag, Options{})
		pushRaw(t, cl, c.manifest, cfg, w, tok)
		m, err := cl.Resolve(context.Background(), registry.Ref{})
		if c.err != nil {
			if !errors.Is(err, c.err) || !registry.IsPermanent(err) {
				t.Errorf("%s: %v, want %v", c.tag, err, c.err)
			} else {
				t.Logf("%s: %v", c.tag, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.tag, err)
		}
		var paths []string
		for _, f := range m.Files {
			paths = append(paths, f.Path)
		}
		if strings.Join(paths, ",") != strings.Join(c.want, ",") || m.Name != "foreign" || len(m.Revision) != 40 {
			t.Errorf("%s: %+v", c.tag, m)
		}
		if !bytes.Equal(readAll(t, cl, m.Files[0], 0, -1), w) {
			t.Errorf("%s: bytes differ", c.tag)
		}
	}
}

func TestAuth(t *testing.T) {
	for _, scheme := range []string{"basic", "bearer"} {
		t.Run(scheme, func(t *testing.T) {
			t.Setenv("DOCKER_CONFIG", t.TempDir())
			t.Setenv("GPTOSS_REGISTRY_USERNAME", "")
			t.Setenv("GPTOSS_REGISTRY_PASSWORD", "")
			reg := ocitest.Start(t, &ocitest.Auth{Scheme: scheme, Username: "alice", Password: "s3cret-pw"})
			blobs, m := makeFiles(t, map[string]int{"config.json": 50, "model.safetensors": 300 << 10})
			ref := "oci://" + reg.Host + "/private/gpt-oss-20b:hf"
			good, _ := New(ref, Options{Username: "alice", Password: "s3cret-pw", ChunkSize: 100 << 10})
			push(t, good, blobs, m)
			got, err := good.Resolve(context.Background(), registry.Ref{})
			if err != nil {
				t.Fatal(err)
			}
			f, _ := got.Lookup("model.safetensors")
			readAll(t, good, f, 10, 1000)

			for name, o := range map[string]Options{"wrong": {Username: "alice", Password: "nope"}, "none": {}} {
				bad, _ := New(ref, o)
				_, err := bad.Resolve(context.Background(), registry.Ref{})
				if !errors.Is(err, registry.ErrUnauthorized) || !registry.IsPermanent(err) {
					t.Errorf("%s credentials: %v", name, err)
				}
				if err != nil && strings.Contains(err.Error(), "nope") {
					t.Errorf("the password is in the error: %v", err)
				}
				if _, err := bad.Stat(context.Background(), f); !errors.Is(err, registry.ErrUnauthorized) {
					t.Errorf("%s credentials, Stat: %v", name, err)
				}
			}
			// Credentials from the Docker config file.
			dc := t.TempDir()
			t.Setenv("DOCKER_CONFIG", dc)
			cfg := `{"auths":{"` + reg.Host + `":{"auth":"YWxpY2U6czNjcmV0LXB3"}}}` // alice:s3cret-pw
			os.WriteFile(filepath.Join(dc, "config.json"), []byte(cfg), 0o600)
			fromDocker, _ := New(ref, Options{})
			if _, err := fromDocker.Resolve(context.Background(), registry.Ref{}); err != nil {
				t.Errorf("docker config credentials: %v", err)
			}
		})
	}
}

// Concurrent Opens share one token and one client.
func TestConcurrentOpen(t *testing.T) {
	reg := ocitest.Start(t, nil)
	blobs, m := makeFiles(t, map[string]int{"a.safetensors": 512 << 10})
	dst, _ := New("oci://"+reg.Host+"/conc:hf", Options{})
	push(t, dst, blobs, m)
	got, err := dst.Resolve(context.Background(), registry.Ref{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := int64(i) * 64 << 10
			rc, err := dst.Open(context.Background(), got.Files[0], off, 64<<10)
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(b, blobs[0].data[off:off+64<<10]) {
				t.Errorf("range %d differs", i)
			}
		}()
	}
	wg.Wait()
}

// Blobs redirected to another host (object storage) are fetched there
// without our credentials; the Range header goes along; a server that
// answers a full read with 200 is fine, a ranged read with 200 is not.
func TestRedirectDropsAuth(t *testing.T) {
	data := []byte("0123456789abcdefghij")
	sum := sha256.Sum256(data)
	f := registry.File{Path: "w.safetensors", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	var storageAuth atomic.Int32
	ignoreRange := atomic.Bool{}
	storage := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			storageAuth.Add(1)
		}
		rg := r.Header.Get("Range")
		if rg == "" || ignoreRange.Load() {
			w.Write(data)
			return
		}
		var a, b int
		if _, err := fmtSscanf(rg, "bytes=%d-%d", &a, &b); err != nil {
			w.WriteHeader(400)
			return
		}
		w.Header().Set("Content-Range", "bytes "+itoa(a)+"-"+itoa(b)+"/"+itoa(len(data)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(data[a : b+1])
	})
	reg := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
			w.Header().Set("WWW-Authenticate", `Basic realm="r"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, storage+"/blob?sig=secret", http.StatusTemporaryRedirect)
	})
	c, err := New("oci://"+strings.TrimPrefix(reg, "http://")+"/m:v1", Options{Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c, f, 0, -1); !bytes.Equal(got, data) {
		t.Errorf("full read %q", got)
	}
	if got := readAll(t, c, f, 5, 4); string(got) != "5678" {
		t.Errorf("ranged read %q", got)
	}
	if storageAuth.Load() != 0 {
		t.Error("credentials were sent to the storage host")
	}
	ignoreRange.Store(true)
	if _, err := c.Open(context.Background(), f, 5, 4); err == nil || registry.IsPermanent(err) {
		t.Errorf("a 200 to a ranged read: %v", err)
	}
	short := f
	short.Size = 30
	if _, err := c.Open(context.Background(), short, 0, -1); !errors.Is(err, registry.ErrSizeMismatch) {
		t.Errorf("wrong size: %v", err)
	}
}
