package main

// End-to-end: pull from the Hub test server, mirror to a real registry
// (docker-registry on loopback), pull again from the registry alone.

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/internal/hubtest"
	"github.com/gptoss/gptoss/registry/oci/ocitest"
)

type mirrorRow struct {
	Event     string   `json:"event"`
	Name      string   `json:"name"`
	Format    string   `json:"format"`
	Revision  string   `json:"revision"`
	Files     int      `json:"files"`
	Uploaded  int      `json:"uploaded"`
	Skipped   int      `json:"skipped"`
	Bytes     int64    `json:"bytes"`
	Reference string   `json:"reference"`
	UpFiles   []string `json:"uploadedFiles"`
	SkipFiles []string `json:"skippedFiles"`
}

func lastMirrorRow(t *testing.T, stdout string) mirrorRow {
	t.Helper()
	var row mirrorRow
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var r mirrorRow
		if json.Unmarshal([]byte(l), &r) == nil && r.Event == "mirrored" {
			row = r
		}
	}
	if row.Event == "" {
		t.Fatalf("no mirrored event in:\n%s", stdout)
	}
	return row
}

func TestMirrorOCIRoundTrip(t *testing.T) {
	reg := ocitest.Start(t, nil)
	e := newEnv(t, 4<<20, hubtest.Options{})
	e.mustRun("pull", "20b")
	dir := strings.TrimSpace(e.mustRun("path", "20b").stdout)
	files := e.hfFiles()

	// Mirror to an explicit repository and tag (plain HTTP named, as for a
	// registry that is not on loopback).
	target := "oci://" + reg.Host + "/models/gpt-oss-20b:hf"
	r := e.mustRun("mirror", "20b", "--to", target, "--plain-http")
	ref := strings.TrimSpace(r.stdout)
	t.Logf("mirror:\n%s%s", r.stderr, r.stdout)
	if !strings.HasPrefix(ref, target+"@sha256:") {
		t.Fatalf("mirror printed %q", ref)
	}
	if n := strings.Count(r.stderr, "uploaded\n"); n != len(files) {
		t.Errorf("%d files reported uploaded, want %d:\n%s", n, len(files), r.stderr)
	}

	// Again, to the namespace: the same place, every blob skipped, the same
	// manifest digest (the manifest is reproducible).
	r = e.mustRun("mirror", "20b", "--to", "oci://"+reg.Host+"/models", "--json")
	row := lastMirrorRow(t, r.stdout)
	if row.Uploaded != 0 || row.Skipped != len(files) || row.Bytes != 0 || len(row.SkipFiles) != len(files) {
		t.Errorf("second mirror: %+v", row)
	}
	if row.Reference != ref || row.Revision != e.repo.Commit || row.Format != "hf" {
		t.Errorf("second mirror reference %s (first %s), revision %s", row.Reference, ref, row.Revision)
	}

	// A fresh cache that can reach only the registry: GPTOSS_MIRROR.
	fresh := func(extra ...string) *env {
		e2 := *e
		e2.home = filepath.Join(t.TempDir(), "home")
		e2.extra = append([]string{"HF_ENDPOINT=http://127.0.0.1:1"}, extra...)
		return &e2
	}
	before := e.hub.Stats().Requests
	e2 := fresh("GPTOSS_MIRROR=oci://" + reg.Host + "/models")
	e2.mustRun("pull", "20b")
	dir2 := strings.TrimSpace(e2.mustRun("path", "20b").stdout)
	if filepath.Base(dir2) != filepath.Base(dir) || filepath.Base(dir2) != e.repo.Commit {
		t.Errorf("snapshot %s, want revision %s", dir2, e.repo.Commit)
	}
	e2.checkSnapshot(dir2, files)
	e2.mustRun("verify", "20b")
	e2.checkBlobsVerified()
	after := e.hub.Stats().Requests
	for k, n := range after {
		if before[k] != n {
			t.Errorf("the Hub was asked during the mirror pull: %s %d → %d", k, before[k], n)
		}
	}
	// Again: cached.
	e2.mustRun("pull", "20b")

	// --from the exact reference (and pinned by digest), with GPTOSS_PLAIN_HTTP.
	e3 := fresh("GPTOSS_PLAIN_HTTP=1")
	e3.mustRun("pull", "20b", "--from", ref)
	e3.checkSnapshot(strings.TrimSpace(e3.mustRun("path", "20b").stdout), files)

	// A format that was never mirrored is not found (exit 3).
	e4 := fresh("GPTOSS_MIRROR=oci://" + reg.Host + "/models")
	e4.wantCode(exitNotFound, "pull", "20b", "--format", "original")
}

func TestMirrorErrors(t *testing.T) {
	reg := ocitest.Start(t, nil)
	e := newEnv(t, 1<<20, hubtest.Options{})
	// Not in the cache.
	e.wantCode(exitNotFound, "mirror", "20b", "--to", "oci://"+reg.Host+"/models")
	// Usage.
	e.wantCode(exitUsage, "mirror", "20b")
	e.wantCode(exitUsage, "mirror", "20b", "--to", "gs://bucket/x")
	e.wantCode(exitUsage, "mirror", "20b", "--to", "oci://"+reg.Host)
	e.wantCode(exitUsage, "mirror", "20b", "--to", "oci://"+reg.Host+"/m", "--password-stdin")

	// A registry that wants credentials: refused without them (exit 4),
	// works with --password-stdin, and the password is never printed.
	sec := ocitest.Start(t, &ocitest.Auth{Scheme: "bearer", Username: "ci", Password: "pw-never-printed"})
	e.mustRun("pull", "20b", "--include", "*.json")
	e.extra = []string{"DOCKER_CONFIG=" + t.TempDir(), "GPTOSS_REGISTRY_USERNAME=", "GPTOSS_REGISTRY_PASSWORD="}
	r := e.wantCode(exitAuth, "mirror", "20b", "--to", "oci://"+sec.Host+"/private")
	t.Logf("no credentials: %s", r.stderr)
	if !strings.Contains(r.stderr, "credentials") {
		t.Errorf("no hint about credentials: %s", r.stderr)
	}
	c := e.cmd(t.Context(), "mirror", "20b", "--to", "oci://"+sec.Host+"/private", "--username", "ci", "--password-stdin")
	c.Stdin = strings.NewReader("pw-never-printed\n")
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("mirror with credentials: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "pw-never-printed") {
		t.Error("the password was printed")
	}
	c = e.cmd(t.Context(), "mirror", "20b", "--to", "oci://"+sec.Host+"/private", "--username", "ci", "--password-stdin")
	c.Stdin = strings.NewReader("wrong\n")
	out, _ = c.CombinedOutput()
	if c.ProcessState.ExitCode() != exitAuth || strings.Contains(string(out), "wrong\n") {
		t.Errorf("wrong password: exit %d\n%s", c.ProcessState.ExitCode(), out)
	}
}
