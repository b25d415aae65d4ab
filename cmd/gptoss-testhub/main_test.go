package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"4GiB": 4 << 30, "500MB": 500e6, "1.5G": 3 << 29, "1048576": 1 << 20, "8MiB": 8 << 20, "50mb": 50e6, "2k": 2048,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "GiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestGenAndServe(t *testing.T) {
	dir := t.TempDir()
	var out strings.Builder
	if err := runGen([]string{"--out", dir, "--tiny", "--original", "stub", "--shards", "3"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "model-00002-of-00002.safetensors")); err != nil {
		t.Fatalf("gen: %v (%s)", err, out.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	ready := filepath.Join(t.TempDir(), "ready")
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, []string{"--repo", "openai/gpt-oss-20b=" + dir, "--page-size", "2",
			"--token", "tk", "--gated", "--fail-503", "1", "--ready-file", ready}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err, <-done)
	}
	go io.Copy(io.Discard, pr)
	ep, ok := strings.CutPrefix(strings.TrimSpace(line), "HF_ENDPOINT=")
	if !ok || !strings.HasPrefix(ep, "http://127.0.0.1:") {
		t.Fatalf("ready line %q", line)
	}
	if b, _ := os.ReadFile(ready); string(b) != line {
		t.Errorf("ready file %q", b)
	}
	getStatus := func(u, tok string) (int, []byte) {
		req, _ := http.NewRequest("GET", ep+u, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, _ := getStatus("/api/models/openai/gpt-oss-20b", ""); code != 503 {
		t.Errorf("first request: %d, want the injected 503", code)
	}
	code, body := getStatus("/api/models/openai/gpt-oss-20b", "")
	var info struct{ Gated any }
	if json.Unmarshal(body, &info); code != 200 || info.Gated != "manual" {
		t.Errorf("info: %d %s", code, body)
	}
	if code, _ := getStatus("/openai/gpt-oss-20b/resolve/main/config.json", ""); code != 401 {
		t.Errorf("gated without token: %d", code)
	}
	if code, _ := getStatus("/openai/gpt-oss-20b/resolve/main/config.json", "tk"); code != 200 {
		t.Errorf("gated with token: %d", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestServeFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--repo", "nodir"},
		{"--repo", "a/b=" + t.TempDir(), "--branch", "x/y@v2=" + t.TempDir()},
		{"--repo", "a/b=" + t.TempDir(), "extra"},
	} {
		if err := runServe(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("runServe(%q) succeeded", args)
		}
	}
	if err := runGen([]string{"--tiny"}, io.Discard, io.Discard); err == nil {
		t.Error("gen without --out succeeded")
	}
}
