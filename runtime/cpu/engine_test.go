package cpu

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/internal/layouttest"
	"github.com/gptoss/gptoss/runtime"
	"github.com/gptoss/gptoss/runtime/sample"
)

const goldenDir = "../../testdata/golden/tiny"

func loadModel(t testing.TB, l *convert.Layout, threads int) runtime.Model {
	t.Helper()
	e, err := runtime.Pick("cpu", "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.Load(context.Background(), l, runtime.Options{Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func maxDiff(got []float32, want []float64) float64 {
	worst := 0.0
	for i := range want {
		d := math.Abs(float64(got[i]) - want[i])
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		worst = max(worst, d)
	}
	return worst
}

func TestGolden(t *testing.T) {
	g := layouttest.Golden(t)
	ctx := context.Background()
	for _, layout := range []struct{ name, dir string }{{"hf", goldenDir}, {"original", filepath.Join(goldenDir, "original")}} {
		t.Run(layout.name, func(t *testing.T) {
			bothKernels(t, func(t *testing.T) {
				m := loadModel(t, layouttest.Open(t, layout.dir), 3)
				V := m.Config().VocabSize
				const tol = 1e-3
				// One prefill with every position's logits.
				seq, err := m.NewSequence(64)
				if err != nil {
					t.Fatal(err)
				}
				logits, err := seq.Forward(ctx, g.Tokens, true)
				if err != nil {
					t.Fatal(err)
				}
				if len(logits) != len(g.Tokens)*V {
					t.Fatalf("%d logits, want %d", len(logits), len(g.Tokens)*V)
				}
				worst := 0.0
				for p := range g.Tokens {
					d := maxDiff(logits[p*V:(p+1)*V], g.LogitsF32[p])
					if d > tol {
						t.Fatalf("prefill position %d: max |logit − reference| = %g > %g", p, d, tol)
					}
					worst = max(worst, d)
				}
				t.Logf("prefill: max |Δlogit| %.2g", worst)
				// Token by token.
				dec, _ := m.NewSequence(64)
				worst = 0
				for p, tok := range g.Tokens {
					lg, err := dec.Forward(ctx, []int32{tok}, false)
					if err != nil {
						t.Fatal(err)
					}
					if len(lg) != V {
						t.Fatalf("%d logits, want %d", len(lg), V)
					}
					d := maxDiff(lg, g.LogitsF32[p])
					if d > tol {
						t.Fatalf("decode position %d: max |logit − reference| = %g > %g", p, d, tol)
					}
					worst = max(worst, d)
				}
				t.Logf("decode: max |Δlogit| %.2g", worst)
				// Greedy continuation after the prefill.
				next := sample.Argmax(logits[(len(g.Tokens)-1)*V:])
				var got []int32
				for range g.Greedy.Generated {
					got = append(got, next)
					lg, err := seq.Forward(ctx, []int32{next}, false)
					if err != nil {
						t.Fatal(err)
					}
					next = sample.Argmax(lg)
				}
				for i := range got {
					if got[i] != g.Greedy.Generated[i] {
						t.Fatalf("greedy continuation %v, want %v", got, g.Greedy.Generated)
					}
				}
			})
		})
	}
}
