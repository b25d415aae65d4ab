package cpu

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/runtime"
)

// Random inputs and float64 references for every exported op.

func randBF16(r *rand.Rand, n int, sd float64) []byte {
	b := make([]byte, 2*n)
	for i := 0; i < n; i++ {
		f := math.Float32bits(float32(r.NormFloat64() * sd))
		binary.LittleEndian.PutUint16(b[2*i:], uint16(f>>16))
	}
	return b
}

func randF32(r *rand.Rand, n int, sd float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * sd)
	}
	return x
}

// randMXFP4 returns blocks and scales for rows×cols with scales near 2^-4.
func randMXFP4(r *rand.Rand, rows, cols int) ([]byte, []byte) {
	blocks := make([]byte, rows*cols/2)
	scales := make([]byte, rows*cols/32)
	for i := range blocks {
		blocks[i] = byte(r.IntN(256))
	}
	for i := range scales {
		scales[i] = byte(127 - 6 + r.IntN(5))
	}
	return blocks, scales
}

func bf64(b []byte, i int) float64 {
	return float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16))
}

func near(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst, at := 0.0, -1
	for i := range want {
		d := math.Abs(float64(got[i]) - want[i])
		if math.IsNaN(float64(got[i])) || d > tol*(1+math.Abs(want[i])) {
			t.Fatalf("%s[%d] = %v, want %v (tol %g)", what, i, got[i], want[i], tol)
		}
		if d > worst {
			worst, at = d, i
		}
	}
	_ = at
}

// bothKernels runs f with each set of kernels this machine has: AVX-512,
// AVX2 and pure Go.
func bothKernels(t *testing.T, f func(t *testing.T)) {
	savedAsm, saved512 := useAsm, useAVX512
	defer func() { useAsm, useAVX512 = savedAsm, saved512 }()
	if savedAsm {
		if saved512 {
			t.Run("avx512", f)
		}
		useAVX512 = false
		t.Run("asm", f)
	}
	useAsm = false
	t.Run("go", f)
}

func TestKernelsAgree(t *testing.T) {
	if !useAsm {
		t.Skip("no assembly kernels on this machine")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 7, 8, 9, 31, 32, 33, 64, 100, 2880} {
		w := randBF16(r, n, 1)
		x := randF32(r, 4*n, 1)
		row := make([]float32, n)
		var a4, g4 [4]float32
		if useAVX512 {
			z := dotBF16(w, x[:n])
			useAVX512 = false
			a := dotBF16(w, x[:n])
			useAVX512 = true
			if math.Abs(float64(z-a)) > 1e-5*math.Sqrt(float64(n)) {
				t.Errorf("n=%d: dotBF16 AVX-512 %v, AVX2 %v", n, z, a)
			}
		}
		useAsm = true
		saved512 := useAVX512
		useAVX512 = false
		a := dotBF16(w, x[:n])
		useAVX512 = saved512
		af := dotF32(x[:n], x[n:2*n])
		bf16Row(row, w)
		dot4F32(x[:n], x, n, &a4)
		useAsm = false
		g := dotBF16(w, x[:n])
		gf := dotF32(x[:n], x[n:2*n])
		rowG := make([]float32, n)
		bf16Row(rowG, w)
		dot4F32(x[:n], x, n, &g4)
		useAsm = true
		tol := 1e-5 * math.Sqrt(float64(n))
		if math.Abs(float64(a-g)) > tol || math.Abs(float64(af-gf)) > tol {
			t.Errorf("n=%d: dotBF16 asm %v go %v; dotF32 asm %v go %v", n, a, g, af, gf)
		}
		for i := range row {
			if row[i] != rowG[i] {
				t.Fatalf("n=%d: bf16Row[%d] asm %v go %v", n, i, row[i], rowG[i])
			}
		}
		for k := range a4 {
			if math.Abs(float64(a4[k]-g4[k])) > tol {
				t.Errorf("n=%d: dot4F32[%d] asm %v go %v", n, k, a4[k], g4[k])
			}
		}
	}
	for _, nb := range []int{1, 2, 3, 90} { // the Q8 dot product, odd and even block counts
		w := randBF16(r, 32*nb, 0.5)
		q, d := make([]byte, 32*nb), make([]byte, 2*nb)
		if err := runtime.QuantizeQ8(q, d, w, 1, 32*nb, 1); err != nil {
			t.Fatal(err)
		}
		x := randF32(r, 32*nb, 1)
		a := dotQ8(q, d, x)
		g := dotQ8Go(q, d, x)
		if math.Abs(float64(a-g)) > 1e-5*math.Sqrt(float64(32*nb)) {
			t.Errorf("%d blocks: dotQ8 asm %v go %v", nb, a, g)
		}
	}
	for _, nb := range []int{1, 2, 3, 90} {
		blocks, scales := randMXFP4(r, 1, 32*nb)
		scales[0] = 0 // smallest and largest exponents too
		if nb > 1 {
			scales[1] = 140
		}
		x := randF32(r, 32*nb, 1)
		if useAVX512 {
			xs := make([]float32, len(x))
			splitBlocks(xs, x)
			z := dotMXFP4Split(blocks, scales, xs, x)
			useAVX512 = false
			g := dotMXFP4(blocks, scales, x)
			useAVX512 = true
			if math.Abs(float64(z-g)) > 1e-5*(1+math.Abs(float64(g))) {
				t.Errorf("nb=%d: dotMXFP4 AVX-512 %v, AVX2 %v", nb, z, g)
			}
		}
		useAsm = true
		a := dotMXFP4(blocks, scales, x)
		rowA := make([]float32, 32*nb)
		mxfp4Row(rowA, blocks, scales)
		useAsm = false
		g := dotMXFP4(blocks, scales, x)
		rowG := make([]float32, 32*nb)
		mxfp4Row(rowG, blocks, scales)
		useAsm = true
		for i := range rowA {
			if rowA[i] != rowG[i] {
				t.Fatalf("nb=%d: mxfp4Row[%d] asm %v go %v", nb, i, rowA[i], rowG[i])
			}
		}
		if math.Abs(float64(a-g)) > 1e-5*(1+math.Abs(float64(g))) {
			t.Errorf("nb=%d: dotMXFP4 asm %v go %v", nb, a, g)
		}
	}
}

func TestMatVecMatMulBF16(t *testing.T) {
	bothKernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, dims := range [][3]int{{1, 5, 3}, {3, 37, 40}, {5, 64, 128}, {9, 130, 96}, {5, 7, 1000}, {6, 18, 1984}} {
			n, rows, cols := dims[0], dims[1], dims[2]
			w := randBF16(r, rows*cols, 0.05)
			bias := randBF16(r, rows, 0.1)
			x := randF32(r, n*cols, 1)
			want := make([]float64, n*rows)
			for tk := 0; tk < n; tk++ {
				for i := 0; i < rows; i++ {
					s := bf64(bias, i)
					for c := 0; c < cols; c++ {
						s += bf64(w, i*cols+c) * float64(x[tk*cols+c])
					}
					want[tk*rows+i] = s
				}
			}
			got := make([]float32, n*rows)
			MatMulBF16(got, w, bias, x, n, rows, cols)
			near(t, "MatMulBF16", got, want, 1e-5)
			// x with room for whole groups of four rows: the last partial
			// group is computed as a whole one.
			xp := append(make([]float32, 0, padRows(n)*cols), x...)
			for i := len(xp); i < cap(xp); i++ {
				xp = append(xp, float32(i))
			}
			xp = xp[:n*cols]
			clear(got)
			MatMulBF16(got, w, bias, xp, n, rows, cols)
			near(t, "MatMulBF16 (padded x)", got, want, 1e-5)
			one := make([]float32, rows)
			MatVecBF16(one, w, bias, x[:cols], rows, cols)
			near(t, "MatVecBF16", one, want[:rows], 1e-5)
			MatVecBF16(one, w, nil, x[:cols], rows, cols)
			for i := range one {
				one[i] += float32(bf64(bias, i))
			}
			near(t, "MatVecBF16 without bias", one, want[:rows], 1e-5)
		}
	})
}

func TestMatVecMXFP4(t *testing.T) {
	bothKernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		rows, cols := 70, 96
		blocks, scales := randMXFP4(r, rows, cols)
		bias := randBF16(r, rows, 0.1)
		x := randF32(r, cols, 1)
		deq := make([]float32, rows*cols)
		if err := convert.DequantMXFP4(blocks, scales, deq); err != nil {
			t.Fatal(err)
		}
		want := make([]float64, rows)
		for i := range want {
			s := bf64(bias, i)
			for c := 0; c < cols; c++ {
				s += float64(deq[i*cols+c]) * float64(x[c])
			}
			want[i] = s
		}
		got := make([]float32, rows)
		MatVecMXFP4(got, blocks, scales, bias, x, rows, cols)
		near(t, "MatVecMXFP4", got, want, 1e-5)
		row := make([]float32, cols)
		mxfp4Row(row, blocks[:cols/2], scales[:cols/32])
		for c := range row {
			if row[c] != deq[c] {
				t.Fatalf("mxfp4Row[%d] = %v, DequantMXFP4 says %v", c, row[c], deq[c])
			}
		}
	})
}

func TestBF16EmbedRMSNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	V, H := 11, 40
	table := randBF16(r, V*H, 1)
	out := make([]float32, H)
	Embed(out, table, 7, H)
	for i := range out {
		if float64(out[i]) != bf64(table, 7*H+i) {
			t.Fatalf("Embed[%d] = %v, want %v", i, out[i], bf64(table, 7*H+i))
		}
	}
	all := make([]float32, V*H)
	BF16ToF32(table, all)
	for i := range all {
		if float64(all[i]) != bf64(table, i) {
			t.Fatalf("BF16ToF32[%d] = %v, want %v", i, all[i], bf64(table, i))
		}
	}
	x := randF32(r, H, 3)
	scale := randBF16(r, H, 1)
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	rms := 1 / math.Sqrt(ss/float64(H)+1e-5)
	want := make([]float64, H)
	for i := range want {
		want[i] = float64(x[i]) * rms * bf64(scale, i)
	}
	RMSNorm(out, x, scale, 1e-5)
	near(t, "RMSNorm", out, want, 1e-6)
	RMSNorm(x, x, scale, 1e-5) // in place
	near(t, "RMSNorm in place", x, want, 1e-6)
}

func TestRope(t *testing.T) {
	c := convert.ModelConfig{HeadDim: 64, RopeTheta: 150000, RopeScalingFactor: 32, InitialContextLength: 4096, RopeNTKAlpha: 1, RopeNTKBeta: 32}
	rope := NewRope(c, 100)
	// GPT-OSS.md §4.3: low 8.092779, high 17.398024, concentration 1.3465736.
	low, high := 8.092779, 17.398024
	conc := 0.1*math.Log(32) + 1
	if math.Abs(conc-1.3465736) > 1e-6 {
		t.Fatalf("concentration %v", conc)
	}
	r := rand.New(rand.NewPCG(9, 10))
	for _, pos := range []int{0, 1, 57, 99, 5000} { // 5000: past the table
		heads := 3
		x := randF32(r, heads*64, 1)
		want := make([]float64, len(x))
		for h := 0; h < heads; h++ {
			for i := 0; i < 32; i++ {
				f := math.Pow(150000, float64(2*i)/64)
				ramp := math.Min(math.Max((float64(i)-low)/(high-low), 0), 1)
				inv := (1/(32*f))*ramp + (1/f)*(1-ramp)
				phi := float64(pos) * inv
				cs, sn := math.Cos(phi)*conc, math.Sin(phi)*conc
				a, b := float64(x[h*64+i]), float64(x[h*64+i+32])
				want[h*64+i] = a*cs - b*sn
				want[h*64+i+32] = b*cs + a*sn
			}
		}
		rope.Apply(x, heads, pos)
		// float32 phase: position·inv_freq loses ~pos·2^-24 radians.
		near(t, "Rope", x, want, 1e-5+float64(pos)*3e-7)
	}
}

func TestAttend(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	heads, kvHeads, d, nk := 8, 2, 16, 13
	q := randF32(r, heads*d, 1)
	keys := randF32(r, nk*kvHeads*d, 1)
	vals := randF32(r, nk*kvHeads*d, 1)
	sinks := randF32(r, heads, 1)
	want := make([]float64, heads*d)
	for h := 0; h < heads; h++ {
		g := h / (heads / kvHeads)
		s := make([]float64, nk)
		m := float64(sinks[h])
		for j := range s {
			for i := 0; i < d; i++ {
				s[j] += float64(q[h*d+i]) * float64(keys[(j*kvHeads+g)*d+i])
			}
			s[j] /= math.Sqrt(float64(d))
			m = math.Max(m, s[j])
		}
		den := math.Exp(float64(sinks[h]) - m)
		for j := range s {
			s[j] = math.Exp(s[j] - m)
			den += s[j]
		}
		for j := range s {
			for i := 0; i < d; i++ {
				want[h*d+i] += s[j] / den * float64(vals[(j*kvHeads+g)*d+i])
			}
		}
	}
	out := make([]float32, heads*d)
	Attend(out, q, keys, vals, sinks, nk, heads, kvHeads, d)
	near(t, "Attend", out, want, 1e-5)
}

func TestRouterTopK(t *testing.T) {
	logits := []float32{0.5, 3, -1, 3, 2, 0.25, 7, -2}
	idx := make([]int, 4)
	w := make([]float32, 4)
	RouterTopK(logits, 4, idx, w)
	wantIdx := []int{6, 1, 3, 4} // tie 1/3: lower index first
	for i := range wantIdx {
		if idx[i] != wantIdx[i] {
			t.Fatalf("idx = %v, want %v", idx, wantIdx)
		}
	}
	var den float64
	for _, e := range wantIdx {
		den += math.Exp(float64(logits[e]))
	}
	want := make([]float64, 4)
	for i, e := range wantIdx {
		want[i] = math.Exp(float64(logits[e])) / den
	}
	near(t, "RouterTopK weights", w, want, 1e-6)
}

func TestSwiGLU(t *testing.T) {
	bothKernels(t, testSwiGLU)
}

func testSwiGLU(t *testing.T) {
	h := []float32{-20, 0.5, 1, -9, 8, 9, 3, 2, 0, 0, -60, 3, -90, 1}
	r := rand.New(rand.NewPCG(21, 22))
	h = append(h, randF32(r, 150, 4)...) // past one 64-value block
	n := len(h) / 2
	out := make([]float32, n)
	SwiGLU(out, h, 7)
	want := make([]float64, n)
	for j := range want {
		g := math.Min(float64(h[2*j]), 7)
		l := math.Max(math.Min(float64(h[2*j+1]), 7), -7)
		want[j] = g / (1 + math.Exp(-1.702*g)) * (l + 1)
	}
	near(t, "SwiGLU", out, want, 1e-6)
	if want[2] != 7/(1+math.Exp(-1.702*7))*8 {
		t.Fatalf("clamps not exercised: %v", want[2])
	}
}

func TestExpSubAxpy(t *testing.T) {
	bothKernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(13, 14))
		for _, n := range []int{1, 8, 13, 64, 1000} {
			x := randF32(r, n, 5)
			x[0] = -200 // far below the maximum: underflows to ~0
			m := float32(3)
			want := make([]float64, n)
			var sum float64
			for i, v := range x {
				want[i] = math.Exp(float64(v) - float64(m))
				sum += want[i]
			}
			got := append([]float32(nil), x...)
			s := expSub(got, m)
			near(t, "expSub", got, want, 3e-7)
			if math.Abs(float64(s)-sum) > 1e-6*sum+1e-30 {
				t.Fatalf("n=%d: expSub sum %v, want %v", n, s, sum)
			}
			y := randF32(r, n, 1)
			wy := make([]float64, n)
			for i := range y {
				wy[i] = float64(y[i]) + 0.75*float64(x[i])
			}
			axpy(y, x, 0.75)
			near(t, "axpy", y, wy, 1e-6)
		}
	})
}

func TestWsum(t *testing.T) {
	bothKernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(15, 16))
		for _, d := range []int{3, 8, 16, 40, 64, 72} {
			for _, n := range []int{1, 2, 5} {
				stride := d + 5
				v := randF32(r, n*stride, 1)
				p := randF32(r, n, 1)
				out := randF32(r, d, 1)
				want := make([]float64, d)
				for c := range want {
					want[c] = float64(out[c])
					for j := 0; j < n; j++ {
						want[c] += float64(p[j]) * float64(v[j*stride+c])
					}
				}
				wsum(out, v, stride, p)
				near(t, "wsum", out, want, 1e-6)
			}
		}
	})
}

func TestScores4(t *testing.T) {
	bothKernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(17, 18))
		for _, d := range []int{8, 16, 64, 12} {
			n, kstride, ostride := 7, d+8, 9
			keys := randF32(r, n*kstride, 1)
			q := randF32(r, 4*d, 1)
			out := make([]float32, 4*ostride)
			want := make([]float64, len(out))
			got := make([]float32, 0, len(out))
			scores4(out, ostride, keys, kstride, q, d, n)
			for h := 0; h < 4; h++ {
				for j := 0; j < ostride; j++ {
					if j < n {
						for c := 0; c < d; c++ {
							want[h*ostride+j] += float64(keys[j*kstride+c]) * float64(q[h*d+c])
						}
					}
					got = append(got, out[h*ostride+j])
				}
			}
			near(t, "scores4", got, want, 1e-5)
		}
	})
}

func TestMaxOf(t *testing.T) {
	bothKernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(19, 20))
		for _, n := range []int{0, 1, 8, 9, 17, 64, 100} {
			for at := 0; at < n; at += 1 + n/5 {
				x := randF32(r, n, 1)
				x[at] = 50
				if got := maxOf(-100, x); got != 50 {
					t.Fatalf("n=%d, max at %d: maxOf = %v", n, at, got)
				}
			}
			x := randF32(r, n, 1)
			if got := maxOf(100, x); got != 100 {
				t.Fatalf("n=%d: maxOf with a larger start = %v", n, got)
			}
		}
	})
}

// Attention split over key ranges and merged equals one pass.
func TestAttendSplitMerge(t *testing.T) {
	bothKernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(23, 24))
		heads, kvHeads, d, nk := 8, 2, 16, 29
		g := heads / kvHeads
		q := randF32(r, heads*d, 1)
		keys := randF32(r, nk*kvHeads*d, 1)
		vals := randF32(r, nk*kvHeads*d, 1)
		sinks := randF32(r, heads, 1)
		whole := make([]float32, heads*d)
		Attend(whole, q, keys, vals, sinks, nk, heads, kvHeads, d)
		want := make([]float64, len(whole))
		for i, v := range whole {
			want[i] = float64(v)
		}
		cuts := []int{0, 5, 6, 20, nk}
		segs := len(cuts) - 1
		got := make([]float32, heads*d)
		buf := make([]float32, attendScratch(g, d, nk))
		for kh := 0; kh < kvHeads; kh++ {
			parts := make([]float32, segs*g*d)
			ml := make([]float32, segs*2*g)
			for sg := 0; sg < segs; sg++ {
				j0, j1 := cuts[sg], cuts[sg+1]
				attendGroup(parts[sg*g*d:(sg+1)*g*d], q[kh*g*d:(kh+1)*g*d], keys[j0*kvHeads*d:j1*kvHeads*d], vals[j0*kvHeads*d:j1*kvHeads*d],
					kvHeads*d, kh*d, j1-j0, d, nil, buf, ml[sg*2*g:(sg+1)*2*g])
			}
			mergeParts(got[kh*g*d:(kh+1)*g*d], parts, ml, sinks[kh*g:(kh+1)*g], segs, g, d)
		}
		near(t, "split attention", got, want, 1e-5)
	})
}
