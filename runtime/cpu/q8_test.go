package cpu

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gptoss/gptoss/internal/layouttest"
	"github.com/gptoss/gptoss/runtime"
	"github.com/gptoss/gptoss/runtime/sample"
)

// MatVecQ8 against a float64 product of the dequantized matrix, and the
// quantized product against the BF16 one (the quantization's own error).
func TestMatVecQ8(t *testing.T) { bothKernels(t, testMatVecQ8) }

func testMatVecQ8(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, sh := range [][2]int{{7, 32}, {64, 2880}, {33, 4096}} {
		rows, cols := sh[0], sh[1]
		w := randBF16(r, rows*cols, 0.02)
		bias := randBF16(r, rows, 0.1)
		x := randF32(r, cols, 1)
		nq, nd := runtime.Q8Sizes(rows, cols)
		q, d := make([]byte, nq), make([]byte, nd)
		if err := runtime.QuantizeQ8(q, d, w, rows, cols, 2); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, rows)
		MatVecQ8(got, q, d, bias, x, rows, cols)
		bf := make([]float32, rows)
		MatVecBF16(bf, w, bias, x, rows, cols)
		worstQ, worstBF := 0.0, 0.0
		for i := 0; i < rows; i++ {
			want, norm := float64(bf16(bias[2*i], bias[2*i+1])), 0.0
			for c := 0; c < cols; c++ {
				v := float64(int8(q[i*cols+c])) * float64(runtime.Q8Scale(d[i*cols/16:], c/32)) * float64(x[c])
				want += v
				norm += math.Abs(v)
			}
			worstQ = max(worstQ, math.Abs(float64(got[i])-want)/norm)
			worstBF = max(worstBF, math.Abs(float64(got[i]-bf[i]))/math.Sqrt(float64(cols))/0.02)
		}
		// float32 sums: a few ulps of Σ|terms|; the quantization moves a
		// row's product by ~(max|w|/254/√3)·‖x‖ ≈ 0.004·0.02·√cols
		if worstQ > 1e-5 || worstBF > 0.02 {
			t.Errorf("%d×%d: relative error %.2g against the dequantized product, %.2g against BF16", rows, cols, worstQ, worstBF)
		}
		t.Logf("%d×%d: %.2g against the dequantized product, %.2g (of √cols·σ) against BF16", rows, cols, worstQ, worstBF)
	}
}

// The golden model with Options.DecodeQ8: prefill (several tokens) is
// unchanged, one-token forwards use the Q8 matrices and stay within the
// quantization's error of OpenAI's logits, and greedy decoding keeps the
// reference's tokens.
func TestGoldenQ8(t *testing.T) {
	g := layouttest.Golden(t)
	ctx := context.Background()
	l := layouttest.Open(t, goldenDir)
	e, _ := runtime.Pick("cpu", "")
	mq, err := e.Load(ctx, l, runtime.Options{Threads: 2, DecodeQ8: true})
	if err != nil {
		t.Fatal(err)
	}
	defer mq.Close()
	mb := loadModel(t, l, 2)
	V := mq.Config().VocabSize
	pre := func(m runtime.Model) []float32 {
		s, _ := m.NewSequence(64)
		lg, err := s.Forward(ctx, g.Tokens, true)
		if err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), lg...)
	}
	a, b := pre(mq), pre(mb)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("prefill logit %d: %g with q8 decode weights, %g without", i, a[i], b[i])
		}
	}
	dq, _ := mq.NewSequence(64)
	db, _ := mb.NewSequence(64)
	worst, moved := 0.0, 0.0
	for p, tok := range g.Tokens {
		lq, err := dq.Forward(ctx, []int32{tok}, false)
		if err != nil {
			t.Fatal(err)
		}
		lb, _ := db.Forward(ctx, []int32{tok}, false)
		worst = max(worst, maxDiff(lq, g.LogitsF32[p]))
		for i := range lq {
			moved = max(moved, math.Abs(float64(lq[i]-lb[i])))
		}
	}
	t.Logf("decode with q8: max |Δlogit| %.2g against the reference (BF16 decode moved %.2g by quantizing)", worst, moved)
	if moved == 0 {
		t.Fatal("q8 decode gave the BF16 logits: the Q8 matrices were not used")
	}
	// 8-bit weights are held to what BF16 arithmetic moves the reference's
	// own logits (0.29 on this model, whose logits reach 4.7)
	if tol := g.BF16Spread(); worst > tol {
		t.Fatalf("decode with q8: max |logit − reference| = %g > %g (the reference's BF16 spread)", worst, tol)
	}
	next := sample.Argmax(a[(len(g.Tokens)-1)*V:])
	s, _ := mq.NewSequence(64)
	s.Forward(ctx, g.Tokens, false)
	for i, want := range g.Greedy.Generated {
		if next != want {
			t.Fatalf("greedy token %d: %d, want %d", i, next, want)
		}
		lg, err := s.Forward(ctx, []int32{next}, false)
		if err != nil {
			t.Fatal(err)
		}
		next = sample.Argmax(lg)
	}
}
