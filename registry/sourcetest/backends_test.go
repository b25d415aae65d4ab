package sourcetest_test

// The conformance suite against every backend, each a real instance on
// loopback: a directory, the Hugging Face test hub, a docker-registry, an
// OCI layout directory, the Databricks test server, versitygw (S3) and
// Azurite (Azure Blob). The servers that are separate programs skip when
// missing and fail under CI=true (their helpers decide).

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gptoss/gptoss/internal/azuritetest"
	"github.com/gptoss/gptoss/internal/dbxtest"
	"github.com/gptoss/gptoss/internal/hubtest"
	"github.com/gptoss/gptoss/internal/s3test"
	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/azure"
	"github.com/gptoss/gptoss/registry/databricks"
	"github.com/gptoss/gptoss/registry/hf"
	"github.com/gptoss/gptoss/registry/local"
	"github.com/gptoss/gptoss/registry/objstore"
	"github.com/gptoss/gptoss/registry/oci"
	"github.com/gptoss/gptoss/registry/oci/ocitest"
	"github.com/gptoss/gptoss/registry/ocilayout"
	"github.com/gptoss/gptoss/registry/s3"
	"github.com/gptoss/gptoss/registry/sourcetest"
)

func writeDir(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for p, b := range files {
		fp := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fp, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// pacer is a reverse proxy in front of an HTTP server whose response
// bodies can be slowed down (Backend.Pace), for servers that cannot pace
// themselves (docker-registry).
func pacer(t *testing.T, target string) (string, func(int64)) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	var rate atomic.Int64
	p := httputil.NewSingleHostReverseProxy(u)
	p.FlushInterval = -1
	p.ModifyResponse = func(r *http.Response) error {
		if bps := rate.Load(); bps > 0 {
			r.Body = &pacedBody{r.Body, bps, time.Now(), 0, r.Request.Context()}
		}
		return nil
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL, rate.Store
}

type pacedBody struct {
	io.ReadCloser
	bps   int64
	start time.Time
	sent  int64
	ctx   context.Context
}

func (p *pacedBody) Read(b []byte) (int, error) {
	due := p.start.Add(time.Duration(float64(p.sent) / float64(p.bps) * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		select {
		case <-time.After(d):
		case <-p.ctx.Done():
			return 0, p.ctx.Err()
		}
	}
	n, err := p.ReadCloser.Read(b[:min(len(b), 16<<10)])
	p.sent += int64(n)
	return n, err
}

// manifestOf describes the fixture as a snapshot of name.
func manifestOf(t *testing.T, name string, files map[string][]byte) *registry.Manifest {
	t.Helper()
	m := &registry.Manifest{Name: name, Revision: strings.Repeat("5e", 20), Format: "custom", Source: "sourcetest"}
	for p, b := range files {
		m.Files = append(m.Files, registry.File{Path: p, Size: int64(len(b)), SHA256: strings.TrimPrefix(registry.Digest(b), "sha256:"), Role: registry.RoleOf(p)})
	}
	m.SortFiles()
	return m
}

// push uploads the fixture through a Target, as `gptoss mirror` does.
func push(t *testing.T, tg registry.Target, m *registry.Manifest, files map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	for _, f := range m.Files {
		if err := tg.Put(ctx, f, bytes.NewReader(files[f.Path])); err != nil {
			t.Fatalf("put %s: %v", f.Path, err)
		}
	}
	if err := tg.Commit(ctx, m); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func TestLocal(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T, files map[string][]byte) sourcetest.Backend {
		dir := writeDir(t, files)
		s, err := local.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		return sourcetest.Backend{
			Source: s,
			Ref:    registry.Ref{Scheme: registry.SchemeLocal, Repo: dir},
			MissingModel: func(ctx context.Context) error {
				s, err := local.New(filepath.Join(dir, "no-such-model"))
				if err != nil {
					return err
				}
				_, err = s.Resolve(ctx, registry.Ref{Scheme: registry.SchemeLocal, Repo: filepath.Join(dir, "no-such-model")})
				return err
			},
			DeniedNA:   "a directory: access is the operating system's file permissions, which root (the test runner) bypasses",
			LocalReads: true,
		}
	})
}

func TestHuggingFace(t *testing.T) {
	const token, other = "hf_sourcetest_token", "hf_other_token"
	sourcetest.Run(t, func(t *testing.T, files map[string][]byte) sourcetest.Backend {
		hub := hubtest.New(hubtest.Options{Tokens: []string{token, other}})
		t.Cleanup(hub.Close)
		dir := writeDir(t, files)
		if _, err := hub.AddRepo("sourcetest/model", dir); err != nil {
			t.Fatal(err)
		}
		// Gated: accepted by other, not by token.
		if _, err := hub.AddRepo("sourcetest/gated", dir, hubtest.Gated(other)); err != nil {
			t.Fatal(err)
		}
		s, err := hf.New(hf.Options{Endpoint: hub.URL, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		return sourcetest.Backend{
			Source:  s,
			Ref:     registry.Ref{Scheme: registry.SchemeHF, Repo: "sourcetest/model"},
			Digests: true,
			MissingModel: func(ctx context.Context) error {
				_, err := s.Resolve(ctx, registry.Ref{Scheme: registry.SchemeHF, Repo: "sourcetest/missing"})
				return err
			},
			Denied: func(ctx context.Context) error {
				// A gated repository the token has not accepted: the
				// listing is public, the bytes are refused.
				g, err := hf.New(hf.Options{Endpoint: hub.URL, Token: token})
				if err != nil {
					return err
				}
				m, err := g.Resolve(ctx, registry.Ref{Scheme: registry.SchemeHF, Repo: "sourcetest/gated"})
				if err != nil {
					return err
				}
				rc, err := g.Open(ctx, m.Files[0], 0, -1)
				if err == nil {
					rc.Close()
				}
				return err
			},
			Secrets: []string{token, other},
			Pace:    hub.SetRate,
		}
	})
}

func TestOCIRegistry(t *testing.T) {
	const user, pass = "ci", "oci-secret-password"
	sourcetest.Run(t, func(t *testing.T, files map[string][]byte) sourcetest.Backend {
		reg := ocitest.Start(t, &ocitest.Auth{Scheme: "bearer", Username: user, Password: pass})
		front, pace := pacer(t, reg.URL)
		reg.Host = strings.TrimPrefix(front, "http://")
		opts := oci.Options{Username: user, Password: pass}
		c, err := oci.New("oci://"+reg.Host+"/sourcetest/model:v1", opts)
		if err != nil {
			t.Fatal(err)
		}
		push(t, c, manifestOf(t, "sourcetest/model", files), files)
		return sourcetest.Backend{
			Source:  c,
			Ref:     registry.Ref{Scheme: "oci", Repo: "sourcetest/model"},
			Digests: true,
			MissingModel: func(ctx context.Context) error {
				m, err := oci.New("oci://"+reg.Host+"/sourcetest/missing:v1", opts)
				if err != nil {
					return err
				}
				_, err = m.Resolve(ctx, registry.Ref{Scheme: "oci", Repo: "sourcetest/missing"})
				return err
			},
			Denied: func(ctx context.Context) error {
				w, err := oci.New("oci://"+reg.Host+"/sourcetest/model:v1", oci.Options{Username: user, Password: "wrong-password"})
				if err != nil {
					return err
				}
				_, err = w.Resolve(ctx, registry.Ref{Scheme: "oci", Repo: "sourcetest/model"})
				return err
			},
			Secrets: []string{pass},
			Pace:    pace,
		}
	})
}

func TestOCILayout(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T, files map[string][]byte) sourcetest.Backend {
		dir := filepath.Join(t.TempDir(), "layout")
		tg, err := ocilayout.NewTarget(dir)
		if err != nil {
			t.Fatal(err)
		}
		push(t, tg, manifestOf(t, "sourcetest/model", files), files)
		s, err := ocilayout.NewSource(dir)
		if err != nil {
			t.Fatal(err)
		}
		ref := registry.Ref{Scheme: "oci-layout", Repo: "sourcetest/model"}
		return sourcetest.Backend{
			Source:  s,
			Ref:     ref,
			Digests: true,
			MissingModel: func(ctx context.Context) error {
				_, err := s.Resolve(ctx, registry.Ref{Scheme: "oci-layout", Repo: "sourcetest/missing"})
				return err
			},
			DeniedNA:   "an OCI layout on this machine's disk: access is the operating system's file permissions, which root bypasses",
			LocalReads: true,
		}
	})
}

func TestDatabricks(t *testing.T) {
	const rw, ro = "dapi-sourcetest-rw", "dapi-sourcetest-ro"
	sourcetest.Run(t, func(t *testing.T, files map[string][]byte) sourcetest.Backend {
		srv := dbxtest.Start(t, dbxtest.Options{Tokens: []string{rw}, ReadOnlyTokens: []string{ro}, PageSize: 2, MinPart: 64 << 10})
		srv.AddVolume("main", "ml", "models")
		srv.AddVolume("main", "ml", "secret")
		// Mirror with multipart parts of 64 KiB, so the big file goes up in parts.
		o := databricks.Options{Host: srv.URL, Token: rw, PartSize: 64 << 10}
		tg, err := databricks.NewTarget("dbfs:/Volumes/main/ml/models/sourcetest", o)
		if err != nil {
			t.Fatal(err)
		}
		push(t, tg, manifestOf(t, "sourcetest/model", files), files)
		tg2, err := databricks.NewTarget("dbfs:/Volumes/main/ml/secret/sourcetest", o)
		if err != nil {
			t.Fatal(err)
		}
		push(t, tg2, manifestOf(t, "sourcetest/model", files), files)
		srv.DenyRead("main", "ml", "secret")
		// Read with the read-only token, through a pacing proxy.
		front, pace := pacer(t, srv.URL)
		ro := databricks.Options{Host: front, Token: ro}
		s, err := databricks.NewSource("dbfs:/Volumes/main/ml/models/sourcetest", ro, objstore.SourceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		resolveAt := func(ctx context.Context, loc string) error {
			s, err := databricks.NewSource(loc, databricks.Options{Host: srv.URL, Token: rw}, objstore.SourceOptions{})
			if err != nil {
				return err
			}
			_, err = s.Resolve(ctx, registry.Ref{Scheme: "dbfs", Repo: "sourcetest/model"})
			return err
		}
		return sourcetest.Backend{
			Source:  s,
			Ref:     registry.Ref{Scheme: "dbfs", Repo: "sourcetest/model"},
			Digests: true,
			MissingModel: func(ctx context.Context) error {
				return resolveAt(ctx, "dbfs:/Volumes/main/ml/models/no-such-model")
			},
			Denied: func(ctx context.Context) error {
				return resolveAt(ctx, "dbfs:/Volumes/main/ml/secret/sourcetest")
			},
			Secrets: []string{rw, "dapi-sourcetest-ro"},
			Pace:    pace,
		}
	})
}

func TestS3(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T, files map[string][]byte) sourcetest.Backend {
		srv := s3test.Start(t)
		srv.MakeBucket(t, "models")
		px := srv.Proxy(t)
		ctx := context.Background()
		o := s3.Options{Endpoint: px.URL, Region: s3test.Region}
		// Another user, who has no access to the admin's bucket (the SDK
		// takes the environment's credentials when the bucket is made).
		srv.Setenv(t, srv.EnvAs(s3test.OtherAccess, s3test.OtherSecret))
		other, err := s3.New(ctx, "models", o)
		if err != nil {
			t.Fatal(err)
		}
		srv.Setenv(t, srv.Env())
		b, err := s3.New(ctx, "models", o)
		if err != nil {
			t.Fatal(err)
		}
		tg, err := objstore.NewTarget(b, "sourcetest")
		if err != nil {
			t.Fatal(err)
		}
		push(t, tg, manifestOf(t, "sourcetest/model", files), files)
		src, err := objstore.NewSource(b, "sourcetest", objstore.SourceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ref := registry.Ref{Scheme: "s3", Repo: "sourcetest/model"}
		return sourcetest.Backend{
			Source:  src,
			Ref:     ref,
			Digests: true,
			MissingModel: func(ctx context.Context) error {
				m, err := objstore.NewSource(b, "no-such-model", objstore.SourceOptions{})
				if err != nil {
					return err
				}
				_, err = m.Resolve(ctx, ref)
				return err
			},
			Denied: func(ctx context.Context) error {
				d, err := objstore.NewSource(other, "sourcetest", objstore.SourceOptions{})
				if err != nil {
					return err
				}
				_, err = d.Resolve(ctx, ref)
				return err
			},
			Secrets: []string{s3test.Secret, s3test.OtherSecret},
			Pace:    func(bps int64) { px.SetRate(int(bps)) },
		}
	})
}

func TestAzure(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T, files map[string][]byte) sourcetest.Backend {
		srv := azuritetest.Start(t)
		srv.CreateContainer(t, "models")
		px := srv.Proxy(t)
		env := func(kv map[string]string) func(string) string {
			return func(k string) string { return kv[k] }
		}
		const loc = "az://" + azuritetest.Account + "/models/sourcetest"
		open := func(prefixLoc string, getenv func(string) string) (*objstore.Source, error) {
			b, prefix, err := azure.Open(prefixLoc, azure.Options{Endpoint: px.Endpoint, Getenv: getenv})
			if err != nil {
				return nil, err
			}
			return objstore.NewSource(b, prefix, objstore.SourceOptions{})
		}
		withKey := env(map[string]string{azure.EnvKey: azuritetest.Key})
		b, prefix, err := azure.Open(loc, azure.Options{Endpoint: px.Endpoint, Getenv: withKey})
		if err != nil {
			t.Fatal(err)
		}
		tg, err := objstore.NewTarget(b, prefix)
		if err != nil {
			t.Fatal(err)
		}
		push(t, tg, manifestOf(t, "sourcetest/model", files), files)
		src, err := open(loc, withKey)
		if err != nil {
			t.Fatal(err)
		}
		ref := registry.Ref{Scheme: "az", Repo: "sourcetest/model"}
		writeOnly := srv.SAS(t, "models", "w")
		return sourcetest.Backend{
			Source:  src,
			Ref:     ref,
			Digests: true,
			MissingModel: func(ctx context.Context) error {
				m, err := open("az://"+azuritetest.Account+"/models/no-such-model", withKey)
				if err != nil {
					return err
				}
				_, err = m.Resolve(ctx, ref)
				return err
			},
			Denied: func(ctx context.Context) error {
				// A SAS that may write but not list or read.
				d, err := open(loc, env(map[string]string{azure.EnvSASToken: writeOnly}))
				if err != nil {
					return err
				}
				_, err = d.Resolve(ctx, ref)
				return err
			},
			Secrets: []string{azuritetest.Key, sasSig(writeOnly)},
			Pace:    px.SetRate,
		}
	})
}

func sasSig(sas string) string {
	_, sig, _ := strings.Cut(sas, "sig=")
	sig, _, _ = strings.Cut(sig, "&")
	if u, err := url.QueryUnescape(sig); err == nil {
		return u
	}
	return sig
}
