//go:build cuda

package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"testing"
	"unsafe"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/runtime"
	"github.com/gptoss/gptoss/runtime/cpu"
)

// The kernels against the CPU engine's ops (runtime/cpu) on random inputs
// of gpt-oss-20b shapes. Without a GPU these skip, unless
// GPTOSS_REQUIRE_GPU=1 (scripts/gpu-check.sh), where they fail.

const (
	tH   = 2880 // hidden
	tI   = 2880 // expert intermediate
	tD   = 64   // head_dim
	tHq  = 64
	tHkv = 8
	tE   = 32
	tK   = 4
)

// gpu returns device 0 and a stream, or skips.
func gpu(t testing.TB) (*device, *stream) {
	t.Helper()
	if err := (Engine{}).Available(); err != nil {
		if os.Getenv("GPTOSS_REQUIRE_GPU") == "1" {
			t.Fatalf("GPTOSS_REQUIRE_GPU=1 but the CUDA engine is unavailable: %v", err)
		}
		t.Skipf("no CUDA: %v", err)
	}
	d, err := openDevice(0)
	if err != nil {
		t.Fatal(err)
	}
	unlock := d.enter()
	t.Cleanup(unlock)
	s, err := d.newStream()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return d, s
}

// buffers on the device, freed at cleanup.
// devMat uploads the BF16 matrix w [rows][cols] as a decode matrix: as it
// is, or (q8) quantized by runtime.QuantizeQ8; ref is the CPU engine's
// product with the same weights.
func devMat(t testing.TB, d *device, s *stream, w []byte, rows, cols int, q8 bool) (m decMat, ref func(out []float32, bias []byte, x []float32)) {
	t.Helper()
	if !q8 {
		return bf16Mat(devBytes(t, d, s, w)), func(out []float32, bias []byte, x []float32) {
			cpu.MatVecBF16(out, w, bias, x, rows, cols)
		}
	}
	nq, nd := runtime.Q8Sizes(rows, cols)
	q, dd := make([]byte, nq), make([]byte, nd)
	must(t, runtime.QuantizeQ8(q, dd, w, rows, cols, 4))
	return decMat{w: devBytes(t, d, s, q), d: devBytes(t, d, s, dd)}, func(out []float32, bias []byte, x []float32) {
		cpu.MatVecQ8(out, q, dd, bias, x, rows, cols)
	}
}

func devBytes(t testing.TB, d *device, s *stream, b []byte) devPtr {
	t.Helper()
	p, err := d.alloc(uint64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.free(p) })
	if len(b) > 0 {
		if err := s.upload(p, unsafe.Pointer(&b[0]), len(b)); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func devF32(t testing.TB, d *device, s *stream, v []float32) devPtr {
	return devBytes(t, d, s, f32Bytes(v))
}

func devI32(t testing.TB, d *device, s *stream, v []int32) devPtr {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return devBytes(t, d, s, b)
}

// devPoison allocates n float32s filled with NaN, so unwritten outputs show.
func devPoison(t testing.TB, d *device, s *stream, n int) devPtr {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.NaN())
	}
	return devF32(t, d, s, v)
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func readF32(t testing.TB, s *stream, p devPtr, n int) []float32 {
	t.Helper()
	if err := s.sync(); err != nil {
		t.Fatal(err)
	}
	v := make([]float32, n)
	if err := s.download(unsafe.Pointer(&v[0]), p, 4*n); err != nil {
		t.Fatal(err)
	}
	return v
}

func readI32(t testing.TB, s *stream, p devPtr, n int) []int32 {
	t.Helper()
	v := make([]int32, n)
	if err := s.download(unsafe.Pointer(&v[0]), p, 4*n); err != nil {
		t.Fatal(err)
	}
	return v
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func randF32(r *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = (r.Float32()*2 - 1) * scale
	}
	return v
}

// randBF16 returns n random BF16 values in [−scale, scale) as bytes.
func randBF16(r *rand.Rand, n int, scale float32) []byte {
	b := make([]byte, 2*n)
	for i := 0; i < n; i++ {
		f := (r.Float32()*2 - 1) * scale
		binary.LittleEndian.PutUint16(b[2*i:], uint16(math.Float32bits(f)>>16))
	}
	return b
}

// f16Round rounds to the nearest FP16 value (ties to even), as the KV cache
// stores it.
func f16Round(f float32) float32 {
	if math.Abs(float64(f)) < 1.0/(1<<14) { // subnormal in fp16: steps of 2^-24
		return float32(math.RoundToEven(float64(f)*(1<<24)) / (1 << 24))
	}
	u := math.Float32bits(f)
	u += 0xfff + (u>>13)&1
	return math.Float32frombits(u &^ 0x1fff)
}

// f16ToF32 widens FP16 bits.
func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp, man := uint32(h>>10)&0x1f, uint32(h&0x3ff)
	switch {
	case exp == 0:
		v := float32(man) / (1 << 24)
		if sign != 0 {
			v = -v
		}
		return v
	case exp == 31:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	}
	return math.Float32frombits(sign | (exp-15+127)<<23 | man<<13)
}

// randF16 returns n random normal FP16 values of magnitude 2^-5…2 as bytes,
// and their float32 values.
func randF16(r *rand.Rand, n int) ([]byte, []float32) {
	b := make([]byte, 2*n)
	f := make([]float32, n)
	for i := 0; i < n; i++ {
		h := uint16(r.IntN(2))<<15 | uint16(10+r.IntN(6))<<10 | uint16(r.IntN(1024))
		binary.LittleEndian.PutUint16(b[2*i:], h)
		f[i] = f16ToF32(h)
	}
	return b, f
}

func f16Bytes(b []byte) []float32 {
	f := make([]float32, len(b)/2)
	for i := range f {
		f[i] = f16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return f
}

func bf16Round(f float32) float32 {
	u := math.Float32bits(f)
	u += 0x7fff + (u>>16)&1
	return math.Float32frombits(u &^ 0xffff)
}

// randMXFP4 returns random blocks and scales for rows × cols weights with
// block exponents around 2^-6.
func randMXFP4(r *rand.Rand, rows, cols int) (blocks, scales []byte) {
	blocks = make([]byte, rows*cols/2)
	scales = make([]byte, rows*cols/32)
	// 8 bytes a draw: the 120b-shaped cases fill gigabytes
	i := 0
	for ; i+8 <= len(blocks); i += 8 {
		binary.LittleEndian.PutUint64(blocks[i:], r.Uint64())
	}
	for ; i < len(blocks); i++ {
		blocks[i] = byte(r.Uint32())
	}
	for i := range scales {
		scales[i] = byte(118 + r.IntN(5))
	}
	return
}

// relErr is ‖got − want‖ / ‖want‖; NaN anywhere fails.
// relErrOf is ‖got − want‖ / ‖want‖.
func relErrOf(got, want []float32) float64 {
	var num, den float64
	for i := range got {
		d := float64(got[i] - want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(num / max(den, 1e-30))
}

func relErr(t testing.TB, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var num, den float64
	for i := range got {
		if math.IsNaN(float64(got[i])) || math.IsInf(float64(got[i]), 0) {
			t.Fatalf("%s: value %d is %v (want %v)", what, i, got[i], want[i])
		}
		d := float64(got[i] - want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	e := math.Sqrt(num / max(den, 1e-30))
	if e > tol {
		t.Fatalf("%s: relative error %.3g > %.3g", what, e, tol)
	}
	t.Logf("%s: relative error %.3g", what, e)
}

func TestF16Helpers(t *testing.T) {
	r := rand.New(rand.NewPCG(0, 1))
	for i := 0; i < 100000; i++ {
		h := uint16(r.IntN(1 << 15)) // positive, every exponent but Inf/NaN
		if h>>10 == 31 {
			continue
		}
		f := f16ToF32(h)
		if g := f16Round(f); g != f {
			t.Fatalf("%#04x = %v rounds to %v", h, f, g)
		}
	}
	if f16ToF32(0x3c00) != 1 || f16ToF32(0xc000) != -2 || f16ToF32(0x0001) != 1.0/(1<<24) {
		t.Fatal("f16ToF32 constants")
	}
	if f16Round(1+1.0/4096) != 1 || f16Round(1+3.0/2048) != 1+2.0/1024 {
		t.Fatal("f16Round ties")
	}
}

func TestKernelEmbed(t *testing.T) {
	d, s := gpu(t)
	r := rand.New(rand.NewPCG(1, 2))
	const V = 1000
	table := randBF16(r, V*tH, 1)
	toks := []int32{0, 999, 17, 17, 512}
	x := devPoison(t, d, s, len(toks)*tH)
	must(t, s.embed(devBytes(t, d, s, table), devI32(t, d, s, toks), x, len(toks), tH))
	got := readF32(t, s, x, len(toks)*tH)
	want := make([]float32, len(toks)*tH)
	for i, tok := range toks {
		cpu.Embed(want[i*tH:], table, tok, tH)
	}
	relErr(t, "embed", got, want, 0)
}

func TestKernelRMSNorm(t *testing.T) {
	d, s := gpu(t)
	r := rand.New(rand.NewPCG(3, 4))
	const T = 5
	x := randF32(r, T*tH, 3)
	scale := randBF16(r, tH, 2)
	out := devPoison(t, d, s, T*tH)
	must(t, s.rmsnorm(devF32(t, d, s, x), devBytes(t, d, s, scale), out, T, tH, 1e-5))
	got := readF32(t, s, out, T*tH)
	want := make([]float32, T*tH)
	for i := 0; i < T; i++ {
		cpu.RMSNorm(want[i*tH:(i+1)*tH], x[i*tH:(i+1)*tH], scale, 1e-5)
	}
	relErr(t, "rmsnorm", got, want, 1e-6)
}

func TestKernelMatVecBF16(t *testing.T) {
	d, s := gpu(t)
	r := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct {
		name       string
		N, K, T    int
		bias, accu bool
	}{
		{"qkv decode", 5120, tH, 1, true, false},
		{"out decode accumulate", tH, tHq * tD, 1, true, true},
		{"router prefill", tE, tH, 13, true, false},
		{"out prefill accumulate", tH, tHq * tD, 37, true, true},
		{"unembedding slice prefill", 3001, tH, 8, false, false},
		{"qkv prefill partial tile", 5120, tH, 19, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := randBF16(r, c.N*c.K, 0.05)
			var bias []byte
			var dbias devPtr
			if c.bias {
				bias = randBF16(r, c.N, 0.5)
				dbias = devBytes(t, d, s, bias)
			}
			x := randF32(r, c.T*c.K, 1)
			y0 := randF32(r, c.T*c.N, 1)
			var y devPtr
			if c.accu {
				y = devF32(t, d, s, y0)
			} else {
				y = devPoison(t, d, s, c.T*c.N)
			}
			dw, dx := devBytes(t, d, s, w), devF32(t, d, s, x)
			must(t, s.matvec(dw, dbias, dx, y, c.N, c.K, c.T, c.accu))
			got := readF32(t, s, y, c.T*c.N)
			var gotTC []float32 // the tensor-core GEMM (prefill)
			if c.T > 1 {
				yt := devPoison(t, d, s, c.T*c.N)
				if c.accu {
					yt = devF32(t, d, s, y0)
				}
				must(t, s.gemmTC(dw, dbias, dx, yt, c.N, c.K, c.T, c.accu))
				gotTC = readF32(t, s, yt, c.T*c.N)
			}
			want := make([]float32, c.T*c.N)
			if c.T == 1 {
				cpu.MatVecBF16(want, w, bias, x, c.N, c.K)
			} else {
				cpu.MatMulBF16(want, w, bias, x, c.T, c.N, c.K)
			}
			if c.accu {
				for i := range want {
					want[i] += y0[i]
				}
			}
			relErr(t, "matvec", got, want, 1e-5)
			if gotTC != nil { // activations as hi + lo BF16 halves: ~16 bits
				relErr(t, "gemm_tc", gotTC, want, 3e-5)
			}
		})
	}
}

func cfg20b() convert.ModelConfig {
	return convert.ModelConfig{
		NumHiddenLayers: 24, NumExperts: tE, ExpertsPerToken: tK, VocabSize: 201088, HiddenSize: tH,
		IntermediateSize: tI, SwigluLimit: 7, HeadDim: tD, NumAttentionHeads: tHq, NumKeyValueHeads: tHkv,
		SlidingWindow: 128, InitialContextLength: 4096, RopeTheta: 150000, RopeScalingFactor: 32,
		RopeNTKAlpha: 1, RopeNTKBeta: 32, RMSNormEps: 1e-5,
	}
}

func TestKernelRopeKV(t *testing.T) {
	d, s := gpu(t)
	r := rand.New(rand.NewPCG(7, 8))
	c := cfg20b()
	const T, pos0, maxLen = 6, 70000, 70010
	W := (tHq + 2*tHkv) * tD
	qkv := randF32(r, T*W, 2)
	inv, conc := ropeTables(c)
	dqkv := devF32(t, d, s, qkv)
	kc := devBytes(t, d, s, make([]byte, maxLen*tHkv*tD*2))
	vc := devBytes(t, d, s, make([]byte, maxLen*tHkv*tD*2))
	must(t, s.ropeKV(dqkv, devF32(t, d, s, inv), devI32(t, d, s, []int32{pos0}), kc, vc, T, tHq, tHkv, tD, conc))
	got := readF32(t, s, dqkv, T*W)
	rope := cpu.NewRope(c, 1)
	want := append([]float32(nil), qkv...)
	for i := 0; i < T; i++ {
		rope.Apply(want[i*W:], tHq+tHkv, pos0+i)
	}
	relErr(t, "rope q,k", got, want, 1e-5)
	// the cache rows hold the rotated k and the v, rounded to bf16
	kvw := tHkv * tD
	kb := make([]byte, T*kvw*2)
	vb := make([]byte, T*kvw*2)
	must(t, s.download(unsafe.Pointer(&kb[0]), kc+devPtr(pos0*kvw*2), len(kb)))
	must(t, s.download(unsafe.Pointer(&vb[0]), vc+devPtr(pos0*kvw*2), len(vb)))
	kg, vg := f16Bytes(kb), f16Bytes(vb)
	kw, vw := make([]float32, T*kvw), make([]float32, T*kvw)
	for i := 0; i < T; i++ {
		for j := 0; j < kvw; j++ {
			kw[i*kvw+j] = f16Round(want[i*W+tHq*tD+j])
			vw[i*kvw+j] = f16Round(qkv[i*W+(tHq+tHkv)*tD+j])
		}
	}
	relErr(t, "k cache (fp16)", kg, kw, 1e-3)
	relErr(t, "v cache (fp16)", vg, vw, 1e-6)
}

func TestKernelAttention(t *testing.T) {
	d, s := gpu(t)
	r := rand.New(rand.NewPCG(9, 10))
	for _, c := range []struct {
		name        string
		D, Hq, Hkv  int
		pos, T, win int
	}{
		{"decode full 8k", tD, tHq, tHkv, 8191, 1, 0},
		{"decode sliding", tD, tHq, tHkv, 5000, 1, 128},
		{"decode first token", tD, tHq, tHkv, 0, 1, 0},
		{"decode full 137", tD, tHq, tHkv, 136, 1, 0}, // 5 splits
		{"prefill full", tD, tHq, tHkv, 300, 37, 0},
		{"prefill sliding", tD, tHq, tHkv, 100, 90, 128},
		{"tiny dims", 16, 8, 2, 20, 3, 4},
		{"decode tiny dims", 16, 8, 2, 300, 1, 0},
		{"decode tiny sliding", 16, 8, 2, 40, 1, 4},
		{"decode d32 sliding", 32, 16, 4, 900, 1, 200},
		{"decode d128", 128, 8, 1, 2500, 1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := c.pos + c.T
			kvw := c.Hkv * c.D
			W := (c.Hq + 2*c.Hkv) * c.D
			kb, keys := randF16(r, n*kvw)
			vb, vals := randF16(r, n*kvw)
			qkv := randF32(r, c.T*W, 1.5)
			sinkb := randBF16(r, c.Hq, 2)
			sinks := make([]float32, c.Hq)
			cpu.BF16ToF32(sinkb, sinks)
			S := attnSplits(c.T)
			part := devPoison(t, d, s, c.T*c.Hq*S*(c.D+2))
			out := devPoison(t, d, s, c.T*c.Hq*c.D)
			must(t, s.attention(devF32(t, d, s, qkv), devBytes(t, d, s, kb), devBytes(t, d, s, vb), devI32(t, d, s, []int32{int32(c.pos)}),
				part, devBytes(t, d, s, sinkb), out, c.T, c.Hq, c.Hkv, c.D, c.win))
			got := readF32(t, s, out, c.T*c.Hq*c.D)
			want := make([]float32, c.T*c.Hq*c.D)
			for i := 0; i < c.T; i++ {
				p := c.pos + i
				lo := 0
				if c.win > 0 {
					lo = max(0, p-c.win+1)
				}
				cpu.Attend(want[i*c.Hq*c.D:], qkv[i*W:i*W+c.Hq*c.D], keys[lo*kvw:(p+1)*kvw], vals[lo*kvw:(p+1)*kvw], sinks, p+1-lo, c.Hq, c.Hkv, c.D)
			}
			relErr(t, "attention", got, want, 1e-5)
			if c.T != 1 || !attnDecOK(c.Hq, c.Hkv, c.D) {
				return
			}
			// the v6+ decode attention (one launch, splits merged by the
			// last block); twice, as its counters must be left at zero; with
			// v16's split size and v17's (one split written directly where
			// the keys fit, e.g. a sliding layer's 128), and 1 key a split
			dpart := devPoison(t, d, s, c.Hq*attnDecSplits*(c.D+2))
			cnt := devBytes(t, d, s, make([]byte, 4*c.Hkv))
			for _, a := range []struct {
				minKeys int
				direct  bool
			}{{attnMinKeys, false}, {attnMin17Default, true}, {1, true}, {4096, true}} {
				for i := range 2 {
					dout := devPoison(t, d, s, c.Hq*c.D)
					must(t, s.attnDec(devF32(t, d, s, qkv), devBytes(t, d, s, kb), devBytes(t, d, s, vb), devI32(t, d, s, []int32{int32(c.pos)}),
						devBytes(t, d, s, sinkb), dpart, cnt, dout, c.Hq, c.Hkv, c.D, c.win, a.minKeys, a.direct))
					relErr(t, fmt.Sprintf("attn_dec min %d direct %v (launch %d)", a.minKeys, a.direct, i+1), readF32(t, s, dout, c.Hq*c.D), want, 1e-5)
					if left := readI32(t, s, cnt, c.Hkv); slices.ContainsFunc(left, func(v int32) bool { return v != 0 }) {
						t.Fatalf("attn_dec left its split counters at %v, want zeros", left)
					}
				}
			}
		})
	}
}

func TestKernelRouterTopK(t *testing.T) {
	d, s := gpu(t)
	r := rand.New(rand.NewPCG(11, 12))
	for _, E := range []int{8, 32, 128} {
		const T = 21
		logits := randF32(r, T*E, 4)
		// a tie: the lower index must win
		logits[3] = 10
		logits[5] = 10
		ids, wts := devPoison(t, d, s, T*tK), devPoison(t, d, s, T*tK)
		must(t, s.routerTopK(devF32(t, d, s, logits), ids, wts, T, E, tK))
		gw := readF32(t, s, wts, T*tK)
		gi := readI32(t, s, ids, T*tK)
		for i := 0; i < T; i++ {
			idx := make([]int, tK)
			w := make([]float32, tK)
			cpu.RouterTopK(logits[i*E:(i+1)*E], tK, idx, w)
			for k := 0; k < tK; k++ {
				if int(gi[i*tK+k]) != idx[k] || math.Abs(float64(gw[i*tK+k]-w[k])) > 1e-6 {
					t.Fatalf("E=%d token %d: got experts %v weights %v, want %v %v", E, i, gi[i*tK:(i+1)*tK], gw[i*tK:(i+1)*tK], idx, w)
				}
			}
		}
	}
}

// TestKernelMoE runs the MoE block (router top-k, plan, mlp1 with SwiGLU,
// mlp2, weighted combine into the residual) for decode and prefill and
// compares it with the CPU engine's MatVecMXFP4 + SwiGLU per expert.
func TestKernelMoE(t *testing.T) {
	for _, kind := range []string{"v1", "tc"} {
		t.Run(kind, func(t *testing.T) { testMoE(t, kind) })
	}
}

func testMoE(t *testing.T, kind string) {
	tc := kind == "tc"
	d, s := gpu(t)
	r := rand.New(rand.NewPCG(13, 14))
	const E = 8
	w1b, w1s := randMXFP4(r, E*2*tI, tH)
	w2b, w2s := randMXFP4(r, E*tH, tI)
	b1, b2 := randBF16(r, E*2*tI, 0.5), randBF16(r, E*tH, 0.5)
	dw1b, dw1s, db1 := devBytes(t, d, s, w1b), devBytes(t, d, s, w1s), devBytes(t, d, s, b1)
	dw2b, dw2s, db2 := devBytes(t, d, s, w2b), devBytes(t, d, s, w2s), devBytes(t, d, s, b2)
	for _, T := range []int{1, 3, 40} {
		xn := randF32(r, T*tH, 1)
		x0 := randF32(r, T*tH, 1)
		logits := randF32(r, T*E, 3)
		n := T * tK
		tile := moeTile(T)
		if tc && T > 1 {
			tile = moeTCTile
		}
		maxTiles := moeMaxTiles(n, E, tile)
		ids, wts := devPoison(t, d, s, n), devPoison(t, d, s, n)
		order, tiles, ntiles := devPoison(t, d, s, n), devPoison(t, d, s, 4*maxTiles), devPoison(t, d, s, 1)
		act, y := devPoison(t, d, s, n*tI), devPoison(t, d, s, n*tH)
		dxn, dx := devF32(t, d, s, xn), devF32(t, d, s, x0)
		must(t, s.routerTopK(devF32(t, d, s, logits), ids, wts, T, E, tK))
		must(t, s.moePlan(ids, n, E, tile, order, tiles, ntiles))
		if tc && T > 1 {
			must(t, s.moeTCMLP1(dw1b, dw1s, db1, dxn, order, tiles, ntiles, act, tI, tH, tK, maxTiles, 7))
			must(t, s.moeTCMLP2(dw2b, dw2s, db2, act, order, tiles, ntiles, y, tH, tI, maxTiles))
		} else {
			must(t, s.moeMLP1(dw1b, dw1s, db1, dxn, order, tiles, ntiles, act, tI, tH, tK, tile, maxTiles, 7))
			must(t, s.moeMLP2(dw2b, dw2s, db2, act, order, tiles, ntiles, y, tH, tI, tile, maxTiles))
		}
		must(t, s.moeCombine(y, wts, dx, T, tH, tK))
		got := readF32(t, s, dx, T*tH)
		want := append([]float32(nil), x0...)
		h := make([]float32, 2*tI)
		a := make([]float32, tI)
		o := make([]float32, tH)
		for i := 0; i < T; i++ {
			idx := make([]int, tK)
			w := make([]float32, tK)
			cpu.RouterTopK(logits[i*E:(i+1)*E], tK, idx, w)
			for k, e := range idx {
				r1, r2 := 2*tI, tH
				cpu.MatVecMXFP4(h, w1b[e*r1*tH/2:(e+1)*r1*tH/2], w1s[e*r1*tH/32:(e+1)*r1*tH/32], b1[e*r1*2:(e+1)*r1*2], xn[i*tH:(i+1)*tH], r1, tH)
				cpu.SwiGLU(a, h, 7)
				cpu.MatVecMXFP4(o, w2b[e*r2*tI/2:(e+1)*r2*tI/2], w2s[e*r2*tI/32:(e+1)*r2*tI/32], b2[e*r2*2:(e+1)*r2*2], a, r2, tI)
				for j := range o {
					want[i*tH+j] += w[k] * o[j]
				}
			}
		}
		tol := 1e-5
		if tc && T > 1 { // activations as hi + lo BF16 halves: ~16 bits
			tol = 3e-5
		}
		relErr(t, "moe", got, want, tol)
		if T == 1 {
			// the one-token kernels: no plan, combine fused into mlp2
			dx1 := devF32(t, d, s, x0)
			act1 := devPoison(t, d, s, tK*tI)
			must(t, s.moeMLP1Dec(dw1b, dw1s, db1, dxn, ids, act1, tI, tH, tK, 7))
			must(t, s.moeMLP2Dec(dw2b, dw2s, db2, act1, ids, wts, dx1, tH, tI, tK))
			relErr(t, "moe decode kernels", readF32(t, s, dx1, tH), want, 1e-5)
		}
	}
}

func TestKernelArgmax(t *testing.T) {
	d, s := gpu(t)
	r := rand.New(rand.NewPCG(15, 16))
	const V = 201088
	v := randF32(r, V, 10)
	best := r.IntN(V)
	v[best] = 11
	v[V-1] = 11 // a tie after it: the lower index wins
	out := devI32(t, d, s, []int32{-1})
	must(t, s.argmax(devF32(t, d, s, v), V, out))
	must(t, s.sync())
	if got := readI32(t, s, out, 1)[0]; int(got) != min(best, V-1) {
		t.Fatalf("argmax %d, want %d", got, best)
	}
}

// TestKernelFused: the fused one-token kernels (RMSNorm folded into the
// BF16 GEMV, RMSNorm + router + top-k in one block) against runtime/cpu's
// RMSNorm, MatVecBF16 and RouterTopK, at gpt-oss-20b's and the tiny golden
// model's shapes.
func TestKernelFused(t *testing.T) {
	d, s := gpu(t)
	r := rand.New(rand.NewPCG(17, 18))
	for _, c := range []struct {
		name string
		N, K int
		norm bool
		bias bool
		accu bool
	}{
		{"qkv with norm", 5120, tH, true, true, false},
		{"unembedding slice with norm", 3001, tH, true, false, false},
		{"out accumulate without norm", tH, tHq * tD, false, true, true},
		{"tiny", 1024, 128, true, false, false},
	} {
		for _, q8 := range []bool{false, true} {
			name := "matvec_norm " + c.name
			if q8 {
				name = "matvec_norm_q8 " + c.name
			}
			t.Run(name, func(t *testing.T) {
				w := randBF16(r, c.N*c.K, 0.05)
				x := randF32(r, c.K, 3)
				scale := randBF16(r, c.K, 2)
				var bias []byte
				var dbias, dscale devPtr
				if c.bias {
					bias = randBF16(r, c.N, 0.5)
					dbias = devBytes(t, d, s, bias)
				}
				xn := x
				if c.norm {
					dscale = devBytes(t, d, s, scale)
					xn = make([]float32, c.K)
					cpu.RMSNorm(xn, x, scale, 1e-5)
				}
				y0 := randF32(r, c.N, 1)
				y := devPoison(t, d, s, c.N)
				if c.accu {
					y = devF32(t, d, s, y0)
				}
				dw, ref := devMat(t, d, s, w, c.N, c.K, q8)
				must(t, s.matvecNorm(dw, dbias, devF32(t, d, s, x), dscale, y, c.N, c.K, 1e-5, c.accu))
				want := make([]float32, c.N)
				ref(want, bias, xn)
				if c.accu {
					for i := range want {
						want[i] += y0[i]
					}
				}
				relErr(t, name, readF32(t, s, y, c.N), want, 1e-5)
			})
		}
	}
	for _, c := range []struct {
		name               string
		H, Hq, Hkv, D, pos int
	}{{"20b", tH, tHq, tHkv, tD, 70000}, {"tiny", 128, 8, 2, 16, 5}} {
		t.Run("qkv_rope "+c.name, func(t *testing.T) {
			testQKVRope(t, d, s, r, c.H, c.Hq, c.Hkv, c.D, c.pos, false)
		})
		t.Run("qkv_rope_q8 "+c.name, func(t *testing.T) {
			testQKVRope(t, d, s, r, c.H, c.Hq, c.Hkv, c.D, c.pos, true)
		})
	}
	for _, c := range []struct{ H, E, k int }{{tH, tE, tK}, {tH, 128, tK}, {128, 8, 4}} {
		t.Run(fmt.Sprintf("norm_router H=%d E=%d", c.H, c.E), func(t *testing.T) {
			x := randF32(r, c.H, 3)
			scale := randBF16(r, c.H, 2)
			g := randBF16(r, c.E*c.H, 0.05)
			gb := randBF16(r, c.E, 0.5)
			xn, ids, wts := devPoison(t, d, s, c.H), devPoison(t, d, s, c.k), devPoison(t, d, s, c.k)
			must(t, s.normRouter(devF32(t, d, s, x), devBytes(t, d, s, scale), xn, devBytes(t, d, s, g), devBytes(t, d, s, gb),
				ids, wts, c.H, c.E, c.k, 1e-5))
			wantXn := make([]float32, c.H)
			cpu.RMSNorm(wantXn, x, scale, 1e-5)
			relErr(t, "norm_router xn", readF32(t, s, xn, c.H), wantXn, 1e-6)
			logits := make([]float32, c.E)
			cpu.MatVecBF16(logits, g, gb, wantXn, c.E, c.H)
			idx := make([]int, c.k)
			w := make([]float32, c.k)
			cpu.RouterTopK(logits, c.k, idx, w)
			gi, gw := readI32(t, s, ids, c.k), readF32(t, s, wts, c.k)
			for i := range idx {
				if int(gi[i]) != idx[i] || math.Abs(float64(gw[i]-w[i])) > 1e-5 {
					t.Fatalf("experts %v weights %v, want %v %v", gi, gw, idx, w)
				}
			}
		})
	}
}

// TestKernelMoE3: the fused one-token MoE kernels (moe3_mlp1_dec: every
// expert of the token in one persistent launch on a staged activation
// vector; moe3_mlp2_dec: W2, b2 and the router weight added into the
// residual) against runtime/cpu's MatVecMXFP4 + SwiGLU, at gpt-oss-20b's
// and the tiny golden model's shapes.
func TestKernelMoE3(t *testing.T) {
	d, s := gpu(t)
	r := rand.New(rand.NewPCG(19, 20))
	for _, c := range []struct{ H, I, E, k int }{{tH, tI, 8, tK}, {128, 64, 8, 4}, {tH, tI, 8, 2}, {96, 4096, 4, 3}, {160, 32, 4, 1}} {
		for _, v := range []int{3, 6, 7, 12} {
			if v == 3 && c.I > 2880 {
				continue
			}
			testMoEDec(t, d, s, r, v, c.H, c.I, c.E, c.k)
		}
	}
}

// testMoEDec: the one-token MoE kernels (v3, v6, v7, v12: moe3_*, moe6_*,
// moe7_*, moe7_mlp1_dec with moe12_mlp2_dec) against runtime/cpu.
func testMoEDec(t *testing.T, d *device, s *stream, r *rand.Rand, v, H, I, E, K int) {
	name := fmt.Sprintf("v%d", v)
	if v >= 7 && d.ccMajor >= 9 && !d.moe7OK() { // else they would run v6's kernels
		t.Fatalf("the device refused moe7's dynamic shared memory: %v", d.dynErr)
	}
	t.Run(fmt.Sprintf("%s H=%d I=%d k=%d", name, H, I, K), func(t *testing.T) {
		w1b, w1s := randMXFP4(r, E*2*I, H)
		w2b, w2s := randMXFP4(r, E*H, I)
		b1, b2 := randBF16(r, E*2*I, 0.5), randBF16(r, E*H, 0.5)
		xn := randF32(r, H, 1)
		x0 := randF32(r, H, 1)
		// k distinct experts, not in order, and softmax-like weights
		perm := r.Perm(E)[:K]
		ids := make([]int32, K)
		wts := make([]float32, K)
		for i, e := range perm {
			ids[i] = int32(e)
			wts[i] = 0.1 + r.Float32()
		}
		act := devPoison(t, d, s, K*I)
		dx := devF32(t, d, s, x0)
		dids, dwts := devI32(t, d, s, ids), devF32(t, d, s, wts)
		must(t, s.moeDecMLP1(v, devBytes(t, d, s, w1b), devBytes(t, d, s, w1s), devBytes(t, d, s, b1), devF32(t, d, s, xn), dids, act, I, H, K, 7))
		gotAct := readF32(t, s, act, K*I)
		must(t, s.moeDecMLP2(v, devBytes(t, d, s, w2b), devBytes(t, d, s, w2s), devBytes(t, d, s, b2), act, dids, dwts, dx, H, I, K))
		got := readF32(t, s, dx, H)
		want := append([]float32(nil), x0...)
		wantAct := cpuMoE(want, xn, perm, wts, w1b, w1s, b1, w2b, w2s, b2, H, I)
		relErr(t, name+" mlp1 (SwiGLU)", gotAct, wantAct, 1e-5)
		relErr(t, name+" mlp2 into the residual", got, want, 1e-5)
	})
}

// cpuMoE is runtime/cpu's MoE for one token (the reference of the decode
// MoE tests): for each chosen expert e with weight wts[k], act[k] =
// SwiGLU(W1_e·xn + b1, limit 7) and x += wts[k]·(W2_e·act[k] + b2); it
// returns act (k·I values).
func cpuMoE(x, xn []float32, experts []int, wts []float32, w1b, w1s, b1, w2b, w2s, b2 []byte, H, I int) []float32 {
	act := make([]float32, len(experts)*I)
	h := make([]float32, 2*I)
	o := make([]float32, H)
	r1, r2 := 2*I, H
	for k, e := range experts {
		a := act[k*I : (k+1)*I]
		cpu.MatVecMXFP4(h, w1b[e*r1*H/2:(e+1)*r1*H/2], w1s[e*r1*H/32:(e+1)*r1*H/32], b1[e*r1*2:(e+1)*r1*2], xn, r1, H)
		cpu.SwiGLU(a, h, 7)
		cpu.MatVecMXFP4(o, w2b[e*r2*I/2:(e+1)*r2*I/2], w2s[e*r2*I/32:(e+1)*r2*I/32], b2[e*r2*2:(e+1)*r2*2], a, r2, I)
		for j := range o {
			x[j] += wts[k] * o[j]
		}
	}
	return act
}

// testQKVRope: RMSNorm + QKV GEMV + RoPE + KV-cache write in one kernel
// against runtime/cpu's RMSNorm, MatVecBF16 (q8: MatVecQ8 over the same
// quantized weights) and Rope.Apply.
func testQKVRope(t *testing.T, d *device, s *stream, r *rand.Rand, H, Hq, Hkv, D, pos int, q8 bool) {
	c := cfg20b()
	c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim = H, Hq, Hkv, D
	W := (Hq + 2*Hkv) * D
	kvw := Hkv * D
	w := randBF16(r, W*H, 0.05)
	bias := randBF16(r, W, 0.5)
	x := randF32(r, H, 3)
	scale := randBF16(r, H, 2)
	inv, conc := ropeTables(c)
	maxLen := pos + 2
	kc := devBytes(t, d, s, make([]byte, maxLen*kvw*2))
	vc := devBytes(t, d, s, make([]byte, maxLen*kvw*2))
	qkv := devPoison(t, d, s, W)
	dw, ref := devMat(t, d, s, w, W, H, q8)
	must(t, s.qkvRope(dw, devBytes(t, d, s, bias), devF32(t, d, s, x), devBytes(t, d, s, scale), qkv,
		devF32(t, d, s, inv), devI32(t, d, s, []int32{int32(pos)}), kc, vc, H, Hq, Hkv, D, conc, 1e-5))
	got := readF32(t, s, qkv, W)
	xn := make([]float32, H)
	cpu.RMSNorm(xn, x, scale, 1e-5)
	want := make([]float32, W)
	ref(want, bias, xn)
	v := append([]float32(nil), want[(Hq+Hkv)*D:]...)
	cpu.NewRope(c, 1).Apply(want, Hq+Hkv, pos)
	relErr(t, "qkv_rope q,k,v", got, want, 1e-5)
	kb, vb := make([]byte, kvw*2), make([]byte, kvw*2)
	must(t, s.download(unsafe.Pointer(&kb[0]), kc+devPtr(pos*kvw*2), len(kb)))
	must(t, s.download(unsafe.Pointer(&vb[0]), vc+devPtr(pos*kvw*2), len(vb)))
	kw, vw := make([]float32, kvw), make([]float32, kvw)
	for j := 0; j < kvw; j++ {
		kw[j] = f16Round(want[Hq*D+j])
		vw[j] = f16Round(v[j])
	}
	relErr(t, "qkv_rope k cache (fp16)", f16Bytes(kb), kw, 1e-3)
	relErr(t, "qkv_rope v cache (fp16)", f16Bytes(vb), vw, 1e-3)
}

// sampleRef is the sampling rule of runtime/sample in float64 with the draw
// u given: candidates sorted by probability (descending, lower id first),
// top-k, then the nucleus; with neither, u·Σp in id order. It also returns
// how close u·mass came to a boundary between two tokens (relative), so a
// float32 device draw that lands across one is told apart from a bug.
func sampleRef(logits []float32, temp float64, k int, topP, u float64) (tok int32, margin float64) {
	mx := math.Inf(-1)
	for _, l := range logits {
		mx = math.Max(mx, float64(l))
	}
	p := make([]float64, len(logits))
	var sum float64
	for i, l := range logits {
		p[i] = math.Exp((float64(l) - mx) / temp)
		sum += p[i]
	}
	if k >= len(logits) {
		k = 0
	}
	if topP <= 0 {
		topP = 1
	}
	ids := make([]int, len(p))
	for i := range ids {
		ids[i] = i
	}
	if k > 0 || topP < 1 {
		sort.SliceStable(ids, func(a, b int) bool { return p[ids[a]] > p[ids[b]] })
		c := len(ids)
		if k > 0 {
			c = k
		}
		ref := sum
		if k > 0 {
			ref = 0
			for _, i := range ids[:c] {
				ref += p[i]
			}
		}
		if topP < 1 {
			acc := 0.0
			for j, i := range ids[:c] {
				acc += p[i]
				if acc >= topP*ref {
					c = j + 1
					break
				}
			}
		}
		ids = ids[:c]
	}
	var mass float64
	for _, i := range ids {
		mass += p[i]
	}
	r := u * mass
	margin = math.Inf(1)
	tok = int32(ids[len(ids)-1])
	found := false
	for _, i := range ids {
		margin = math.Min(margin, math.Abs(r)/mass)
		r -= p[i]
		if r < 0 && !found {
			tok, found = int32(i), true
		}
	}
	margin = math.Min(margin, math.Abs(r)/mass)
	return tok, margin
}

// TestKernelSample: the device sampler (temperature, top-k, top-p, the
// caller's draw) picks the token runtime/sample's rule picks, over a real
// vocabulary size; top-k 1 is the argmax.
func TestKernelSample(t *testing.T) {
	d, s := gpu(t)
	r := rand.New(rand.NewPCG(21, 22))
	const V = 201088
	logits := make([]float32, V)
	for i := range logits { // a language model's shape: a few tokens far above a broad base
		logits[i] = float32(r.NormFloat64() * 1.5)
	}
	for i := 0; i < 64; i++ {
		logits[r.IntN(V)] += 8 + 6*r.Float32()
	}
	dl := devF32(t, d, s, logits)
	probs, out := devPoison(t, d, s, V), devPoison(t, d, s, 2)
	best := int32(0)
	for i, l := range logits {
		if l > logits[best] {
			best = int32(i)
		}
	}
	for _, c := range []struct {
		temp     float64
		k        int
		topP     float64
		fallback bool // more candidates than the device's table: the host samples
	}{{1, 1, 1, false}, {1, 40, 1, false}, {0.7, 0, 0.9, false}, {1, 50, 0.8, false}, {1.3, 0, 1, false},
		{0.5, 0, 0.5, false}, {1, 0, 0.95, false}, {8, 0, 0.99, true}} {
		t.Run(fmt.Sprintf("T=%v k=%d p=%v", c.temp, c.k, c.topP), func(t *testing.T) {
			fallback, near := 0, 0
			for n := 0; n < 12; n++ {
				u := r.Float64()
				must(t, s.sampleTopKP(dl, V, float32(c.temp), c.k, float32(c.topP), float32(u), probs, out))
				got := readI32(t, s, out, 2)
				if got[1] == 1 && c.fallback {
					fallback++
					continue
				}
				if got[1] != 0 || c.fallback {
					t.Fatalf("status %d (want %d)", got[1], map[bool]int{false: 0, true: 1}[c.fallback])
				}
				want, margin := sampleRef(logits, c.temp, c.k, c.topP, float64(float32(u)))
				if c.k == 1 && got[0] != best {
					t.Fatalf("top-k 1 gave %d, argmax is %d", got[0], best)
				}
				if got[0] != want {
					if margin < 1e-4 {
						near++
						continue
					}
					t.Fatalf("u=%v: token %d, want %d (margin %.2g)", u, got[0], want, margin)
				}
			}
			if near > 1 {
				t.Fatalf("%d draws on a boundary", near)
			}
			t.Logf("12 draws: %d left to the host, %d on a boundary, the rest match", fallback, near)
		})
	}
}

// TestKernelV16: decode v16's out-projection with the router's sums
// (outproj_sums) and the MoE kernels that finish the router (moe16_*, and
// v17's moe17_*) against runtime/cpu: the residual after the
// out-projection, rmsnorm, router top-k, mlp1 (SwiGLU) and mlp2 into the
// residual; twice, with the sums buffers swapped as consecutive layers use
// them (the first launch's mlp2 clears the second's buffer, which must then
// sum from zero). v17 multiplies half activations in half2 sums of 16
// products, ~1e-3 of a dot product: its tolerance is 3e-3 (a wrong index
// or scale is off by O(1)). The shapes cover rows of an odd block count
// (scales not 4-byte aligned), rows shorter than a warp's 32 blocks, 20b's
// and 120b's, and a norm scale of ~3000 (staged activations far beyond
// half's range unless scaled).
func TestKernelV16(t *testing.T) {
	d, s := gpu(t)
	r := rand.New(rand.NewPCG(23, 24))
	for _, v := range []int{16, 17} {
		switch {
		case v == 16 && !d.moe7OK():
			t.Logf("v16: the device refused moe7's dynamic shared memory: %v", d.dynErr)
			continue
		case v == 17 && !d.moe17OK():
			t.Logf("v17: the device refused moe17's dynamic shared memory: %v", d.dynErr)
			continue
		}
		tol := 1e-4
		if v == 17 {
			tol = 3e-3
		}
		for _, c := range []v16Case{{tH, tHq * tD, tI, tE, tK, 2, false}, {tH, tHq * tD, tI, 128, tK, 2, false}, {128, 128, 64, 8, 4, 2, false},
			{160, 96, 32, 5, 1, 2, false}, {224, 64, 96, 6, 2, 2, false}, {128, 128, 64, 8, 4, 3000, false},
			{tH, tHq * tD, tI, tE, tK, 2, true}, {160, 96, 32, 5, 1, 2, true}} {
			t.Run(fmt.Sprintf("v%d H=%d K=%d I=%d E=%d k=%d gamma=%g q8=%v", v, c.H, c.K, c.I, c.E, c.k, c.gamma, c.q8), func(t *testing.T) {
				testV16Case(t, d, s, r, v, c, tol)
			})
		}
	}
}

// v16Case is one shape of TestKernelV16: hidden H, attention width K,
// intermediate I, E experts, top k, and the norm scale's magnitude.
type v16Case struct {
	H, K, I, E, k int
	gamma         float32
	q8            bool // the out-projection's Q8 kernel (outproj_sums_q8_*)
}

func testV16Case(t *testing.T, d *device, s *stream, r *rand.Rand, v int, c v16Case, tol float64) {
	sums, err := d.alloc(2 * partFloats * 4)
	must(t, err)
	defer d.free(sums)
	// buffer 0 starts zero; buffer 1 holds garbage the first
	// launch's mlp2 must clear
	must(t, check("memset", drv.MemsetD8Async(sums, 0, partFloats*4, s.s)))
	must(t, check("memset", drv.MemsetD8Async(sums+partFloats*4, 0x3f, partFloats*4, s.s)))
	for round := range 2 {
		part, other := sums, sums+partFloats*4
		if round == 1 {
			part, other = other, part
		}
		w := randBF16(r, c.H*c.K, 0.05)
		bias := randBF16(r, c.H, 0.5)
		attn := randF32(r, c.K, 1)
		x0 := randF32(r, c.H, 3)
		scale := randBF16(r, c.H, c.gamma)
		g := randBF16(r, c.E*c.H, 0.05)
		gb := randBF16(r, c.E, 0.5)
		w1b, w1s := randMXFP4(r, c.E*2*c.I, c.H)
		w2b, w2s := randMXFP4(r, c.E*c.H, c.I)
		b1, b2 := randBF16(r, c.E*2*c.I, 0.5), randBF16(r, c.E*c.H, 0.5)
		x := devF32(t, d, s, x0)
		dgb, dscale := devBytes(t, d, s, gb), devBytes(t, d, s, scale)
		act := devPoison(t, d, s, c.k*c.I)
		dw, ref := devMat(t, d, s, w, c.H, c.K, c.q8)
		must(t, s.outSums(dw, devBytes(t, d, s, bias), devF32(t, d, s, attn), x, devBytes(t, d, s, g), dscale, part, c.H, c.K, c.E))
		wantX1 := make([]float32, c.H)
		ref(wantX1, bias, attn)
		for i := range wantX1 {
			wantX1[i] += x0[i]
		}
		relErr(t, fmt.Sprintf("outproj_sums x (round %d)", round), readF32(t, s, x, c.H), wantX1, 1e-5)
		must(t, s.moeSumsMLP1(v, devBytes(t, d, s, w1b), devBytes(t, d, s, w1s), devBytes(t, d, s, b1), x, dscale, part, dgb, act, c.I, c.H, c.E, c.k, 7, 1e-5))
		must(t, s.moeSumsMLP2(v, devBytes(t, d, s, w2b), devBytes(t, d, s, w2s), devBytes(t, d, s, b2), act, part, dgb, other, x, c.H, c.I, c.E, c.k, 1e-5))
		xn := make([]float32, c.H)
		cpu.RMSNorm(xn, wantX1, scale, 1e-5)
		logits := make([]float32, c.E)
		cpu.MatVecBF16(logits, g, gb, xn, c.E, c.H)
		idx := make([]int, c.k)
		wt := make([]float32, c.k)
		cpu.RouterTopK(logits, c.k, idx, wt)
		want := append([]float32(nil), wantX1...)
		wantAct := cpuMoE(want, xn, idx, wt, w1b, w1s, b1, w2b, w2s, b2, c.H, c.I)
		tolAct, tolX := tol, tol
		if v == 17 {
			// v17's half arithmetic errs by a fraction of a dot product's
			// terms, not of its result: where SwiGLU's clamp leaves only the
			// outputs near zero unclamped (a large gamma), the relative error
			// grows the way it does with the bf16 activations of OpenAI's
			// reference. The limit: tol, or twice what rounding xn to bf16
			// moves the same outputs by.
			xb := make([]float32, len(xn))
			for i, f := range xn {
				xb[i] = bf16Round(f)
			}
			wantB := append([]float32(nil), wantX1...)
			actB := cpuMoE(wantB, xb, idx, wt, w1b, w1s, b1, w2b, w2s, b2, c.H, c.I)
			eAct, eX := relErrOf(actB, wantAct), relErrOf(wantB, want)
			tolAct, tolX = max(tol, 2*eAct), max(tol, 2*eX)
			t.Logf("bf16 activations move mlp1 by %.3g, the residual by %.3g: limits %.3g, %.3g", eAct, eX, tolAct, tolX)
		}
		relErr(t, fmt.Sprintf("moe%d mlp1 (round %d)", v, round), readF32(t, s, act, c.k*c.I), wantAct, tolAct)
		relErr(t, fmt.Sprintf("moe%d mlp2 into the residual (round %d)", v, round), readF32(t, s, x, c.H), want, tolX)
		if z := readF32(t, s, other, partFloats); slices.ContainsFunc(z, func(v float32) bool { return v != 0 }) {
			t.Fatalf("round %d: mlp2 left the other sums buffer non-zero", round)
		}
	}
}
