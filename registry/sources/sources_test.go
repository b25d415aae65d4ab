package sources

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gptoss/gptoss/internal/hubtest"
	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/hf"
	"github.com/gptoss/gptoss/registry/local"
	"github.com/gptoss/gptoss/registry/objstore"
	"github.com/gptoss/gptoss/registry/oci"
)

// clearEnv isolates a test from the caller's Hugging Face and gptoss
// settings (and from a real token file).
func clearEnv(t *testing.T) {
	for _, k := range []string{"GPTOSS_MIRROR", "GPTOSS_OFFLINE", "HF_HUB_OFFLINE", "HF_ENDPOINT",
		"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HOME", "XDG_CACHE_HOME"} {
		t.Setenv(k, "")
	}
	t.Setenv("HOME", t.TempDir())
}

func parse(t *testing.T, s string) registry.Ref {
	t.Helper()
	r, err := registry.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func modelDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type":"gpt_oss"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func describe(s registry.Source) string {
	if d, ok := s.(registry.Describer); ok {
		return d.Describe()
	}
	return ""
}

func TestForPicksBackend(t *testing.T) {
	clearEnv(t)
	dir := modelDir(t)
	cases := []struct {
		name, ref, from, mirror string
		local                   bool   // want a local source (else hf)
		describes               string // Describe contains
	}{
		{"catalog alias", "20b", "", "", false, ""},
		{"catalog name pinned", "gpt-oss-120b@abc1234", "", "", false, ""},
		{"any hub repo", "org/repo", "", "", false, ""},
		{"hf scheme", "hf://org/repo@v2", "", "", false, ""},
		{"directory", dir, "", "", true, dir},
		{"file scheme", "file://" + dir, "", "", true, dir},
		{"--from DIR", "20b", dir, "", true, dir},
		{"--from file://DIR", "20b", "file://" + dir, "", true, dir},
		{"--from a hub mirror", "20b", "http://mirror.internal:8080", "", false, "via http://mirror.internal:8080"},
		{"--from hf://host", "org/repo", "hf://mirror.example", "", false, "via https://mirror.example"},
		{"--from beats GPTOSS_MIRROR", "20b", dir, "s3://bucket/models", true, dir},
		{"GPTOSS_MIRROR dir for a catalog ref", "20b", "", dir, true, dir},
		{"GPTOSS_MIRROR hub for a catalog ref", "120b", "", "https://hub.corp/", false, "via https://hub.corp"},
		{"GPTOSS_MIRROR not for other repos", "org/repo", "", dir, false, ""},
		{"GPTOSS_MIRROR not for directories", dir, "", "s3://bucket", true, dir},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("GPTOSS_MIRROR", c.mirror)
			ref := parse(t, c.ref)
			src, got, err := For(ref, c.from, Options{})
			if err != nil {
				t.Fatal(err)
			}
			switch s := src.(type) {
			case *local.Source:
				if !c.local {
					t.Fatalf("got a local source for %s", c.ref)
				}
				if got.Scheme != registry.SchemeLocal {
					t.Errorf("ref scheme %q", got.Scheme)
				}
				if s.Dir != dir {
					t.Errorf("dir %q", s.Dir)
				}
			case *hf.Source:
				if c.local {
					t.Fatalf("got a Hub source for %s", c.ref)
				}
				if got.Scheme != registry.SchemeHF || got.Repo != ref.Repo || got.Revision != ref.Revision {
					t.Errorf("ref changed: %+v", got)
				}
				if c.describes == "" && strings.Contains(describe(src), " via ") {
					t.Errorf("default Hub described as a mirror: %q", describe(src))
				}
			default:
				t.Fatalf("source %T", src)
			}
			if !strings.Contains(describe(src), c.describes) {
				t.Errorf("Describe %q lacks %q", describe(src), c.describes)
			}
			if got.Model != ref.Model || got.Name() != ref.Name() {
				t.Errorf("the model name changed: %q → %q", ref.Name(), got.Name())
			}
		})
	}
}

func TestForObjectStore(t *testing.T) {
	clearEnv(t)
	// A local endpoint: nothing is asked of AWS (no region discovery).
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, c := range []struct{ from, mirror, want string }{
		{"s3://models/gpt-oss-20b", "", "s3://models/gpt-oss-20b"},
		{"", "s3://models/corp/gpt-oss-20b/", "s3://models/corp/gpt-oss-20b"},
	} {
		t.Setenv("GPTOSS_MIRROR", c.mirror)
		src, ref, err := For(parse(t, "20b"), c.from, Options{})
		if err != nil {
			t.Fatalf("%q/%q: %v", c.from, c.mirror, err)
		}
		if _, ok := src.(*objstore.Source); !ok || describe(src) != c.want || ref.Name() != "openai/gpt-oss-20b" {
			t.Errorf("%q/%q: %T %q %q", c.from, c.mirror, src, describe(src), ref.Name())
		}
	}
	for _, bad := range []string{"s3://x", "s3://models/../etc"} {
		if _, _, err := For(parse(t, "20b"), bad, Options{}); !errors.Is(err, registry.ErrInvalidRef) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestForUnsupported(t *testing.T) {
	clearEnv(t)
	for _, c := range []struct{ ref, from, mirror string }{
		{"20b", "gs://bucket/gpt-oss-20b", ""},
		{"20b", "", "gs://bucket/models"},
		{"120b", "", "r2://container/x"},
	} {
		t.Setenv("GPTOSS_MIRROR", c.mirror)
		_, _, err := For(parse(t, c.ref), c.from, Options{})
		if !errors.Is(err, registry.ErrUnsupported) {
			t.Errorf("%s from %q mirror %q: %v", c.ref, c.from, c.mirror, err)
		}
	}
	t.Setenv("GPTOSS_MIRROR", "")
	if _, _, err := For(registry.Ref{Scheme: "s3", Repo: "bucket/x"}, "", Options{}); !errors.Is(err, registry.ErrUnsupported) {
		t.Errorf("ref scheme s3: %v", err)
	}
	// A directory that is not there, or is a file.
	missing := filepath.Join(t.TempDir(), "missing")
	if _, _, err := For(parse(t, "20b"), missing, Options{}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("--from a missing dir: %v", err)
	}
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, []byte("x"), 0o644)
	if _, _, err := For(parse(t, "20b"), file, Options{}); !errors.Is(err, registry.ErrInvalidRef) {
		t.Errorf("--from a file: %v", err)
	}
	if _, _, err := For(parse(t, "20b"), "hf://", Options{}); err == nil {
		t.Error("--from hf:// with no host accepted")
	}
}

// recorder is a transport that notes the requests it carries.
type recorder struct {
	mu  sync.Mutex
	uas []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.uas = append(r.uas, req.Header.Get("User-Agent"))
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.uas...)
}

// The Hub source built by For talks to the endpoint it was given (options,
// HF_ENDPOINT or GPTOSS_MIRROR) through the shared client, with the
// caller's user agent and token.
func TestForHubOptions(t *testing.T) {
	clearEnv(t)
	srv := hubtest.New(hubtest.Options{Tokens: []string{"hf_env", "hf_opt"}})
	defer srv.Close()
	repo, err := srv.AddRepo("openai/gpt-oss-20b", modelDir(t), hubtest.Private())
	if err != nil {
		t.Fatal(err)
	}
	resolve := func(name string, from string, o Options) *recorder {
		t.Helper()
		rec := &recorder{}
		o.Client = &http.Client{Transport: rec}
		src, ref, err := For(parse(t, "20b"), from, o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m, err := src.Resolve(context.Background(), ref)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m.Revision != repo.Commit || len(rec.seen()) == 0 {
			t.Errorf("%s: revision %s, %d requests through the shared client", name, m.Revision, len(rec.seen()))
		}
		return rec
	}
	rec := resolve("explicit options", "", Options{HF: hf.Options{Endpoint: srv.URL, Token: "hf_opt", UserAgent: "ua-test/1"}})
	if ua := rec.seen()[0]; ua != "ua-test/1" {
		t.Errorf("user agent %q", ua)
	}
	// Endpoint and token from the environment; the user agent survives.
	t.Setenv("HF_ENDPOINT", srv.URL+"/")
	t.Setenv("HF_TOKEN", "hf_env")
	rec = resolve("environment", "", Options{HF: hf.Options{UserAgent: "ua-env/2"}})
	if ua := rec.seen()[0]; ua != "ua-env/2" {
		t.Errorf("user agent from Options dropped with the environment's endpoint: %q", ua)
	}
	// GPTOSS_MIRROR points catalog models at another Hub.
	t.Setenv("HF_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("GPTOSS_MIRROR", srv.URL)
	resolve("mirror", "", Options{})
	// --from a Hub URL.
	t.Setenv("GPTOSS_MIRROR", "")
	resolve("--from", srv.URL, Options{})
}

func TestOffline(t *testing.T) {
	clearEnv(t)
	if Offline() {
		t.Fatal("offline with a clean environment")
	}
	for _, v := range []string{"1", "on", "ON", "yes", "Yes", "true", "TRUE"} {
		for _, k := range []string{"GPTOSS_OFFLINE", "HF_HUB_OFFLINE"} {
			clearEnv(t)
			t.Setenv(k, v)
			if !Offline() {
				t.Errorf("%s=%s: not offline", k, v)
			}
		}
	}
	for _, v := range []string{"", "0", "off", "no", "false", "maybe", "2"} {
		clearEnv(t)
		t.Setenv("GPTOSS_OFFLINE", v)
		t.Setenv("HF_HUB_OFFLINE", v)
		if Offline() {
			t.Errorf("%q: offline", v)
		}
	}
	clearEnv(t)
	t.Setenv("GPTOSS_OFFLINE", "0")
	t.Setenv("HF_HUB_OFFLINE", "1")
	if !Offline() {
		t.Error("HF_HUB_OFFLINE=1 ignored when GPTOSS_OFFLINE=0")
	}
	t.Setenv("GPTOSS_MIRROR", "/srv/models")
	if Mirror() != "/srv/models" {
		t.Errorf("Mirror %q", Mirror())
	}
}

// oci:// in --from and GPTOSS_MIRROR: a namespace gets the model's base
// name and its format as the tag; a tagged reference is used as it is.
func TestForOCI(t *testing.T) {
	clearEnv(t)
	t.Setenv("GPTOSS_PLAIN_HTTP", "")
	cases := []struct{ ref, from, mirror, want string }{
		{"20b", "oci://reg.corp/models", "", "oci://reg.corp/models/gpt-oss-20b:hf"},
		{"120b", "", "oci://reg.corp:5000/models", "oci://reg.corp:5000/models/gpt-oss-120b:hf"},
		{"20b", "oci://reg.corp/models/gpt-oss-20b", "", "oci://reg.corp/models/gpt-oss-20b:hf"},
		{"20b", "oci://reg.corp/x/y:v1", "oci://ignored/z", "oci://reg.corp/x/y:v1"},
		{"org/repo", "oci://reg.corp/ns", "", "oci://reg.corp/ns/repo:custom"},
	}
	for _, c := range cases {
		t.Setenv("GPTOSS_MIRROR", c.mirror)
		ref := parse(t, c.ref)
		src, got, err := For(ref, c.from, Options{})
		if err != nil {
			t.Fatalf("%s from %q: %v", c.ref, c.from, err)
		}
		cl, ok := src.(*oci.Client)
		if !ok {
			t.Fatalf("%s from %q: source %T", c.ref, c.from, src)
		}
		if cl.Ref().String() != c.want {
			t.Errorf("%s from %q mirror %q: %s, want %s", c.ref, c.from, c.mirror, cl.Ref(), c.want)
		}
		if got.Name() != ref.Name() {
			t.Errorf("the model name changed: %s", got.Name())
		}
	}
	ref := parse(t, "20b")
	ref.Format = "original"
	src, _, err := For(ref, "oci://reg.corp/models", Options{})
	if err != nil || src.(*oci.Client).Ref().Tag != "original" {
		t.Errorf("--format original: %v", err)
	}
	if _, _, err := For(parse(t, "20b"), "oci://reg.corp", Options{}); !errors.Is(err, registry.ErrInvalidRef) {
		t.Errorf("oci:// without a repository: %v", err)
	}
	// Plain HTTP: by GPTOSS_PLAIN_HTTP, and always for loopback.
	for _, c := range []struct {
		host, env string
		plain     bool
	}{{"reg.corp", "", false}, {"reg.corp", "1", true}, {"127.0.0.1:5000", "", true}, {"localhost:5000", "", true}} {
		t.Setenv("GPTOSS_PLAIN_HTTP", c.env)
		src, _, err := For(parse(t, "20b"), "oci://"+c.host+"/m", Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.HasPrefix(describeURL(src.(*oci.Client)), "http://"); got != c.plain {
			t.Errorf("%s GPTOSS_PLAIN_HTTP=%q: plain %v", c.host, c.env, got)
		}
	}
}

func describeURL(c *oci.Client) string { return c.BaseURL() }
