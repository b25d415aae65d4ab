package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gptoss/gptoss/internal/hubtest"
	"github.com/gptoss/gptoss/runtime/tokenizer"
	"github.com/gptoss/gptoss/runtime/tokenizer/tiktokentest"
)

// runStdin runs gptoss with stdin.
func (e *env) runStdin(stdin string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := e.cmd(ctx, args...)
	c.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("gptoss %v: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

func (e *env) mustRunStdin(stdin string, args ...string) result {
	e.t.Helper()
	r := e.runStdin(stdin, args...)
	if r.code != 0 {
		e.t.Fatalf("gptoss %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func parseSpaceIDs(t *testing.T, s string) []int32 {
	t.Helper()
	var ids []int32
	for _, f := range strings.Fields(s) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("output %q: %v", s, err)
		}
		ids = append(ids, int32(n))
	}
	return ids
}

// TestTokenizeMatchesJSTiktoken runs gptoss tokenize on an o200k_harmony
// tokenizer.json built from js-tiktoken's ranks and compares its ids with
// js-tiktoken's own encode.
func TestTokenizeMatchesJSTiktoken(t *testing.T) {
	o := tiktokentest.Load(t)
	file := o.WriteTokenizerJSON(t, t.TempDir(), false)
	texts := []string{
		strings.Join([]string{
			"Hello, world! DON'T panic: it's 12345678 o'clock.",
			"Saya suka makan nasi goreng. Terima kasih!",
			"日本語のテキスト。中文文本：我爱北京。한국어 텍스트.",
			"مرحبا بالعالم! नमस्ते दुनिया! Привет, мир!",
			"Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇲🇾",
			"func main() {\n\tfmt.Println(\"x\")\n}\n\n\n    indented\t\ttabs   \r\n",
			"text with <|start|> and <|end|> as plain text",
		}, "\n"),
		"<|start|>user<|message|>What is 2 + 2?<|end|><|start|>assistant<|channel|>final<|message|>4<|return|>",
	}
	ref := o.Reference(t, texts)
	e := &env{t: t, home: filepath.Join(t.TempDir(), "home")}
	e.hub = hubtest.New(hubtest.Options{CDNHost: "localhost"}) // env needs a hub URL; unused here
	t.Cleanup(e.hub.Close)

	// --json, ordinary encoding.
	r := e.mustRunStdin(texts[0], "tokenize", "--tokenizer", file, "--json")
	var got struct {
		IDs   []int32 `json:"ids"`
		Count int     `json:"count"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("--json output %q: %v", r.stdout, err)
	}
	if !slices.Equal(got.IDs, ref.Ordinary[0]) || got.Count != len(ref.Ordinary[0]) {
		t.Fatalf("gptoss tokenize --json:\n got %v (count %d)\nwant %v", got.IDs, got.Count, ref.Ordinary[0])
	}
	// Plain output, specials as text, then with --special.
	r = e.mustRunStdin(texts[1], "tokenize", "--tokenizer", file)
	if ids := parseSpaceIDs(t, r.stdout); !slices.Equal(ids, ref.Ordinary[1]) {
		t.Fatalf("gptoss tokenize:\n got %v\nwant %v", ids, ref.Ordinary[1])
	}
	r = e.mustRunStdin(texts[1], "tokenize", "--tokenizer", file, "--special")
	if ids := parseSpaceIDs(t, r.stdout); !slices.Equal(ids, ref.All[1]) {
		t.Fatalf("gptoss tokenize --special:\n got %v\nwant %v", ids, ref.All[1])
	}
	t.Logf("%d texts, %d tokens identical to js-tiktoken through the CLI", len(texts)+1,
		len(ref.Ordinary[0])+len(ref.Ordinary[1])+len(ref.All[1]))
	// --decode turns js-tiktoken's ids back into the text.
	var list []string
	for i, id := range ref.Ordinary[0] {
		list = append(list, strconv.Itoa(int(id)))
		if i%10 == 9 {
			list[i] += ",\n"
		}
	}
	r = e.mustRunStdin(strings.Join(list, " "), "tokenize", "--tokenizer", file, "--decode")
	if r.stdout != texts[0] {
		t.Fatalf("--decode gave %q", r.stdout)
	}
	r = e.mustRunStdin(`{"ids":`+fmtIDs(ref.All[1])+`}`, "tokenize", "--tokenizer", file, "--decode", "--json")
	var dec struct{ Text string }
	if err := json.Unmarshal([]byte(r.stdout), &dec); err != nil || dec.Text != texts[1] {
		t.Fatalf("--decode --json gave %q (%v)", r.stdout, err)
	}

	// Bad calls: one clear line each.
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("[1, 2]"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		code  int
		stdin string
		args  []string
		want  string
	}{
		{exitUsage, "", []string{"tokenize"}, "give a MODEL or --tokenizer FILE"},
		{exitUsage, "", []string{"tokenize", "20b", "--tokenizer", file}, "give a MODEL or --tokenizer FILE"},
		{exitNotFound, "x", []string{"tokenize", "--tokenizer", filepath.Join(t.TempDir(), "nope.json")}, "nope.json"},
		{exitError, "x", []string{"tokenize", "--tokenizer", bad}, "not a tokenizer.json"},
		{exitUsage, "1 2 banana", []string{"tokenize", "--tokenizer", file, "--decode"}, `"banana" is not a token id`},
		{exitUsage, "999999999", []string{"tokenize", "--tokenizer", file, "--decode"}, "out of range"},
	} {
		r := e.runStdin(c.stdin, c.args...)
		msg := strings.TrimSpace(r.stderr)
		if r.code != c.code || !strings.Contains(msg, c.want) || strings.Count(msg, "\n") > 0 {
			t.Errorf("gptoss %v: exit %d, stderr %q; want exit %d and one line with %q", c.args, r.code, r.stderr, c.code, c.want)
		}
	}
}

func fmtIDs(ids []int32) string {
	b, _ := json.Marshal(ids)
	return string(b)
}

// TestTokenizeModel tokenizes with a model pulled from the test hub: the
// snapshot's tokenizer.json (the fixture's byte-level stand-in).
func TestTokenizeModel(t *testing.T) {
	e := newEnv(t, 1<<20, hubtest.Options{})
	r := e.wantCode(exitNotFound, "tokenize", "20b")
	if !strings.Contains(r.stderr, "not in the cache") {
		t.Errorf("uncached model: %q", r.stderr)
	}
	e.mustRun("pull", "20b", "--no-convert")
	text := "Hello <|start|> wörld 😀\n"
	want, err := tokenizer.Load(filepath.Join(e.src, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	r = e.mustRunStdin(text, "tokenize", "20b", "--json")
	var got struct {
		IDs   []int32 `json:"ids"`
		Count int     `json:"count"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("output %q: %v", r.stdout, err)
	}
	if w := want.EncodeOrdinary(text); !slices.Equal(got.IDs, w) || got.Count != len(w) || len(w) != len(text) {
		t.Fatalf("tokenize 20b: %v, want %v (one id per byte with the stand-in)", got.IDs, w)
	}
	start, ok := want.SpecialID("<|start|>")
	if !ok {
		t.Fatal("the fixture tokenizer has no <|start|>")
	}
	r = e.mustRunStdin(text, "tokenize", "20b", "--special")
	if ids := parseSpaceIDs(t, r.stdout); !slices.Contains(ids, start) {
		t.Fatalf("--special: %v lacks <|start|> = %d", ids, start)
	}
	r = e.mustRunStdin(fmtIDs(got.IDs), "tokenize", "20b", "--decode")
	if r.stdout != text {
		t.Fatalf("--decode: %q", r.stdout)
	}

	// A cached model without tokenizer.json: a clear error, exit 3.
	e2 := newEnv(t, 1<<20, hubtest.Options{})
	e2.mustRun("pull", "20b", "--exclude", "tokenizer.json", "--no-convert")
	r = e2.wantCode(exitNotFound, "tokenize", "20b")
	if !strings.Contains(r.stderr, "has no tokenizer.json") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
		t.Errorf("model without tokenizer.json: %q", r.stderr)
	}
}
