package main

// End-to-end tests of run and logits: the real binary, a model pulled from
// the test hub, the CPU engine.

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/internal/fixture"
	"github.com/gptoss/gptoss/internal/hubtest"
	"github.com/gptoss/gptoss/internal/layouttest"
	"github.com/gptoss/gptoss/runtime/chat"
)

// newRepoEnv serves dir as openai/gpt-oss-20b on a fresh test hub, with an
// empty cache.
func newRepoEnv(t *testing.T, dir string) *env {
	t.Helper()
	hub := hubtest.New(hubtest.Options{CDNHost: "localhost"})
	t.Cleanup(hub.Close)
	repo, err := hub.AddRepo(repoID, dir)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, hub: hub, repo: repo, home: filepath.Join(t.TempDir(), "home"), src: dir}
}

func idList(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ",")
}

// The tiny real-format checkpoint with OpenAI's reference logits, pulled
// from the test hub by the binary: logits at every position within 1e-3 of
// the float32 reference, and greedy generation token for token.
func TestGoldenLogitsAndGreedyThroughCLI(t *testing.T) {
	g := layouttest.Golden(t)
	e := newRepoEnv(t, "../../testdata/golden/tiny")
	e.mustRun("pull", "20b")

	r := e.mustRun("logits", "20b", "--tokens", idList(g.Tokens), "--all", "--json", "--engine", "cpu")
	var got struct {
		Engine    string      `json:"engine"`
		Positions []int       `json:"positions"`
		Logits    [][]float64 `json:"logits"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("logits --json: %v\n%s", err, r.stdout)
	}
	if got.Engine != "cpu" || len(got.Logits) != len(g.Tokens) || len(got.Positions) != len(g.Tokens) {
		t.Fatalf("engine %q, %d rows, %d positions; want cpu, %d", got.Engine, len(got.Logits), len(got.Positions), len(g.Tokens))
	}
	worst := 0.0
	for p, row := range got.Logits {
		want := g.LogitsF32[p]
		if len(row) != len(want) || got.Positions[p] != p {
			t.Fatalf("position %d (%d): %d logits, want %d", got.Positions[p], p, len(row), len(want))
		}
		for i := range row {
			d := math.Abs(row[i] - want[i])
			worst = math.Max(worst, d)
			if d > 1e-3 {
				t.Fatalf("position %d logit %d: %v, reference %v", p, i, row[i], want[i])
			}
		}
	}
	t.Logf("largest difference from the float32 reference: %.2g", worst)

	// Without --all: only the last position; text output lists the top ids.
	r = e.mustRun("logits", "20b", "--tokens", idList(g.Tokens), "--json")
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got.Logits) != 1 || got.Positions[0] != len(g.Tokens)-1 {
		t.Fatalf("logits without --all: %v %v", err, got.Positions)
	}
	r = e.mustRun("logits", "20b", "--tokens", idList(g.Tokens), "--top", "3")
	last := g.LogitsF32[len(g.Tokens)-1]
	best := 0
	for i, v := range last {
		if v > last[best] {
			best = i
		}
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("position %d (token %d): %d:", len(g.Tokens)-1, g.Tokens[len(g.Tokens)-1], best)) {
		t.Errorf("text output does not lead with the argmax %d:\n%s", best, r.stdout)
	}

	var gen struct {
		Prompt    []int32 `json:"prompt"`
		Generated []int32 `json:"generated"`
		Finish    string  `json:"finish_reason"`
	}
	// Greedy generation, from both published layouts of the checkpoint:
	// OpenAI's original/ (fused qkv, block.N names) is the same model.
	e.mustRun("pull", "20b", "--format", "original")
	for _, format := range []string{"hf", "original"} {
		r = e.mustRun("run", "20b", "--format", format, "--tokens", idList(g.Greedy.Prompt), "--max-tokens", fmt.Sprint(len(g.Greedy.Generated)), "--temperature", "0", "--json")
		if err := json.Unmarshal([]byte(r.stdout), &gen); err != nil {
			t.Fatalf("run --json: %v\n%s", err, r.stdout)
		}
		if idList(gen.Generated) != idList(g.Greedy.Generated) || gen.Finish != "length" {
			t.Errorf("%s greedy: %v (%s), reference %v", format, gen.Generated, gen.Finish, g.Greedy.Generated)
		}
	}
	// --format picks the cached entry: one that was not pulled is not found.
	e.wantCode(exitNotFound, "run", "20b", "--format", "metal", "--tokens", "1", "--max-tokens", "1")
	// The original layout's logits too, at every position.
	r = e.mustRun("logits", "20b", "--format", "original", "--tokens", idList(g.Tokens), "--all", "--json", "--engine", "cpu")
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got.Logits) != len(g.Tokens) {
		t.Fatalf("original logits --json: %v (%d rows)", err, len(got.Logits))
	}
	for p, row := range got.Logits {
		for i := range row {
			if d := math.Abs(row[i] - g.LogitsF32[p][i]); d > 1e-3 {
				t.Fatalf("original layout, position %d logit %d: %v, reference %v", p, i, row[i], g.LogitsF32[p][i])
			}
		}
	}
	// A stop token ends the generation and is reported.
	stop := g.Greedy.Generated[2]
	r = e.mustRun("run", "20b", "--tokens", idList(g.Greedy.Prompt), "--max-tokens", "8", "--temperature", "0", "--stop-tokens", fmt.Sprint(stop), "--json")
	if err := json.Unmarshal([]byte(r.stdout), &gen); err != nil || idList(gen.Generated) != idList(g.Greedy.Generated[:3]) || gen.Finish != "stop" {
		t.Errorf("with stop token %d: %v (%s), %v", stop, gen.Generated, gen.Finish, err)
	}
	// Seeded sampling is reproducible through the CLI.
	a := e.mustRun("run", "20b", "--tokens", "1,2,3", "--max-tokens", "12", "--seed", "7", "--json").stdout
	b := e.mustRun("run", "20b", "--tokens", "1,2,3", "--max-tokens", "12", "--seed", "7", "--json").stdout
	if a != b {
		t.Errorf("same seed, different output:\n%s\n%s", a, b)
	}

	// Bad input: one clear line, the usage exit code.
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"logits", "20b"}, "--tokens is required"},
		{[]string{"logits", "20b", "--tokens", "1,x"}, `"x" is not a token id`},
		{[]string{"logits", "20b", "--tokens", "5000"}, "out of range"},
		{[]string{"run", "20b", "--tokens", "1", "--engine", "tpu"}, "--engine"},
		{[]string{"run", "20b", "--tokens", "1", "--temperature", "-1"}, "temperature"},
		{[]string{"run", "20b", "--tokens", "1", "--top-p", "2"}, "top_p"},
		{[]string{"run", "20b", "-p", "hi", "--reasoning", "extreme"}, "reasoning effort"},
	} {
		r := e.wantCode(exitUsage, c.args...)
		if !strings.Contains(r.stderr, c.msg) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("gptoss %v: stderr %q, want one line with %q", c.args, r.stderr, c.msg)
		}
	}
	e.wantCode(exitNotFound, "logits", "120b", "--tokens", "1")
	// The golden checkpoint has no tokenizer.json: chat needs one, and says so.
	r = e.wantCode(exitError, "run", "20b", "-p", "hi")
	if !strings.Contains(r.stderr, "tokenizer.json") {
		t.Errorf("run without a tokenizer: %s", r.stderr)
	}
}

// run -p on a fixture model (random weights, the byte-level stand-in
// tokenizer): the Harmony mapping with a scripted completion, and plain
// sampling, which answers nonsense but answers.
func TestRunChatThroughCLI(t *testing.T) {
	e := newRepoEnv(t, fixture.Cached(t, fixture.Tiny()))
	e.mustRun("pull", "20b")

	script := filepath.Join(t.TempDir(), "script.json")
	os.WriteFile(script, []byte(`[
	  {"when": "weather", "reply": "<|channel|>analysis<|message|>The user asks about weather.<|end|><|start|>assistant<|channel|>final<|message|>Sunny, 20 °C.<|return|>"},
	  {"when": "", "reply": "<|channel|>final<|message|>Fine.<|return|>"}
	]`), 0o644)
	e.extra = []string{chat.ScriptEnv + "=1"}
	r := e.mustRun("run", "20b", "-p", "What is the weather?", "--script-file", script, "--json", "--reasoning", "low", "--system", "Be brief.")
	var ans struct {
		Reasoning, Content string
		Finish             string `json:"finish_reason"`
		Usage              map[string]int
	}
	if err := json.Unmarshal([]byte(r.stdout), &ans); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if ans.Reasoning != "The user asks about weather." || ans.Content != "Sunny, 20 °C." || ans.Finish != "stop" || ans.Usage["prompt_tokens"] == 0 || ans.Usage["completion_tokens"] == 0 {
		t.Errorf("answer %+v", ans)
	}
	// The original format (OpenAI's checkpoint, no tokenizer.json) runs with
	// the tokenizer of the hf format in the cache.
	e.mustRun("pull", "20b", "--format", "original")
	r = e.mustRun("run", "20b", "--format", "original", "-p", "What is the weather?", "--script-file", script, "--json")
	if err := json.Unmarshal([]byte(r.stdout), &ans); err != nil || ans.Content != "Sunny, 20 °C." {
		t.Errorf("original format: %+v %v", ans, err)
	}
	// Text mode: the answer on stdout, the reasoning on stderr (not a tty);
	// --hide-reasoning drops it.
	r = e.mustRun("run", "20b", "-p", "weather?", "--script-file", script)
	if strings.TrimSpace(r.stdout) != "Sunny, 20 °C." || !strings.Contains(r.stderr, "The user asks about weather.") {
		t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
	}
	r = e.mustRun("run", "20b", "-p", "weather?", "--script-file", script, "--hide-reasoning")
	if strings.Contains(r.stderr, "The user asks") {
		t.Errorf("--hide-reasoning still shows it: %q", r.stderr)
	}
	// Interactive: two turns on stdin, the history carried between them.
	c := e.cmd(t.Context(), "run", "20b", "--script-file", script, "--json")
	c.Stdin = strings.NewReader("How is the weather?\n\nAnd tomorrow?\n")
	out, err := c.Output()
	if err != nil {
		t.Fatalf("interactive run: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("want two answers, got:\n%s", out)
	}
	var first, second struct {
		Content string
		Usage   map[string]int
	}
	json.Unmarshal([]byte(lines[0]), &first)
	json.Unmarshal([]byte(lines[1]), &second)
	if first.Content != "Sunny, 20 °C." || second.Content != "Fine." {
		t.Errorf("answers %q, %q", first.Content, second.Content)
	}
	// The second prompt holds the first turn (without its analysis), and
	// reuses the cached prefix.
	if second.Usage["prompt_tokens"] <= first.Usage["prompt_tokens"] || second.Usage["cached_tokens"] < first.Usage["prompt_tokens"] {
		t.Errorf("usage %v then %v: history not carried or prefix not reused", first.Usage, second.Usage)
	}

	// The hook is refused without the environment variable.
	e.extra = nil
	if r := e.wantCode(exitUsage, "run", "20b", "-p", "hi", "--script-file", script); !strings.Contains(r.stderr, chat.ScriptEnv) {
		t.Errorf("stderr %q", r.stderr)
	}
	// Sampling for real: random weights, but an answer and exit 0.
	r = e.mustRun("run", "20b", "-p", "Hello!", "--max-tokens", "20", "--seed", "3", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &ans); err != nil || ans.Usage["completion_tokens"] != 20 || ans.Finish != "length" {
		t.Errorf("sampled answer %+v (%v)", ans, err)
	}
}

// --decode-weights q8 through the binary on the CPU engine: a one-token
// forward (what decoding runs) moves the logits by the quantization, no
// further from OpenAI's reference than its own BF16 run is; greedy
// generation keeps the reference's tokens and says it ran q8; a prompt of
// several tokens is unchanged; a bad value is a usage error.
func TestDecodeQ8ThroughCLI(t *testing.T) {
	g := layouttest.Golden(t)
	e := newRepoEnv(t, "../../testdata/golden/tiny")
	e.mustRun("pull", "20b")
	type logitsOut struct {
		Logits [][]float64 `json:"logits"`
	}
	logits := func(tokens []int32, weights string) [][]float64 {
		r := e.mustRun("logits", "20b", "--tokens", idList(tokens), "--all", "--json", "--engine", "cpu", "--decode-weights", weights)
		var out logitsOut
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out.Logits) != len(tokens) {
			t.Fatalf("logits --decode-weights %s: %v, %d rows\n%s", weights, err, len(out.Logits), r.stdout)
		}
		return out.Logits
	}
	diff := func(a, b []float64) float64 {
		d := 0.0
		for i := range a {
			d = math.Max(d, math.Abs(a[i]-b[i]))
		}
		return d
	}
	one := g.Tokens[:1]
	q, b := logits(one, "q8")[0], logits(one, "bf16")[0]
	moved, fromRef := diff(q, b), diff(q, g.LogitsF32[0])
	t.Logf("one-token forward with q8: moved %.3g from bf16, %.3g from the reference (its BF16 spread %.3g)", moved, fromRef, g.BF16Spread())
	if moved == 0 || fromRef > g.BF16Spread() {
		t.Fatalf("q8: moved %.3g from bf16 (want > 0), %.3g from the reference (limit %.3g)", moved, fromRef, g.BF16Spread())
	}
	if d := diff(logits(g.Tokens, "q8")[3], logits(g.Tokens, "bf16")[3]); d != 0 {
		t.Fatalf("a prompt of several tokens moved by %.3g with q8 (prefill stays bf16)", d)
	}
	r := e.mustRun("run", "20b", "--tokens", idList(g.Greedy.Prompt), "--max-tokens", fmt.Sprint(len(g.Greedy.Generated)),
		"--temperature", "0", "--json", "--engine", "cpu", "--decode-weights", "q8")
	var gen struct {
		Generated []int32 `json:"generated"`
		Kernels   string  `json:"kernels"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &gen); err != nil {
		t.Fatalf("run --json: %v\n%s", err, r.stdout)
	}
	if gen.Kernels != "decode q8" || idList(gen.Generated) != idList(g.Greedy.Generated) {
		t.Fatalf("q8 run: kernels %q, tokens %v; want \"decode q8\" and the reference's %v", gen.Kernels, gen.Generated, g.Greedy.Generated)
	}
	r = e.wantCode(exitUsage, "run", "20b", "--tokens", "1", "--engine", "cpu", "--decode-weights", "q4")
	if !strings.Contains(r.stderr, "--decode-weights") {
		t.Errorf("--decode-weights q4: stderr %q does not name the flag", r.stderr)
	}
}
