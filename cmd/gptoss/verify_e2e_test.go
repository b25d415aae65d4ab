package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/internal/hubtest"
)

// verifyJSON is the part of verify --json these tests read.
type verifyJSON struct {
	Name      string `json:"name"`
	Format    string `json:"format"`
	Files     []any  `json:"files"`
	OK        bool   `json:"ok"`
	Structure *struct {
		Headers []struct {
			Path    string `json:"path"`
			Tensors int    `json:"tensors"`
			Status  string `json:"status"`
		} `json:"headers"`
		Layout string `json:"layout"`
		Schema *struct {
			Expected int  `json:"expected"`
			Found    int  `json:"found"`
			OK       bool `json:"ok"`
		} `json:"schema"`
		Problems []struct {
			Check, Subject, Detail string
		} `json:"problems"`
		OK bool `json:"ok"`
	} `json:"structure"`
}

func parseVerify(t *testing.T, out string) []verifyJSON {
	t.Helper()
	var rs []verifyJSON
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, out)
	}
	return rs
}

func TestVerifyStructureLevels(t *testing.T) {
	e := newEnv(t, 2<<20, hubtest.Options{})
	e.mustRun("pull", "20b")
	shards := e.shards()

	// Default level (all): digests and structure, both fine.
	v := e.mustRun("verify", "20b")
	if strings.Count(v.stdout, "  ok  ") != len(e.hfFiles()) ||
		!strings.Contains(v.stdout, fmt.Sprintf("structure ok: %d safetensors headers", len(shards))) ||
		!strings.Contains(v.stdout, "hf schema: ") {
		t.Errorf("verify 20b:\n%s", v.stdout)
	}
	rs := parseVerify(t, e.mustRun("verify", "20b", "--json").stdout)
	if len(rs) != 1 || !rs[0].OK || len(rs[0].Files) != len(e.hfFiles()) || rs[0].Structure == nil {
		t.Fatalf("verify --json: %+v", rs)
	}
	st := rs[0].Structure
	if !st.OK || st.Layout != "hf" || len(st.Headers) != len(shards) || st.Schema == nil || !st.Schema.OK ||
		st.Schema.Expected != st.Schema.Found || st.Schema.Found == 0 {
		t.Errorf("structure: %+v", st)
	}
	// Each level runs only its part.
	rs = parseVerify(t, e.mustRun("verify", "20b", "--json", "--level", "digests").stdout)
	if rs[0].Structure != nil || len(rs[0].Files) == 0 {
		t.Errorf("--level digests: %+v", rs[0])
	}
	rs = parseVerify(t, e.mustRun("verify", "20b", "--json", "--level", "structure").stdout)
	if rs[0].Structure == nil || len(rs[0].Files) != 0 {
		t.Errorf("--level structure: %+v", rs[0])
	}
	if r := e.wantCode(exitUsage, "verify", "20b", "--level", "bytes"); !strings.Contains(r.stderr, "digests, structure") {
		t.Errorf("bad level: %s", r.stderr)
	}

	// The original format gets the original schema.
	e.mustRun("pull", "20b", "--format", "original")
	v = e.mustRun("verify", "20b", "--format", "original", "--level", "structure")
	if !strings.Contains(v.stdout, "structure ok: 1 safetensors headers") || !strings.Contains(v.stdout, "original schema: ") {
		t.Errorf("verify original:\n%s", v.stdout)
	}

	// Corrupt one shard's header in place (same size): a dtype no reader
	// knows. The blob is the snapshot file (hard link).
	shard := shards[len(shards)-1]
	blob := filepath.Join(e.home, "blobs", "sha256", shard.SHA256)
	if err := os.Chmod(blob, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	hdr := b[8 : 8+binary.LittleEndian.Uint64(b[:8])]
	i := bytes.Index(hdr, []byte(`:{"dtype":"BF16"`))
	if i < 0 {
		t.Fatalf("no BF16 tensor in %s's header", shard.Path)
	}
	tensor := string(hdr[bytes.LastIndexByte(hdr[:i-1], '"')+1 : i-1])
	copy(hdr[i:], `:{"dtype":"BX16"`)
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}

	r := e.wantCode(exitVerify, "verify", "20b", "--level", "structure")
	for _, want := range []string{"structure FAILED", shard.Path, "invalid header", fmt.Sprintf("tensor %q: unknown dtype \"BX16\"", tensor),
		"schema", "not checked: invalid safetensors headers"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("verify --level structure does not say %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "hashed") {
		t.Errorf("--level structure hashed files:\n%s", r.stdout)
	}
	rs = parseVerify(t, e.wantCode(exitVerify, "verify", "20b", "--format", "hf", "--level", "structure", "--json").stdout)
	if st := rs[0].Structure; rs[0].OK || st == nil || st.OK || len(st.Problems) == 0 || st.Problems[0].Check != "header" ||
		st.Problems[0].Subject != shard.Path || !strings.Contains(st.Problems[0].Detail, tensor) {
		t.Errorf("--json after corruption: %+v", rs[0].Structure)
	}
	// The digests see it too; the original format is untouched.
	if r := e.wantCode(exitVerify, "verify", "20b", "--format", "hf", "--level", "digests"); !strings.Contains(r.stdout, "digest mismatch") {
		t.Errorf("--level digests:\n%s", r.stdout)
	}
	e.mustRun("verify", "20b", "--format", "original")
}
