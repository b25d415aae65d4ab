//go:build cuda

package cuda

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/internal/layouttest"
	"github.com/gptoss/gptoss/runtime"
	"github.com/gptoss/gptoss/runtime/cpu"
	"github.com/gptoss/gptoss/runtime/sample"
)

const goldenDir = "../../testdata/golden/tiny"

func loadBoth(t *testing.T, l *convert.Layout) (gm *Model, cm runtime.Model) {
	t.Helper()
	gpu(t)
	gm, err := Load(context.Background(), l, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gm.Close() })
	cm, err = cpu.Engine{}.Load(context.Background(), l, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cm.Close() })
	return gm, cm
}

func maxAbsDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		d := math.Abs(float64(a[i] - b[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		m = max(m, d)
	}
	return m
}

func newSeq(t *testing.T, m runtime.Model, n int) runtime.Sequence {
	t.Helper()
	s, err := m.NewSequence(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestGolden: the tiny real-format checkpoint through the CUDA engine, every
// position's logits against the CPU engine (≤ 2e-2) and OpenAI's reference,
// then greedy decoding (CUDA graph) must give the same tokens as both.
func TestGolden(t *testing.T) {
	g := layouttest.Golden(t)
	for _, c := range []struct {
		name, dir string
		fused     bool // the fused one-token step (GPTOSS_CUDA_FUSED)
		moeTC     bool // tensor-core MoE and GEMM for prefill (GPTOSS_CUDA_MOE=tc, GPTOSS_CUDA_GEMM=tc)
		pdl       bool // programmatic dependent launch (GPTOSS_CUDA_PDL)
		dec       int  // decode kernels' version (GPTOSS_CUDA_DEC)
	}{
		{"hf", goldenDir, false, false, false, 3}, {"original", filepath.Join(goldenDir, "original"), false, false, false, 3},
		{"hf-fused", goldenDir, true, false, false, 3}, {"original-fused", filepath.Join(goldenDir, "original"), true, false, false, 3},
		{"hf-fused-tc", goldenDir, true, true, false, 3}, // + tensor-core GEMM
		{"hf-v17", goldenDir, true, true, true, 17},      // v16 with cp.async rings and half2 in the MoE
		{"original-v17", filepath.Join(goldenDir, "original"), true, true, true, 17},
		{"hf-v16", goldenDir, true, true, true, 16}, // the router folded into the out-projection
		{"original-v16", filepath.Join(goldenDir, "original"), true, true, true, 16},
		{"hf-v16-nopdl", goldenDir, true, true, false, 16},
		{"hf-v12", goldenDir, true, true, true, 12}, // the defaults
		{"original-v12", filepath.Join(goldenDir, "original"), true, true, true, 12},
		{"hf-v12-nopdl", goldenDir, true, true, false, 12},
		{"hf-v7", goldenDir, true, true, true, 7},
		{"original-v7", filepath.Join(goldenDir, "original"), true, true, true, 7},
		{"hf-v7-nopdl", goldenDir, true, true, false, 7},
		{"hf-v6", goldenDir, true, true, true, 6},
		{"hf-v3-pdl", goldenDir, true, true, true, 3},
	} {
		layout := c
		t.Run(layout.name, func(t *testing.T) {
			gm, cm := loadBoth(t, layouttest.Open(t, layout.dir))
			gm.fused = layout.fused
			gm.moeTC, gm.gemmTC = layout.moeTC, layout.moeTC
			gm.dec, gm.pdl = layout.dec, layout.pdl
			if layout.fused && !fusedOK(gm.cfg) {
				t.Fatal("the golden model's shapes are outside the fused kernels' limits")
			}
			ctx := context.Background()
			V := gm.Config().VocabSize
			gs, cs := newSeq(t, gm, 64), newSeq(t, cm, 64)
			gl, err := gs.Forward(ctx, g.Tokens, true)
			if err != nil {
				t.Fatal(err)
			}
			cl, err := cs.Forward(ctx, g.Tokens, true)
			if err != nil {
				t.Fatal(err)
			}
			if len(gl) != len(g.Tokens)*V {
				t.Fatalf("%d logits, want %d", len(gl), len(g.Tokens)*V)
			}
			dCPU := maxAbsDiff(gl, cl)
			ref := make([]float32, 0, len(gl))
			for _, row := range g.LogitsF32 {
				for _, v := range row {
					ref = append(ref, float32(v))
				}
			}
			dRef := maxAbsDiff(gl, ref)
			t.Logf("golden %s: max |logit − CPU engine| = %.3g, max |logit − reference f32| = %.3g", layout.name, dCPU, dRef)
			if dCPU > 2e-2 || dRef > 2e-2 {
				t.Fatalf("logits differ: %.3g from the CPU engine, %.3g from the reference (limit 2e-2)", dCPU, dRef)
			}

			// greedy decoding, one token at a time (the CUDA graph path), on
			// both engines
			gs2, cs2 := newSeq(t, gm, 64), newSeq(t, cm, 64)
			if err := gs2.(*Sequence).GraphErr; err != nil {
				t.Fatalf("decoding without a CUDA graph: %v", err)
			}
			if layout.pdl && gm.d.pdlOK() && (gs2.(*Sequence).PDLErr != nil || !gs2.(*Sequence).s.pdl) {
				t.Fatalf("the decode graph was captured without programmatic dependent launch: %v", gs2.(*Sequence).PDLErr)
			}
			gnext, cnext := mustForward(t, gs2, g.Greedy.Prompt), mustForward(t, cs2, g.Greedy.Prompt)
			var gotG, gotC []int32
			for range g.Greedy.Generated {
				tg, tc := sample.Argmax(gnext), sample.Argmax(cnext)
				dev, err := gs2.(*Sequence).Greedy()
				if err != nil {
					t.Fatal(err)
				}
				if dev != tg {
					t.Fatalf("device argmax %d, host argmax %d", dev, tg)
				}
				// device sampling with top-k 1 is the argmax too
				if st, ok, err := gs2.(*Sequence).SampleDevice(sample.Params{Temperature: 0.8, TopK: 1}, 0.5); err != nil || !ok || st != tg {
					t.Fatalf("device top-k 1 sample: %d ok=%v err=%v, argmax %d", st, ok, err, tg)
				}
				gotG, gotC = append(gotG, tg), append(gotC, tc)
				gnext, cnext = mustForward(t, gs2, []int32{tg}), mustForward(t, cs2, []int32{tc})
				if d := maxAbsDiff(gnext, cnext); d > 2e-2 {
					t.Fatalf("decode step %d: logits differ from the CPU engine by %.3g", len(gotG), d)
				}
			}
			if !equal(gotG, gotC) || !equal(gotG, g.Greedy.Generated) {
				t.Fatalf("greedy tokens: cuda %v, cpu %v, reference %v", gotG, gotC, g.Greedy.Generated)
			}
		})
	}
}

func mustForward(t *testing.T, s runtime.Sequence, toks []int32) []float32 {
	t.Helper()
	out, err := s.Forward(context.Background(), toks, false)
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), out...)
}

func equal(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLongSequence: a prompt longer than one prefill chunk and many sliding
// windows, then decode steps with and without the CUDA graph, and Truncate
// to reuse a prefix — all against the CPU engine.
func TestLongSequence(t *testing.T) {
	gm, cm := loadBoth(t, layouttest.Tiny(t))
	ctx := context.Background()
	V := gm.Config().VocabSize
	toks := make([]int32, 600)
	for i := range toks {
		toks[i] = int32((i*7919 + 13) % (V - 16))
	}
	gs, cs := newSeq(t, gm, 1024), newSeq(t, cm, 1024)
	gl, cl := mustForward(t, gs, toks[:590]), mustForward(t, cs, toks[:590])
	if d := maxAbsDiff(gl, cl); d > 2e-2 {
		t.Fatalf("after a 590-token prefill: max |Δlogit| %.3g", d)
	}
	for i := 590; i < 600; i++ {
		gl, cl = mustForward(t, gs, toks[i:i+1]), mustForward(t, cs, toks[i:i+1])
		if d := maxAbsDiff(gl, cl); d > 2e-2 {
			t.Fatalf("decode at %d: max |Δlogit| %.3g", i, d)
		}
	}
	// back to 595 and forward again: same logits as the first time
	if err := gs.Truncate(595); err != nil {
		t.Fatal(err)
	}
	if gs.Len() != 595 {
		t.Fatalf("Len %d after Truncate(595)", gs.Len())
	}
	again := mustForward(t, gs, toks[595:600])
	if d := maxAbsDiff(again, gl); d > 1e-3 {
		t.Fatalf("after Truncate the logits moved by %.3g", d)
	}
	// the same decode without a graph
	t.Setenv("GPTOSS_CUDA_GRAPH", "0")
	ns := newSeq(t, gm, 1024)
	mustForward(t, ns, toks[:599])
	direct := mustForward(t, ns, toks[599:600])
	if d := maxAbsDiff(direct, gl); d > 1e-4 {
		t.Fatalf("graph and direct decode differ by %.3g", d)
	}
	if _, err := gs.Forward(ctx, []int32{int32(V)}, false); err == nil {
		t.Fatal("a token outside the vocabulary was accepted")
	}
	if _, err := newSeq(t, gm, 8).Forward(ctx, toks[:9], false); err == nil {
		t.Fatal("9 tokens went into an 8-token sequence")
	}
}

// TestGoldenQ8: Options.DecodeQ8 on the golden model. Prefill keeps the
// BF16 weights (its logits are the CPU engine's within 2e-2); every decode
// step runs the Q8 kernels and must match the CPU engine with the same Q8
// weights (2e-2) while visibly differing from BF16 decoding (the Q8 copies
// are what ran), and greedy decoding keeps the reference's tokens.
func TestGoldenQ8(t *testing.T) {
	g := layouttest.Golden(t)
	gpu(t)
	l := layouttest.Open(t, goldenDir)
	ctx := context.Background()
	cq, err := cpu.Engine{}.Load(ctx, l, runtime.Options{DecodeQ8: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cq.Close()
	cb, err := cpu.Engine{}.Load(ctx, l, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	for _, dec := range []int{16, 17, 12} {
		t.Run(fmt.Sprintf("v%d", dec), func(t *testing.T) {
			gm, err := Load(ctx, l, runtime.Options{DecodeQ8: true})
			if err != nil {
				t.Fatal(err)
			}
			defer gm.Close()
			gm.dec = dec
			if want := fmt.Sprintf("decode v%d q8", dec); gm.Kernels() != want {
				t.Fatalf("Kernels() = %q, want %q", gm.Kernels(), want)
			}
			gs, qs, bs := newSeq(t, gm, 64), newSeq(t, cq, 64), newSeq(t, cb, 64)
			gl, ql := mustForward(t, gs, g.Greedy.Prompt), mustForward(t, qs, g.Greedy.Prompt)
			bl := mustForward(t, bs, g.Greedy.Prompt)
			if d := maxAbsDiff(gl, ql); d > 2e-2 || maxAbsDiff(ql, bl) != 0 {
				t.Fatalf("prefill: %.3g from the CPU engine; the CPU engine's q8 and BF16 prefill differ by %.3g", d, maxAbsDiff(ql, bl))
			}
			var got []int32
			worst, moved := 0.0, 0.0
			for range g.Greedy.Generated {
				tok := sample.Argmax(gl)
				if tc := sample.Argmax(ql); tc != tok {
					t.Fatalf("step %d: cuda q8 token %d, cpu q8 %d", len(got), tok, tc)
				}
				got = append(got, tok)
				gl, ql, bl = mustForward(t, gs, []int32{tok}), mustForward(t, qs, []int32{tok}), mustForward(t, bs, []int32{tok})
				worst, moved = max(worst, maxAbsDiff(gl, ql)), max(moved, maxAbsDiff(gl, bl))
			}
			t.Logf("q8 decode: max |logit − CPU engine q8| %.3g, against BF16 decoding %.3g", worst, moved)
			if worst > 2e-2 {
				t.Fatalf("decode logits differ from the CPU engine's q8 by %.3g", worst)
			}
			if moved < 5*worst {
				t.Fatalf("q8 decode is as close to BF16 decoding (%.3g) as to the CPU's q8 (%.3g): the Q8 kernels did not run", moved, worst)
			}
			if !equal(got, g.Greedy.Generated) {
				t.Fatalf("greedy tokens %v, reference %v", got, g.Greedy.Generated)
			}
		})
	}
	// tuned with q8: every version measured on the Q8 weights, the kernels
	// line says both, and the choice decodes the reference's tokens
	t.Run("auto", func(t *testing.T) {
		t.Setenv("GPTOSS_CUDA_DEC", "auto")
		gm, err := Load(ctx, l, runtime.Options{DecodeQ8: true, TuneDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		defer gm.Close()
		k := gm.Kernels()
		if gm.Tune == nil || !strings.HasPrefix(k, fmt.Sprintf("decode v%d q8 (tuned: v16 ", gm.dec)) {
			t.Fatalf("Kernels() = %q", k)
		}
		t.Logf("%s", k)
		s := newSeq(t, gm, 64)
		lg := mustForward(t, s, g.Greedy.Prompt)
		for i, want := range g.Greedy.Generated {
			if tok := sample.Argmax(lg); tok != want {
				t.Fatalf("token %d: %d, want %d (%s)", i, tok, want, k)
			}
			lg = mustForward(t, s, []int32{want})
		}
	})
	// the fused step is required
	t.Setenv("GPTOSS_CUDA_FUSED", "0")
	if m, err := Load(ctx, l, runtime.Options{DecodeQ8: true}); err == nil {
		m.Close()
		t.Fatal("q8 decode weights loaded without the fused step")
	}
}
