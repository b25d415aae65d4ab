package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/internal/hubtest"
)

func TestPullConvertsListRmGC(t *testing.T) {
	e := newEnv(t, 2<<20, hubtest.Options{})
	r := e.mustRun("pull", "20b")
	if !strings.Contains(r.stderr, "converted openai/gpt-oss-20b (hf)") {
		t.Errorf("pull did not convert:\n%s", r.stderr)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(e.mustRun("list", "--json").stdout), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("list --json: %v %v", rows, err)
	}
	layout, _ := rows[0]["converted"].(string)
	if layout == "" {
		t.Fatalf("list --json shows no layout: %v", rows[0])
	}
	if list := e.mustRun("list").stdout; !strings.Contains(list, "CONVERTED") || !strings.Contains(list, "v1") {
		t.Errorf("list:\n%s", list)
	}
	r = e.mustRun("convert", "20b")
	if strings.TrimSpace(r.stdout) != layout || !strings.Contains(r.stderr, "already converted") {
		t.Errorf("convert again: stdout %q (want %s), stderr %q", r.stdout, layout, r.stderr)
	}
	l, err := convert.OpenLayout(layout)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Verify(); err != nil {
		t.Error(err)
	}
	if !strings.HasPrefix(l.SourceManifest, "sha256:") || len(l.Tensors) == 0 || l.Bytes("embedding.weight") == nil {
		t.Errorf("layout: source %s, %d tensors", l.SourceManifest, len(l.Tensors))
	}
	l.Close()
	// The original format gets its own layout (it records its own source
	// manifest); rm hf drops hf's layout only.
	e.mustRun("pull", "20b", "--format", "original")
	orig := strings.TrimSpace(e.mustRun("convert", "20b", "--format", "original").stdout)
	if orig == layout || !strings.Contains(e.mustRun("list").stdout, "original") {
		t.Errorf("original converts to %s, hf to %s", orig, layout)
	}
	e.checkBlobsVerified()
	e.mustRun("rm", "20b", "--format", "hf")
	if _, err := os.Stat(layout); err == nil {
		t.Error("the removed model's layout survived rm")
	}
	if _, err := os.Stat(orig); err != nil {
		t.Errorf("the original format's layout was removed: %v", err)
	}
	e.mustRun("rm", "20b")
	e.mustRun("gc")
	if ents, _ := os.ReadDir(filepath.Join(e.home, "blobs", "sha256")); len(ents) != 0 {
		t.Errorf("%d blobs left after rm + gc", len(ents))
	}
}

func TestPullNoConvert(t *testing.T) {
	e := newEnv(t, 1<<20, hubtest.Options{})
	r := e.mustRun("pull", "20b", "--no-convert")
	if strings.Contains(r.stderr, "converted") {
		t.Errorf("--no-convert converted:\n%s", r.stderr)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(e.mustRun("list", "--json").stdout), &rows); err != nil || len(rows) != 1 || rows[0]["converted"] != nil {
		t.Fatalf("list --json after --no-convert: %v %v", rows, err)
	}
	if list := e.mustRun("list").stdout; !strings.Contains(list, " no") {
		t.Errorf("list:\n%s", list)
	}
	// A partial file set is not a checkpoint: pull skips it, convert refuses.
	e2 := newEnv(t, 1<<20, hubtest.Options{})
	e2.mustRun("pull", "20b", "--include", "*.json")
	if r := e2.run("convert", "20b"); r.code == 0 || !strings.Contains(r.stderr, "not a gpt-oss") {
		t.Errorf("convert of a partial pull: exit %d, %s", r.code, r.stderr)
	}
	// Then convert on demand.
	p := strings.TrimSpace(e.mustRun("convert", "20b").stdout)
	if l, err := convert.OpenLayout(p); err != nil {
		t.Error(err)
	} else {
		l.Close()
	}
}
