package cpu

import (
	"math"
	"unsafe"
)

// The hot loops. Each kernel has a pure-Go version (kernels.go, always
// built, the reference the assembly is tested against) and, on amd64 with
// AVX2+FMA, an assembly version (kernels_amd64.s) that handles the length
// rounded down to a multiple of 8 (or whole MXFP4 blocks); Go finishes the
// tail. useAsm switches between them (tests flip it).

// fp4x2 is the E2M1 table doubled (integers, so the assembly can use a byte
// shuffle); e8m0Half[s] = 2^(s−127)/2 undoes the doubling.
var fp4x2 = [16]int8{0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12}

var e8m0Half [256]float32

// fp4Pair[b] holds the two values of byte b (even element low nibble) at
// scale 1.
var fp4Pair [256][2]float32

func init() {
	for s := range e8m0Half {
		e8m0Half[s] = float32(math.Ldexp(1, s-128))
	}
	for b := range fp4Pair {
		fp4Pair[b] = [2]float32{float32(fp4x2[b&15]) / 2, float32(fp4x2[b>>4]) / 2}
	}
}

func bf16(lo, hi byte) float32 {
	return math.Float32frombits(uint32(lo)<<16 | uint32(hi)<<24)
}

func dotBF16Go(w []byte, x []float32) float32 {
	var s0, s1, s2, s3 float32
	n := len(x)
	i := 0
	for ; i+4 <= n; i += 4 {
		s0 += bf16(w[2*i], w[2*i+1]) * x[i]
		s1 += bf16(w[2*i+2], w[2*i+3]) * x[i+1]
		s2 += bf16(w[2*i+4], w[2*i+5]) * x[i+2]
		s3 += bf16(w[2*i+6], w[2*i+7]) * x[i+3]
	}
	for ; i < n; i++ {
		s0 += bf16(w[2*i], w[2*i+1]) * x[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func dotF32Go(a, b []float32) float32 {
	var s0, s1, s2, s3 float32
	n := len(a)
	b = b[:n]
	i := 0
	for ; i+4 <= n; i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < n; i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// dotMXFP4Go is Σ W·x over len(scales) blocks of 32 values.
func dotMXFP4Go(blocks, scales []byte, x []float32) float32 {
	var sum float32
	for g, s := range scales {
		blk := blocks[16*g : 16*g+16]
		xs := x[32*g : 32*g+32]
		var a0, a1 float32
		for b := 0; b < 16; b++ {
			p := &fp4Pair[blk[b]]
			a0 += p[0] * xs[2*b]
			a1 += p[1] * xs[2*b+1]
		}
		sum += (a0 + a1) * e8m0Half[s] * 2
	}
	return sum
}

func bf16RowGo(out []float32, w []byte) {
	for i := range out {
		out[i] = bf16(w[2*i], w[2*i+1])
	}
}

// mxfp4Row dequantizes one row (len(scales) blocks) into out.
func mxfp4Row(out []float32, blocks, scales []byte) {
	if len(scales) == 0 {
		return
	}
	_ = blocks[16*len(scales)-1]
	_ = out[32*len(scales)-1]
	if useAsm {
		mxfp4RowAsm(&out[0], &blocks[0], &scales[0], len(scales))
		return
	}
	mxfp4RowGo(out, blocks, scales)
}

func mxfp4RowGo(out []float32, blocks, scales []byte) {
	for g, s := range scales {
		f := e8m0Half[s] * 2
		blk := blocks[16*g : 16*g+16]
		o := out[32*g : 32*g+32]
		for b := 0; b < 16; b++ {
			p := &fp4Pair[blk[b]]
			o[2*b] = p[0] * f
			o[2*b+1] = p[1] * f
		}
	}
}

// dot4F32Go: out[k] = Σ_c w[c]·x[k·stride+c] for k < 4.
func dot4F32Go(w, x []float32, stride int, out *[4]float32) {
	for k := 0; k < 4; k++ {
		out[k] = dotF32Go(w, x[k*stride:k*stride+len(w)])
	}
}

// Dispatchers.

func dotBF16(w []byte, x []float32) float32 {
	n := len(x)
	if useAsm && useAVX512 && n >= 16 {
		m := n &^ 15
		s := dotBF16AVX512(unsafe.Pointer(&w[0]), &x[0], m)
		if m < n {
			s += dotBF16Go(w[2*m:2*n], x[m:])
		}
		return s
	}
	if useAsm && n >= 8 {
		m := n &^ 7
		s := dotBF16Asm(unsafe.Pointer(&w[0]), &x[0], m)
		if m < n {
			s += dotBF16Go(w[2*m:2*n], x[m:])
		}
		return s
	}
	return dotBF16Go(w[:2*n], x)
}

func dotF32(a, b []float32) float32 {
	n := len(a)
	if useAsm && n >= 8 {
		m := n &^ 7
		s := dotF32Asm(&a[0], &b[0], m)
		if m < n {
			s += dotF32Go(a[m:], b[m:n])
		}
		return s
	}
	return dotF32Go(a, b[:n])
}

func dotMXFP4(blocks, scales []byte, x []float32) float32 {
	if len(scales) == 0 {
		return 0
	}
	_ = blocks[16*len(scales)-1]
	_ = x[32*len(scales)-1]
	if useAsm {
		return dotMXFP4Asm(&blocks[0], &scales[0], len(scales), &x[0])
	}
	return dotMXFP4Go(blocks, scales, x)
}

func bf16Row(out []float32, w []byte) {
	n := len(out)
	_ = w[2*n-1]
	if useAsm && n >= 8 {
		m := n &^ 7
		bf16RowAsm(&out[0], unsafe.Pointer(&w[0]), m)
		if m < n {
			bf16RowGo(out[m:], w[2*m:])
		}
		return
	}
	bf16RowGo(out, w)
}

func dot4F32(w, x []float32, stride int, out *[4]float32) {
	n := len(w)
	_ = x[3*stride+n-1]
	if useAsm && n >= 8 {
		m := n &^ 7
		dot4F32Asm(&w[0], &x[0], stride*4, m, out)
		if m < n {
			for k := 0; k < 4; k++ {
				out[k] += dotF32Go(w[m:], x[k*stride+m:k*stride+n])
			}
		}
		return
	}
	dot4F32Go(w, x, stride, out)
}

// expConsts: the lowest argument of exp (below it the result would be
// subnormal: it is clamped, giving ~1e-38), log2 e, ln 2 split in a high
// part exact in float32 and the rest, the Taylor coefficients of e^r for
// |r| ≤ ln2/2 (degree 6: relative error below 2e-7), and the highest
// argument (clamped: e^88 ≈ 1.7e38 is still finite).
var expConsts = [11]float32{-87.3, 1.44269504, 0.693359375, -2.12194440e-4, 1, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 88}

// expSub sets x[i] = exp(x[i] − m) and returns the sum (float64 math in
// the pure-Go version).
func expSub(x []float32, m float32) float32 {
	n := len(x)
	var sum float32
	i := 0
	if useAsm && n >= 8 {
		i = n &^ 7
		sum = expSubAsm(&x[0], i, m, &expConsts[0])
	}
	for ; i < n; i++ {
		e := float32(math.Exp(float64(min(max(x[i]-m, expConsts[0]), expConsts[10]))))
		x[i] = e
		sum += e
	}
	return sum
}

// axpy: y += a·x.
func axpy(y, x []float32, a float32) {
	n := len(y)
	x = x[:n]
	i := 0
	if useAsm && n >= 8 {
		i = n &^ 7
		axpyAsm(&y[0], &x[0], i, a)
	}
	for ; i < n; i++ {
		y[i] += a * x[i]
	}
}

// wsum: out[c] += Σ_j p[j]·v[j·stride + c] for c < len(out), j < len(p)
// (the attention's probability-weighted sum of value rows).
func wsum(out, v []float32, stride int, p []float32) {
	n, d := len(p), len(out)
	if n == 0 {
		return
	}
	_ = v[(n-1)*stride+d-1]
	c := 0
	if useAsm {
		for ; c+32 <= d; c += 32 {
			wsum32Asm(&out[c], &v[c], stride*4, &p[0], n)
		}
		for ; c+8 <= d; c += 8 {
			wsum8Asm(&out[c], &v[c], stride*4, &p[0], n)
		}
	}
	if c == d {
		return
	}
	for j, pj := range p {
		row := v[j*stride+c : j*stride+d]
		for i, x := range row {
			out[c+i] += pj * x
		}
	}
}

// scores4: for key rows j < n (row stride kstride), out[h·ostride + j] =
// keys[j]·q[h·d : (h+1)·d] for the four query rows h < 4.
func scores4(out []float32, ostride int, keys []float32, kstride int, q []float32, d, n int) {
	if n == 0 {
		return
	}
	_ = out[3*ostride+n-1]
	_ = keys[(n-1)*kstride+d-1]
	_ = q[4*d-1]
	if useAsm && d%8 == 0 {
		scores4Asm(&out[0], ostride*4, &keys[0], kstride*4, &q[0], d, n)
		return
	}
	var acc [4]float32
	for j := 0; j < n; j++ {
		dot4F32Go(keys[j*kstride:j*kstride+d], q, d, &acc)
		for h := 0; h < 4; h++ {
			out[h*ostride+j] = acc[h]
		}
	}
}

// maxOf returns max(m, x...) (NaNs are not expected).
func maxOf(m float32, x []float32) float32 {
	i := 0
	if useAsm && len(x) >= 8 {
		i = len(x) &^ 7
		m = max(m, maxAsm(&x[0], i))
	}
	for _, v := range x[i:] {
		if v > m {
			m = v
		}
	}
	return m
}

// mxConsts is the AVX-512 MXFP4 kernel's tables: the 16 E2M1 values, then
// 2^(s−127) for every scale byte s.
var mxConsts = func() (c [16 + 256]float32) {
	for i, v := range fp4x2 {
		c[i] = float32(v) / 2
	}
	c[8] = float32(math.Copysign(0, -1))
	for s := 0; s < 256; s++ {
		c[16+s] = float32(math.Ldexp(1, s-127))
	}
	return
}()

// splitBlocks writes x (len a multiple of 32) into xs with each block of
// 32 values reordered as its 16 even elements then its 16 odd ones — the
// order dotMXFP4Split wants (the AVX-512 kernel looks the two nibbles of a
// byte up as two 16-lane vectors).
func splitBlocks(xs, x []float32) {
	for g := 0; g+32 <= len(x); g += 32 {
		for i := 0; i < 16; i++ {
			xs[g+i] = x[g+2*i]
			xs[g+16+i] = x[g+2*i+1]
		}
	}
}

// dotMXFP4Split is dotMXFP4 for x already split by splitBlocks (xs);
// x is the same vector in natural order, used where there is no AVX-512.
func dotMXFP4Split(blocks, scales []byte, xs, x []float32) float32 {
	if useAsm && useAVX512 && len(scales) > 0 {
		_ = blocks[16*len(scales)-1]
		_ = xs[32*len(scales)-1]
		return dotMXFP4AVX512(&blocks[0], &scales[0], len(scales), &xs[0], &mxConsts[0])
	}
	return dotMXFP4(blocks, scales, x)
}

// splitKernels says whether the MoE runs on split inputs (splitBlocks
// order): the AVX-512 MXFP4 kernels want them, and dot products between
// two vectors both in split order are unchanged.
func splitKernels() bool { return useAsm && useAVX512 }

// mxfp4RowSplit dequantizes one row in split order (AVX-512 only).
func mxfp4RowSplit(out []float32, blocks, scales []byte) {
	if len(scales) == 0 {
		return
	}
	_ = blocks[16*len(scales)-1]
	_ = out[32*len(scales)-1]
	mxfp4RowSplitAVX512(&out[0], &blocks[0], &scales[0], len(scales), &mxConsts[0])
}
