package main

// The CUDA engine through the binary. Where it cannot run (no driver, no
// GPU, a build without the kernels), --engine cuda is refused with exit 9
// and the reason, and auto runs the CPU engine. Where it can (always under
// GPTOSS_REQUIRE_GPU=1, as scripts/gpu-check.sh sets), the golden model's
// greedy tokens on cuda are OpenAI's reference's and its logits are within
// 2e-2 of the reference.

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/internal/layouttest"
	"github.com/gptoss/gptoss/runtime/cuda"
)

func TestCUDAEngineThroughCLI(t *testing.T) {
	g := layouttest.Golden(t)
	e := newRepoEnv(t, "../../testdata/golden/tiny")
	e.mustRun("pull", "20b")
	runArgs := func(engine string) []string {
		return []string{"run", "20b", "--tokens", idList(g.Greedy.Prompt), "--max-tokens", fmt.Sprint(len(g.Greedy.Generated)),
			"--temperature", "0", "--json", "--engine", engine}
	}
	var gen struct {
		Engine    string  `json:"engine"`
		Generated []int32 `json:"generated"`
	}
	if err := (cuda.Engine{}).Available(); err != nil && os.Getenv("GPTOSS_REQUIRE_GPU") != "1" {
		r := e.wantCode(9, runArgs("cuda")...)
		if !strings.Contains(r.stderr, "cuda") || !strings.Contains(r.stderr, "unavailable") {
			t.Errorf("--engine cuda without CUDA: stderr %q does not say why", r.stderr)
		}
		r = e.mustRun(runArgs("auto")...)
		if err := json.Unmarshal([]byte(r.stdout), &gen); err != nil || gen.Engine != "cpu" {
			t.Fatalf("auto without CUDA: %v, engine %q\n%s", err, gen.Engine, r.stdout)
		}
		return
	}
	r := e.mustRun(runArgs("cuda")...)
	if err := json.Unmarshal([]byte(r.stdout), &gen); err != nil {
		t.Fatalf("run --json: %v\n%s", err, r.stdout)
	}
	if gen.Engine != "cuda" || idList(gen.Generated) != idList(g.Greedy.Generated) {
		t.Fatalf("cuda greedy: engine %q tokens %v, reference %v", gen.Engine, gen.Generated, g.Greedy.Generated)
	}
	// GPTOSS_CUDA_DEC=auto: the first run measures the decode versions and
	// keeps the choice under $GPTOSS_HOME/tune, the second reads it; both
	// decode the reference's tokens and say so in the kernels line
	e.extra = append(e.extra, "GPTOSS_CUDA_DEC=auto")
	for i, want := range []string{"(tuned: v16 ", "(tuned, cached: v16 "} {
		var tuned struct {
			Generated []int32 `json:"generated"`
			Kernels   string  `json:"kernels"`
		}
		r := e.mustRun(runArgs("cuda")...)
		if err := json.Unmarshal([]byte(r.stdout), &tuned); err != nil {
			t.Fatalf("run --json: %v\n%s", err, r.stdout)
		}
		t.Logf("auto, load %d: %s", i+1, tuned.Kernels)
		if !strings.HasPrefix(tuned.Kernels, "decode v") || !strings.Contains(tuned.Kernels, want) ||
			idList(tuned.Generated) != idList(g.Greedy.Generated) {
			t.Fatalf("auto, load %d: kernels %q (want %q), tokens %v, reference %v", i+1, tuned.Kernels, want, tuned.Generated, g.Greedy.Generated)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(e.home, "tune", "cuda-*.json")); len(files) != 1 {
		t.Fatalf("tuning files under GPTOSS_HOME/tune: %v, want one", files)
	}
	e.extra = e.extra[:len(e.extra)-1]
	// --decode-weights q8: the Q8 decode kernels, the reference's tokens, and
	// a one-token forward's logits the CPU engine's q8 ones within 2e-2
	var q8 struct {
		Generated []int32 `json:"generated"`
		Kernels   string  `json:"kernels"`
	}
	r = e.mustRun(append(runArgs("cuda"), "--decode-weights", "q8")...)
	if err := json.Unmarshal([]byte(r.stdout), &q8); err != nil {
		t.Fatalf("run --json: %v\n%s", err, r.stdout)
	}
	if q8.Kernels != "decode v16 q8" || idList(q8.Generated) != idList(g.Greedy.Generated) {
		t.Fatalf("q8: kernels %q, tokens %v; want \"decode v16 q8\" and the reference's %v", q8.Kernels, q8.Generated, g.Greedy.Generated)
	}
	one := func(engine string) []float64 {
		r := e.mustRun("logits", "20b", "--tokens", idList(g.Tokens[:1]), "--json", "--engine", engine, "--decode-weights", "q8")
		var out struct {
			Logits [][]float64 `json:"logits"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out.Logits) != 1 {
			t.Fatalf("logits --engine %s --decode-weights q8: %v\n%s", engine, err, r.stdout)
		}
		return out.Logits[0]
	}
	gq, cq := one("cuda"), one("cpu")
	dq := 0.0
	for i := range gq {
		dq = math.Max(dq, math.Abs(gq[i]-cq[i]))
	}
	t.Logf("q8 one-token logits: cuda − cpu %.3g", dq)
	if dq > 2e-2 {
		t.Fatalf("q8 one-token logits: cuda and cpu differ by %.3g", dq)
	}
	r = e.mustRun("logits", "20b", "--tokens", idList(g.Tokens), "--all", "--json", "--engine", "cuda")
	var got struct {
		Engine string      `json:"engine"`
		Logits [][]float64 `json:"logits"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Engine != "cuda" || len(got.Logits) != len(g.Tokens) {
		t.Fatalf("logits --engine cuda: %v, engine %q, %d rows", err, got.Engine, len(got.Logits))
	}
	worst := 0.0
	for p, row := range got.Logits {
		for i, v := range row {
			worst = math.Max(worst, math.Abs(v-g.LogitsF32[p][i]))
		}
	}
	t.Logf("cuda: largest difference from the float32 reference: %.3g", worst)
	if worst > 2e-2 {
		t.Fatalf("cuda logits differ from the reference by %.3g (limit 2e-2)", worst)
	}
}
