package main

// End-to-end: pull from the Hub test server into home A, serve A with
// `gptoss serve-hf`, then pull into home B from that server alone.

import (
	"bufio"
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gptoss/gptoss/internal/hubtest"
)

// startServeHF starts `gptoss serve-hf` on a free loopback port of e's home
// and returns its HF_ENDPOINT and a function that stops it with SIGINT and
// checks it exits 0.
func startServeHF(t *testing.T, e *env) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	c := e.cmd(ctx, "serve-hf", "--addr", "127.0.0.1:0")
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "HF_ENDPOINT="); ok {
				lines <- v
			}
		}
		close(lines)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		defer cancel()
		c.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve-hf after SIGINT: %v\n%s", err, stderr.String())
			}
		case <-time.After(20 * time.Second):
			c.Process.Kill()
			t.Errorf("serve-hf did not stop on SIGINT\n%s", stderr.String())
		}
	}
	t.Cleanup(stop)
	select {
	case ep, ok := <-lines:
		if !ok || !strings.HasPrefix(ep, "http://127.0.0.1:") || strings.HasSuffix(ep, ":0") {
			stop()
			t.Fatalf("serve-hf printed endpoint %q\n%s", ep, stderr.String())
		}
		return ep, stop
	case <-time.After(30 * time.Second):
		stop()
		t.Fatalf("serve-hf did not print HF_ENDPOINT\n%s", stderr.String())
	}
	return "", nil
}

func TestServeHFPullFromPeer(t *testing.T) {
	a := newEnv(t, 4<<20, hubtest.Options{})
	a.mustRun("pull", "20b")
	endpoint, stop := startServeHF(t, a)

	// Home B reaches only serve-hf: the upstream hub is gone.
	a.hub.Close()
	b := *a
	b.home = filepath.Join(t.TempDir(), "home-b")
	b.extra = append(append([]string{}, a.extra...), "HF_ENDPOINT="+endpoint)
	r := b.mustRun("pull", "20b")
	t.Logf("pull from serve-hf:\n%s%s", r.stderr, r.stdout)
	b.mustRun("verify", "20b")
	dir := strings.TrimSpace(b.mustRun("path", "20b").stdout)
	if !strings.Contains(dir, a.repo.Commit) {
		t.Errorf("B's snapshot %s is not of commit %s", dir, a.repo.Commit)
	}
	b.checkSnapshot(dir, a.hfFiles())

	// Pinning the commit (and a prefix of it) works too.
	c := b
	c.home = filepath.Join(t.TempDir(), "home-c")
	c.mustRun("pull", "20b@"+a.repo.Commit[:10])
	c.checkSnapshot(strings.TrimSpace(c.mustRun("path", "20b").stdout), a.hfFiles())
	stop()
}
