package main

// End-to-end against Databricks Unity Catalog volumes as internal/dbxtest
// serves the Files API: mirror --to dbfs:/Volumes/… then pull --from
// dbfs:/Volumes/… into a fresh cache, a corrupted file, an interrupted pull,
// and the failures a user meets (no token, wrong token, missing volume,
// read-only token), none of which may print the token.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gptoss/gptoss/internal/dbxtest"
	"github.com/gptoss/gptoss/internal/hubtest"
)

const (
	dbxRW = "dapi-e2e-read-write-0123456789"
	dbxRO = "dapi-e2e-read-only-9876543210"
)

// dbxEnv is a copy of e for the workspace srv and token: a fresh cache
// (fresh) that cannot reach the Hub, or e's own; no ~/.databrickscfg.
func dbxEnv(t *testing.T, e *env, srv *dbxtest.Server, token string, fresh bool) *env {
	e2 := *e
	if fresh {
		e2.home = filepath.Join(t.TempDir(), "home")
	}
	e2.extra = []string{"DATABRICKS_HOST=" + srv.URL, "DATABRICKS_TOKEN=" + token,
		"DATABRICKS_CONFIG_FILE=" + filepath.Join(t.TempDir(), "no-databrickscfg"), "DATABRICKS_CONFIG_PROFILE="}
	if fresh {
		e2.extra = append(e2.extra, "HF_ENDPOINT=http://127.0.0.1:1")
	}
	return &e2
}

// dbxOneLine asserts a failed command printed exactly one "gptoss:" error
// line (returned) and no token anywhere.
func dbxOneLine(t *testing.T, r result) string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if strings.HasPrefix(l, "gptoss: ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Errorf("want one error line, got %d:\n%s", len(lines), r.stderr)
	}
	for _, s := range []string{dbxRW, dbxRO, "dapi-wrong-token-555"} {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Errorf("a token was printed:\n%s%s", r.stdout, r.stderr)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	t.Logf("exit %d: %s", r.code, lines[0])
	return lines[0]
}

func TestDatabricksMirrorPull(t *testing.T) {
	srv := dbxtest.Start(t, dbxtest.Options{Tokens: []string{dbxRW}, ReadOnlyTokens: []string{dbxRO}, PageSize: 4})
	vol := srv.AddVolume("main", "ml", "models")
	e := newEnv(t, 12<<20, hubtest.Options{})
	e.mustRun("pull", "20b")
	dir := strings.TrimSpace(e.mustRun("path", "20b").stdout)
	files := e.hfFiles()
	const loc = "dbfs:/Volumes/main/ml/models/gpt-oss-20b"
	total := e.totalHF()

	// Mirror: every file uploaded, byte-identical on the volume, the
	// manifest beside them; again: everything skipped.
	m := dbxEnv(t, e, srv, dbxRW, false)
	r := m.mustRun("mirror", "20b", "--to", loc)
	if strings.TrimSpace(r.stdout) != loc {
		t.Errorf("mirror printed %q, want %s", r.stdout, loc)
	}
	if strings.Contains(r.stdout+r.stderr, dbxRW) {
		t.Error("the token was printed")
	}
	for _, p := range files {
		if fileSHA(t, filepath.Join(vol, "gpt-oss-20b", filepath.FromSlash(p))) != fileSHA(t, filepath.Join(e.src, p)) {
			t.Errorf("%s on the volume differs from the source", p)
		}
	}
	var man struct {
		Name     string `json:"name"`
		Revision string `json:"revision"`
		Files    []struct {
			Path   string `json:"path"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
	}
	b, err := os.ReadFile(filepath.Join(vol, "gpt-oss-20b", "gptoss-manifest.json"))
	if err != nil || json.Unmarshal(b, &man) != nil || man.Revision != e.repo.Commit || len(man.Files) != len(files) {
		t.Fatalf("manifest on the volume: %v\n%s", err, b)
	}
	puts := srv.Stats().Requests[dbxtest.EndpointPut]
	r = m.mustRun("mirror", "20b", "--to", loc, "--json")
	var row struct {
		Event    string `json:"event"`
		Uploaded int    `json:"uploaded"`
		Skipped  int    `json:"skipped"`
	}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		json.Unmarshal([]byte(l), &row)
		if row.Event == "mirrored" {
			break
		}
	}
	if row.Event != "mirrored" || row.Uploaded != 0 || row.Skipped != len(files) {
		t.Errorf("second mirror: %+v\n%s", row, r.stdout)
	}
	if n := srv.Stats().Requests[dbxtest.EndpointPut] - puts; n != 1 {
		t.Errorf("second mirror made %d PUTs, want only the manifest's", n)
	}

	// Pull into a fresh cache that can reach only the workspace, with the
	// read-only token: the identical snapshot at the same revision, verified.
	srv.ResetStats()
	p := dbxEnv(t, e, srv, dbxRO, true)
	r = p.mustRun("pull", "20b", "--from", loc)
	dir2 := strings.TrimSpace(p.mustRun("path", "20b").stdout)
	if filepath.Base(dir2) != filepath.Base(dir) || filepath.Base(dir2) != e.repo.Commit {
		t.Errorf("snapshot %s, want revision %s", dir2, e.repo.Commit)
	}
	p.checkSnapshot(dir2, files)
	p.mustRun("verify", "20b")
	p.checkBlobsVerified()
	if strings.Contains(r.stdout+r.stderr, dbxRO) || strings.Contains(r.stderr, "could not be checked") {
		t.Errorf("pull output:\n%s", r.stderr)
	}
	// Every byte came from the volume (more may have been sent: the engine
	// ends a straggler's request early when it splits it).
	for _, f := range e.repo.Files {
		for _, p := range files {
			if f.Path == p && srv.Stats().BodyBytes["/Volumes/main/ml/models/gpt-oss-20b/"+p] < f.Size {
				t.Errorf("%s: %d bytes read from the volume, the file has %d", p, srv.Stats().BodyBytes["/Volumes/main/ml/models/gpt-oss-20b/"+p], f.Size)
			}
		}
	}
	// GPTOSS_MIRROR works with a dbfs: location too.
	g := dbxEnv(t, e, srv, dbxRO, true)
	g.extra = append(g.extra, "GPTOSS_MIRROR="+loc)
	g.checkSnapshot(strings.TrimSpace(g.mustRun("pull", "20b").stdout), files)

	t.Run("corrupted file is caught", func(t *testing.T) {
		shard := e.shards()[0].Path
		fp := filepath.Join(vol, "gpt-oss-20b", shard)
		orig, _ := os.ReadFile(fp)
		bad := bytes.Clone(orig)
		bad[len(bad)/2] ^= 0xFF
		os.WriteFile(fp, bad, 0o644)
		defer os.WriteFile(fp, orig, 0o644)
		c := dbxEnv(t, e, srv, dbxRO, true)
		r := c.wantCode(exitVerify, "pull", "20b", "--from", loc)
		if line := dbxOneLine(t, r); !strings.Contains(line, "digest mismatch") || !strings.Contains(line, shard) {
			t.Errorf("corruption: %s", line)
		}
		for name := range c.checkBlobsVerified() {
			for _, f := range e.shards() {
				if f.Path == shard && f.SHA256 == name {
					t.Error("the corrupted file was published")
				}
			}
		}
		if out := c.mustRun("list", "--json").stdout; strings.TrimSpace(out) != "[]" {
			t.Errorf("a model was committed: %s", out)
		}
	})

	t.Run("prefix without a manifest", func(t *testing.T) {
		// What `databricks fs cp -r` leaves: the files, no manifest.
		for _, p := range files {
			b, err := os.ReadFile(filepath.Join(dir, p))
			if err != nil {
				t.Fatal(err)
			}
			fp := filepath.Join(vol, "synced", filepath.FromSlash(p))
			os.MkdirAll(filepath.Dir(fp), 0o755)
			os.WriteFile(fp, b, 0o644)
		}
		c := dbxEnv(t, e, srv, dbxRO, true)
		r := c.mustRun("pull", "20b", "--from", "dbfs:/Volumes/main/ml/models/synced")
		c.checkSnapshot(strings.TrimSpace(r.stdout), files)
		if !strings.Contains(r.stderr, "could not be checked") || !strings.Contains(r.stderr, "dbfs:/Volumes/main/ml/models/synced") {
			t.Errorf("no not-checked line:\n%s", r.stderr)
		}
		checkSummary(t, r.stderr, len(files), len(files))
		// The machine that pulled from the Hub knows the digests.
		r = dbxEnv(t, e, srv, dbxRO, false).mustRun("pull", "20b", "--from", "dbfs:/Volumes/main/ml/models/synced")
		if strings.Contains(r.stderr, "could not be checked") {
			t.Errorf("known digests not used:\n%s", r.stderr)
		}
	})

	t.Run("interrupted pull resumes", func(t *testing.T) {
		srv.ResetStats()
		srv.SetRate(2 << 20)
		defer srv.SetRate(0)
		c := dbxEnv(t, e, srv, dbxRO, true)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := c.cmd(ctx, "pull", "20b", "--from", loc, "--connections", "4", "--part-size", "1MiB")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for srv.Stats().TotalBodyBytes < total/2 {
			time.Sleep(20 * time.Millisecond)
			if ctx.Err() != nil {
				t.Fatal("the pull did not progress")
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("the pull was not killed: %v\n%s", err, errb.String())
		}
		first := srv.Stats().TotalBodyBytes
		if first >= total {
			t.Fatalf("the pull finished before it was interrupted (%d of %d bytes)", first, total)
		}
		srv.ResetStats()
		srv.SetRate(0)
		r := c.mustRun("pull", "20b", "--from", loc, "--connections", "4", "--part-size", "1MiB")
		second := srv.Stats().TotalBodyBytes
		const slack = 2 * 4 * (1 << 20) // parts in flight and socket buffers, as in TestKill9Resume
		t.Logf("total %d, before the kill %d, after %d", total, first, second)
		if second > total-first+slack {
			t.Errorf("the rerun read %d bytes; only %d were missing", second, total-first)
		}
		c.checkSnapshot(strings.TrimSpace(r.stdout), files)
		c.mustRun("verify", "20b")
	})
}

func TestDatabricksErrors(t *testing.T) {
	srv := dbxtest.Start(t, dbxtest.Options{Tokens: []string{dbxRW}, ReadOnlyTokens: []string{dbxRO}})
	vol := srv.AddVolume("main", "ml", "models")
	e := newEnv(t, 1<<20, hubtest.Options{})
	e.mustRun("pull", "20b", "--include", "*.json")
	const loc = "dbfs:/Volumes/main/ml/models/gpt-oss-20b"

	// No token: refused before any request, with what to set.
	r := dbxEnv(t, e, srv, "", false).wantCode(exitAuth, "mirror", "20b", "--to", loc)
	if line := dbxOneLine(t, r); !strings.Contains(line, "DATABRICKS_TOKEN") {
		t.Errorf("no token: %s", line)
	}
	// No workspace.
	nohost := dbxEnv(t, e, srv, dbxRW, false)
	nohost.extra = append(nohost.extra, "DATABRICKS_HOST=")
	r = nohost.run("pull", "20b", "--from", loc)
	if line := dbxOneLine(t, r); r.code == 0 || !strings.Contains(line, "DATABRICKS_HOST") {
		t.Errorf("no host: exit %d, %s", r.code, line)
	}
	// A wrong token, for pull and mirror.
	for _, args := range [][]string{{"mirror", "20b", "--to", loc}, {"pull", "20b", "--from", loc}} {
		r := dbxEnv(t, e, srv, "dapi-wrong-token-555", args[0] == "pull").wantCode(exitAuth, args...)
		if line := dbxOneLine(t, r); !strings.Contains(line, "Invalid access token") || !strings.Contains(line, "DATABRICKS_TOKEN") {
			t.Errorf("%s with a wrong token: %s", args[0], line)
		}
	}
	// A volume that does not exist, for pull and mirror.
	for _, args := range [][]string{{"mirror", "20b", "--to", "dbfs:/Volumes/main/ml/nope/x"}, {"pull", "20b", "--from", "dbfs:/Volumes/main/ml/nope/x"}} {
		r := dbxEnv(t, e, srv, dbxRW, args[0] == "pull").wantCode(exitNotFound, args...)
		if line := dbxOneLine(t, r); !strings.Contains(line, "main.ml.nope") {
			t.Errorf("%s to a missing volume: %s", args[0], line)
		}
	}
	// A read-only token may not mirror; nothing is published.
	r = dbxEnv(t, e, srv, dbxRO, false).wantCode(exitAuth, "mirror", "20b", "--to", loc)
	if line := dbxOneLine(t, r); !strings.Contains(line, "WRITE VOLUME") {
		t.Errorf("read-only mirror: %s", line)
	}
	if _, err := os.Stat(filepath.Join(vol, "gpt-oss-20b", "gptoss-manifest.json")); err == nil {
		t.Error("a manifest was published by a refused mirror")
	}
	// An empty prefix: not found.
	r = dbxEnv(t, e, srv, dbxRW, true).wantCode(exitNotFound, "pull", "20b", "--from", loc)
	dbxOneLine(t, r)
	// Not a volume path.
	r = dbxEnv(t, e, srv, dbxRW, true).wantCode(exitUsage, "pull", "20b", "--from", "dbfs:/mnt/models")
	if line := dbxOneLine(t, r); !strings.Contains(line, "dbfs:/Volumes/") {
		t.Errorf("legacy DBFS path: %s", line)
	}
}
