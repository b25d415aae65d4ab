package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/internal/hubtest"
)

// The e2e tests must not read the developer's own config file: point the
// default place at a directory that does not exist (tests that want a file
// set XDG_CONFIG_HOME or GPTOSS_CONFIG in env.extra).
func init() {
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(os.TempDir(), fmt.Sprintf("gptoss-e2e-no-config-%d", os.Getpid())))
	os.Unsetenv("GPTOSS_CONFIG")
}

// A config file whose "mirror" is an exported layout tar makes a plain
// `gptoss pull 20b` work on a fresh home with the Hub unreachable; a
// malformed or mistyped file is an error naming it.
func TestConfigFileMirror(t *testing.T) {
	e := newEnv(t, 1<<20, hubtest.Options{})
	e.mustRun("pull", "20b", "--no-convert")
	tarPath := filepath.Join(t.TempDir(), "usb", "gpt-oss-20b.tar")
	e.mustRun("export", "20b", "--to", tarPath)

	cfgDir := t.TempDir()
	cfg := filepath.Join(cfgDir, "gptoss", "config.json")
	if err := os.MkdirAll(filepath.Dir(cfg), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(body string) {
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"mirror": "` + tarPath + `"}`)
	before := hubRequests(e)
	gap := &env{t: t, hub: e.hub, repo: e.repo, src: e.src, home: filepath.Join(t.TempDir(), "home"),
		extra: []string{"HF_ENDPOINT=" + nowhere, "XDG_CONFIG_HOME=" + cfgDir, "GPTOSS_CONFIG="}}
	r := gap.mustRun("pull", "20b", "--no-convert")
	dir := strings.TrimSpace(r.stdout)
	if dir != filepath.Join(gap.home, "snapshots", "openai", "gpt-oss-20b", e.repo.Commit) {
		t.Fatalf("pull via the config file's mirror printed %q\n%s", dir, r.stderr)
	}
	gap.checkSnapshot(dir, e.hfFiles())
	if n := hubRequests(e); n != before {
		t.Errorf("the Hub saw %d requests", n-before)
	}

	// The environment wins over the file.
	other := &env{t: t, hub: e.hub, repo: e.repo, src: e.src, home: filepath.Join(t.TempDir(), "home2"),
		extra: []string{"HF_ENDPOINT=" + nowhere, "XDG_CONFIG_HOME=" + cfgDir, "GPTOSS_CONFIG=",
			"GPTOSS_MIRROR=" + filepath.Join(t.TempDir(), "nothing-here")}}
	if r := other.run("pull", "20b", "--no-convert"); r.code == 0 {
		t.Errorf("GPTOSS_MIRROR did not win over the config file: %s", r.stderr)
	}

	// "offline": true from the file: a model not in the cache is exit 8.
	write(`{"offline": true}`)
	gap.wantCode(exitOffline, "pull", "120b")

	// GPTOSS_CONFIG names the file; typos and bad JSON are errors naming it.
	named := filepath.Join(t.TempDir(), "my.json")
	for _, body := range []string{`{"mirorr": "/x"}`, `{"mirror": `} {
		if err := os.WriteFile(named, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		bad := &env{t: t, hub: e.hub, repo: e.repo, src: e.src, home: gap.home,
			extra: []string{"HF_ENDPOINT=" + nowhere, "GPTOSS_CONFIG=" + named}}
		r := bad.wantCode(exitError, "pull", "20b")
		if !strings.Contains(r.stderr, named) {
			t.Errorf("%s: the error does not name the file: %s", body, r.stderr)
		}
	}
}
