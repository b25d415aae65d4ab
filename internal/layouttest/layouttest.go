// Package layouttest gives tests a GPU-ready layout (convert.Layout) of a
// checkpoint, the way the engines load one.
//
// It is apart from internal/fixture because convert's own tests import
// internal/fixture: fixture cannot import convert.
package layouttest

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/internal/fixture"
	"github.com/gptoss/gptoss/internal/testproc"
)

// Open converts the checkpoint in dir (the HF or the original layout) into
// a layout file under tb.TempDir and opens it; it is closed at cleanup.
func Open(tb testing.TB, dir string) *convert.Layout {
	tb.Helper()
	ck, err := convert.OpenCheckpoint(dir)
	if err != nil {
		tb.Fatal(err)
	}
	defer ck.Close()
	cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "model.layout")
	if _, _, err := convert.WriteLayoutFile(path, ck, cfg, "sha256:test"); err != nil {
		tb.Fatal(err)
	}
	l, err := convert.OpenLayout(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// Tiny is Open of the cached fixture checkpoint (fixture.Tiny: random
// weights, tiny dims).
func Tiny(tb testing.TB) *convert.Layout {
	tb.Helper()
	return Open(tb, fixture.Cached(tb, fixture.Tiny()))
}

// GoldenDir is testdata/golden/tiny (OpenAI's reference output on a tiny
// checkpoint; its original/ holds the same weights in OpenAI's layout),
// found from the test's package directory.
func GoldenDir(tb testing.TB) string {
	tb.Helper()
	root, err := testproc.RepoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	return filepath.Join(root, "testdata", "golden", "tiny")
}

// GoldenData is golden.json: the reference's input tokens, its float32
// logits at every position, and its greedy continuation.
type GoldenData struct {
	Tokens    []int32     `json:"tokens"`
	LogitsF32 [][]float64 `json:"logits_f32"`
	// LogitsBF16: the same reference run in BF16 (how far BF16
	// arithmetic alone moves the logits)
	LogitsBF16 [][]float64 `json:"logits_bf16"`
	Greedy     struct {
		Prompt    []int32 `json:"prompt"`
		Generated []int32 `json:"generated"`
	} `json:"greedy_f32"`
}

// Golden reads golden.json and checks it holds a logit row per token and a
// greedy continuation.
func Golden(tb testing.TB) GoldenData {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(GoldenDir(tb), "golden.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var g GoldenData
	if err := json.Unmarshal(b, &g); err != nil {
		tb.Fatal(err)
	}
	if len(g.Tokens) == 0 || len(g.LogitsF32) != len(g.Tokens) || len(g.LogitsBF16) != len(g.Tokens) || len(g.Greedy.Generated) == 0 {
		tb.Fatalf("golden.json: %d tokens, %d logit rows, %d greedy tokens", len(g.Tokens), len(g.LogitsF32), len(g.Greedy.Generated))
	}
	return g
}

// BF16Spread is the largest |logits_bf16 − logits_f32| of the reference:
// what running OpenAI's implementation in BF16 rather than float32 moves a
// logit. A lossy option (8-bit weights) is held to it.
func (g *GoldenData) BF16Spread() float64 {
	worst := 0.0
	for p := range g.LogitsF32 {
		for i, v := range g.LogitsF32[p] {
			worst = max(worst, math.Abs(g.LogitsBF16[p][i]-v))
		}
	}
	return worst
}
