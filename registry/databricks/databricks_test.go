package databricks

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/internal/dbxtest"
	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/objstore"
)

const (
	rwToken = "dapi0123456789abcdef-rw"
	roToken = "dapi0123456789abcdef-ro"
)

func TestParseLocation(t *testing.T) {
	for in, want := range map[string]string{
		"dbfs:/Volumes/main/models/v":              "/Volumes/main/models/v|",
		"dbfs:/Volumes/main/models/v/gpt-oss-20b/": "/Volumes/main/models/v|gpt-oss-20b",
		"dbfs:///Volumes/c/s/v/a/b":                "/Volumes/c/s/v|a/b",
		"dbfs:/Volumes/c/s/v/with space/x.json":    "/Volumes/c/s/v|with space/x.json",
	} {
		l, err := ParseLocation(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := l.VolumePath() + "|" + l.Path; got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
	for _, bad := range []string{"dbfs:/mnt/x", "dbfs:/Volumes/c/s", "dbfs:/Volumes/c/../v/x", "dbfs:/Volumes/c/s/v/a/../b", "s3://b/k"} {
		if _, err := ParseLocation(bad); !errors.Is(err, registry.ErrInvalidRef) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestOptionsFromEnvAndHost(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "cfg")
	os.WriteFile(cfg, []byte("[DEFAULT]\nhost = https://adb-1.azuredatabricks.net\ntoken = dapiDEFAULT\n\n[ci]\nhost=https://ci.example\ntoken = dapiCI\n"), 0o600)
	t.Setenv("DATABRICKS_CONFIG_FILE", cfg)
	t.Setenv("DATABRICKS_HOST", "")
	t.Setenv("DATABRICKS_TOKEN", "")
	t.Setenv("DATABRICKS_CONFIG_PROFILE", "")
	o, err := OptionsFromEnv()
	if err != nil || o.Host != "https://adb-1.azuredatabricks.net" || o.Token != "dapiDEFAULT" {
		t.Errorf("default profile: %+v %v", o, err)
	}
	t.Setenv("DATABRICKS_CONFIG_PROFILE", "ci")
	t.Setenv("DATABRICKS_TOKEN", "dapiENV")
	if o, _ = OptionsFromEnv(); o.Host != "https://ci.example" || o.Token != "dapiENV" {
		t.Errorf("profile ci + env token: %+v", o)
	}
	t.Setenv("DATABRICKS_CONFIG_PROFILE", "nope")
	if _, err := OptionsFromEnv(); err == nil {
		t.Error("a missing named profile is not an error")
	}
	for h, ok := range map[string]bool{"adb-1.azuredatabricks.net": true, "http://127.0.0.1:9": true, "http://example.com": false, "": false, "https://u:p@h": false} {
		if _, err := baseURL(h); (err == nil) != ok {
			t.Errorf("host %q: %v", h, err)
		}
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func newVolume(t *testing.T, s *dbxtest.Server, token string, partSize int64) *Volume {
	t.Helper()
	v, err := NewVolume(Location{Catalog: "main", Schema: "ml", Volume: "models"}, Options{Host: s.URL, Token: token, PartSize: partSize})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestMirrorAndPullThroughObjstore writes a snapshot with objstore.Target
// (small files in one PUT, a large one in parallel multipart parts) and
// reads it back with objstore.Source, listing two entries per page.
func TestMirrorAndPullThroughObjstore(t *testing.T) {
	s := dbxtest.Start(t, dbxtest.Options{Tokens: []string{rwToken}, PageSize: 2, MinPart: 1000})
	s.AddVolume("main", "ml", "models")
	v := newVolume(t, s, rwToken, 1000)
	files := map[string][]byte{
		"config.json":                      []byte(`{"a":1}`),
		"original/model.safetensors":       randBytes(4321), // 5 parts
		"original/config.json":             []byte(`{}`),
		"tokenizer.json":                   randBytes(999),
		"empty.txt":                        {},
		"deep/er/still/x.bin":              randBytes(10),
		"model-00001-of-00002.safetensors": randBytes(1000), // exactly one part
	}
	m := &registry.Manifest{Name: "openai/gpt-oss-20b", Revision: strings.Repeat("ab", 20), Format: "hf", Source: "test"}
	for p, b := range files {
		m.Files = append(m.Files, registry.File{Path: p, Size: int64(len(b)), SHA256: sha(b)})
	}
	m.SortFiles()
	tg, err := objstore.NewTarget(v, "snap/gpt-oss-20b")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := tg.Prepare(ctx, m); err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		if ok, err := tg.Stat(ctx, f); ok || err != nil {
			t.Fatalf("stat before upload: %v %v", ok, err)
		}
		if err := tg.Put(ctx, f, bytes.NewReader(files[f.Path])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tg.Commit(ctx, m); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	// Two model files (and the manifest, over 1000 bytes) went up in parts.
	if st.Requests[dbxtest.EndpointPartPut] < 5+1 || st.Requests[dbxtest.EndpointComplete] != st.Requests[dbxtest.EndpointInitiate] ||
		st.Requests[dbxtest.EndpointInitiate] < 2 || st.PutBytes["/Volumes/main/ml/models/snap/gpt-oss-20b/original/model.safetensors"] != 4321 {
		t.Errorf("multipart requests: %v", st.Requests)
	}
	// Every file lands byte-identical where aws-style tools would look.
	for p, b := range files {
		got, err := os.ReadFile(filepath.Join(s.Dir, "main", "ml", "models", "snap", "gpt-oss-20b", filepath.FromSlash(p)))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s on the volume: %v", p, err)
		}
	}
	// Stat skips what is there (size + manifest digest).
	tg2, _ := objstore.NewTarget(v, "snap/gpt-oss-20b")
	for _, f := range m.Files {
		if ok, err := tg2.Stat(ctx, f); !ok || err != nil {
			t.Errorf("stat %s after mirror: %v %v", f.Path, ok, err)
		}
	}

	src, err := objstore.NewSource(v, "snap/gpt-oss-20b/", objstore.SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := src.Resolve(ctx, registry.Ref{Scheme: "dbfs", Repo: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if !src.HasManifest() || got.Revision != m.Revision || len(got.Files) != len(m.Files) {
		t.Fatalf("resolved %+v", got)
	}
	for i, f := range got.Files {
		if f != m.Files[i] {
			t.Errorf("file %d: %+v, want %+v", i, f, m.Files[i])
		}
		rc, err := src.Open(ctx, f, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(b, files[f.Path]) {
			t.Errorf("%s read back: %v", f.Path, err)
		}
	}
	// A prefix that is not a directory boundary lists only what matches.
	objs, err := v.List(ctx, "snap/gpt-oss-20b/original/model")
	if err != nil || len(objs) != 1 || objs[0].Key != "snap/gpt-oss-20b/original/model.safetensors" || objs[0].Size != 4321 {
		t.Errorf("list by name prefix: %+v %v", objs, err)
	}
	if objs, err := v.List(ctx, "nothing/here/"); err != nil || len(objs) != 0 {
		t.Errorf("empty prefix: %v %v", objs, err)
	}
}

func TestErrors(t *testing.T) {
	s := dbxtest.Start(t, dbxtest.Options{Tokens: []string{rwToken}, ReadOnlyTokens: []string{roToken}})
	vol := s.AddVolume("main", "ml", "models")
	os.MkdirAll(filepath.Join(vol, "m"), 0o755)
	os.WriteFile(filepath.Join(vol, "m", "config.json"), []byte("{}"), 0o644)
	ctx := context.Background()
	noSuch := func(err error) {
		t.Helper()
		if err == nil || strings.Contains(err.Error(), rwToken) || strings.Contains(err.Error(), roToken) || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %q: want one line without the token", err)
		}
	}

	// Missing volume: not found, naming it.
	missing, _ := NewVolume(Location{Catalog: "main", Schema: "ml", Volume: "nope"}, Options{Host: s.URL, Token: rwToken})
	_, err := missing.List(ctx, "m/")
	if !errors.Is(err, registry.ErrNotFound) || !strings.Contains(err.Error(), "main.ml.nope") {
		t.Errorf("missing volume: %v", err)
	}
	noSuch(err)
	// Wrong token: unauthorized with a hint.
	_, err = newVolume(t, s, "dapi-wrong", 0).List(ctx, "m/")
	if !errors.Is(err, registry.ErrUnauthorized) || !strings.Contains(err.Error(), "DATABRICKS_TOKEN") {
		t.Errorf("wrong token: %v", err)
	}
	noSuch(err)
	// No token at all: refused before any request.
	if _, err := NewVolume(Location{Catalog: "c", Schema: "s", Volume: "v"}, Options{Host: s.URL}); !errors.Is(err, registry.ErrUnauthorized) {
		t.Errorf("no token: %v", err)
	}
	// Read-only token: reads, cannot write.
	ro := newVolume(t, s, roToken, 0)
	if objs, err := ro.List(ctx, "m/"); err != nil || len(objs) != 1 {
		t.Errorf("read-only list: %v %v", objs, err)
	}
	err = ro.Put(ctx, "m/x.bin", bytes.NewReader([]byte("x")), 1, "")
	if !errors.Is(err, registry.ErrForbidden) || errors.Is(err, registry.ErrUnauthorized) || !strings.Contains(err.Error(), "WRITE VOLUME") {
		t.Errorf("read-only put: %v", err)
	}
	noSuch(err)
	// Missing file: not found; Head says absent without an error.
	rw := newVolume(t, s, rwToken, 0)
	if _, err := rw.Open(ctx, "m/none", 0, 5); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("open missing: %v", err)
	}
	if _, ok, err := rw.Head(ctx, "m/none"); ok || err != nil {
		t.Errorf("head missing: %v %v", ok, err)
	}
	// Ranges past the end are a size mismatch, not a retry.
	if _, err := rw.Open(ctx, "m/config.json", 5, 5); !registry.IsPermanent(err) {
		t.Errorf("range past the end: %v", err)
	}
	// 503 with Retry-After on a listing is retried.
	s.SetFaults(dbxtest.Fault{Kind: dbxtest.Fault503, Count: 1, RetryAfter: 1, Endpoints: []dbxtest.Endpoint{dbxtest.EndpointList}})
	if objs, err := rw.List(ctx, "m/"); err != nil || len(objs) != 1 {
		t.Errorf("list after a 503: %v %v", objs, err)
	}
}

// TestMultipartFallbackAndRetry: a workspace without multipart gets one PUT;
// a part that fails with 503 is retried alone.
func TestMultipartFallbackAndRetry(t *testing.T) {
	ctx := context.Background()
	data := randBytes(3000)
	s := dbxtest.Start(t, dbxtest.Options{NoMultipart: true, MinPart: 1000})
	s.AddVolume("main", "ml", "models")
	if err := newVolume(t, s, rwToken, 1000).Put(ctx, "a/b.bin", bytes.NewReader(data), 3000, ""); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Requests[dbxtest.EndpointPut] != 1 || st.Requests[dbxtest.EndpointPartPut] != 0 {
		t.Errorf("fallback: %v", st.Requests)
	}

	s2 := dbxtest.Start(t, dbxtest.Options{MinPart: 1000, Faults: []dbxtest.Fault{{Kind: dbxtest.Fault503, Count: 2, RetryAfter: -1, Endpoints: []dbxtest.Endpoint{dbxtest.EndpointPartPut}}}})
	s2.AddVolume("main", "ml", "models")
	if err := newVolume(t, s2, rwToken, 1000).Put(ctx, "a/b.bin", bytes.NewReader(data), 3000, ""); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(s2.Dir, "main", "ml", "models", "a", "b.bin"))
	if !bytes.Equal(got, data) {
		t.Error("retried multipart upload differs")
	}
	if st := s2.Stats(); st.Faults[dbxtest.Fault503] != 2 || st.Requests[dbxtest.EndpointPartPut] != 5 {
		t.Errorf("part retries: %v %v", st.Faults, st.Requests)
	}

	// A part that keeps failing aborts the upload: nothing is published.
	s2.SetFaults(dbxtest.Fault{Kind: dbxtest.Fault503, Count: -1, RetryAfter: -1, Endpoints: []dbxtest.Endpoint{dbxtest.EndpointPartPut}, Path: "a/c.bin"})
	v := newVolume(t, s2, rwToken, 1000)
	v.parts.Attempts = 2
	if err := v.Put(ctx, "a/c.bin", bytes.NewReader(data), 3000, ""); err == nil {
		t.Fatal("upload with failing parts succeeded")
	}
	if _, ok, _ := v.Head(ctx, "a/c.bin"); ok {
		t.Error("a failed multipart upload left a file")
	}
	if st := s2.Stats(); st.Requests[dbxtest.EndpointAbort] != 1 {
		t.Errorf("abort requests: %v", st.Requests)
	}
}

// TestHostileListing: a workspace whose listing loops back on itself or
// points outside the directory does not make List loop or escape.
func TestHostileListing(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"contents": [
			{"path": "/Volumes/c/s/v/m/", "is_directory": true, "name": "m"},
			{"path": "/Volumes/c/s/v/m/../../etc/", "is_directory": true, "name": ".."},
			{"path": "/Volumes/c/s/v/other/x.bin", "is_directory": false, "name": "x.bin", "file_size": 5},
			{"path": "/Volumes/c/s/v/m/ok.bin", "is_directory": false, "name": "ok.bin", "file_size": 7, "last_modified": 1}
		]}`)
	}))
	defer srv.Close()
	v, err := NewVolume(Location{Catalog: "c", Schema: "s", Volume: "v"}, Options{Host: srv.URL, Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := v.List(context.Background(), "m/")
	if err != nil || len(objs) != 1 || objs[0].Key != "m/ok.bin" || calls != 1 {
		t.Errorf("hostile listing: %+v %v after %d calls", objs, err, calls)
	}
}
