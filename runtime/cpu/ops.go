package cpu

import (
	"fmt"
	"math"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/runtime"
)

// BF16ToF32 widens little-endian BF16 bytes; len(out) = len(b)/2.
func BF16ToF32(b []byte, out []float32) {
	bf16Row(out[:len(b)/2], b)
}

// Embed writes row tok of a BF16 [V, hidden] table into out[:hidden].
func Embed(out []float32, table []byte, tok int32, hidden int) {
	row := int(tok) * hidden * 2
	BF16ToF32(table[row:row+2*hidden], out[:hidden])
}

// RMSNorm: out = x / sqrt(mean(x²) + eps) · scale, for one vector (the
// sum of squares in float64). out may be x.
func RMSNorm(out, x []float32, scale []byte, eps float32) {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	r := float32(1 / math.Sqrt(ss/float64(len(x))+float64(eps)))
	for i, v := range x {
		out[i] = v * r * bf16(scale[2*i], scale[2*i+1])
	}
}

// MatVecBF16: out[r] = Σ_c W[r,c]·x[c] + b[r], W a BF16 [rows, cols]
// matrix, bias BF16 [rows] or nil; parallel over rows.
func MatVecBF16(out []float32, w, bias []byte, x []float32, rows, cols int) {
	matVecBF16(shared(), out, w, bias, x, rows, cols)
}

func matVecBF16(p *pool, out []float32, w, bias []byte, x []float32, rows, cols int) {
	_ = w[2*rows*cols-1]
	x = x[:cols]
	p.For(rows, 8, func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			s := dotBF16(w[2*r*cols:2*(r+1)*cols], x)
			if bias != nil {
				s += bf16(bias[2*r], bias[2*r+1])
			}
			out[r] = s
		}
	})
}

// MatVecQ8 is MatVecBF16 over a matrix in runtime.QuantizeQ8's format
// (q [rows][cols] int8, d [rows][cols/32] BF16 scales).
func MatVecQ8(out []float32, q, d, bias []byte, x []float32, rows, cols int) {
	matVecQ8(shared(), out, q, d, bias, x, rows, cols)
}

func matVecQ8(p *pool, out []float32, q, d, bias []byte, x []float32, rows, cols int) {
	nb := cols / runtime.Q8Block
	_ = q[rows*cols-1]
	_ = d[2*rows*nb-1]
	x = x[:cols]
	p.For(rows, 8, func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			s := dotQ8(q[r*cols:(r+1)*cols], d[2*r*nb:2*(r+1)*nb], x)
			if bias != nil {
				s += bf16(bias[2*r], bias[2*r+1])
			}
			out[r] = s
		}
	})
}

// dotQ8 is one Q8 row · x: each block's sum of q·x (exact int8 values)
// times the block's scale.
func dotQ8(q, d []byte, x []float32) float32 {
	nb := len(q) / runtime.Q8Block
	if useAsm && nb > 0 {
		_ = d[2*nb-1]
		_ = x[len(q)-1]
		return dotQ8Asm(&q[0], &d[0], nb, &x[0])
	}
	return dotQ8Go(q, d, x)
}

func dotQ8Go(q, d []byte, x []float32) float32 {
	var s float32
	for j := 0; j < len(q)/runtime.Q8Block; j++ {
		qb, xb := q[j*runtime.Q8Block:(j+1)*runtime.Q8Block], x[j*runtime.Q8Block:(j+1)*runtime.Q8Block]
		var s0, s1, s2, s3 float32
		for i := 0; i < runtime.Q8Block; i += 4 {
			s0 += float32(int8(qb[i])) * xb[i]
			s1 += float32(int8(qb[i+1])) * xb[i+1]
			s2 += float32(int8(qb[i+2])) * xb[i+2]
			s3 += float32(int8(qb[i+3])) * xb[i+3]
		}
		s += ((s0 + s1) + (s2 + s3)) * bf16(d[2*j], d[2*j+1])
	}
	return s
}

// rowTile is how many weight rows one task widens to f32 at a time in the
// batched kernels (they then meet every token while in cache).
const rowTile = 16

// MatMulBF16 is MatVecBF16 for n tokens: x [n, cols] → out [n, rows].
// Each weight row is read once per call.
func MatMulBF16(out []float32, w, bias []byte, x []float32, n, rows, cols int) {
	s := newScratch(shared().n, rowTile*cols)
	matMulBF16(shared(), s, out, w, bias, x, n, rows, cols)
}

// scratch is per-worker f32 memory.
type scratch [][]float32

func newScratch(workers, size int) scratch {
	s := make(scratch, workers)
	for i := range s {
		s[i] = make([]float32, size)
	}
	return s
}

func (s scratch) get(w, size int) []float32 {
	if len(s[w]) < size {
		s[w] = make([]float32, size)
	}
	return s[w][:size]
}

func matMulBF16(p *pool, sc scratch, out []float32, w, bias []byte, x []float32, n, rows, cols int) {
	if n == 1 {
		matVecBF16(p, out, w, bias, x, rows, cols)
		return
	}
	_ = w[2*rows*cols-1]
	_ = x[n*cols-1]
	_ = out[n*rows-1]
	p.For(rows, rowTile, func(wk, lo, hi int) {
		for r0 := lo; r0 < hi; r0 += rowTile {
			r1 := min(r0+rowTile, hi)
			buf := sc.get(wk, rowTile*cols)
			for r := r0; r < r1; r++ {
				bf16Row(buf[(r-r0)*cols:(r-r0+1)*cols], w[2*r*cols:2*(r+1)*cols])
			}
			gemmTile(out, buf, x, n, rows, cols, r0, r1)
			if bias != nil {
				for r := r0; r < r1; r++ {
					b := bf16(bias[2*r], bias[2*r+1])
					for t := 0; t < n; t++ {
						out[t*rows+r] += b
					}
				}
			}
		}
	})
}

// gemmTile: out[t·rows + r] = buf[r−r0]·x[t] for r in [r0,r1), every t.
// When x's backing array holds whole groups of four rows (padRows), the
// last partial group is computed as a full one and only its real tokens
// stored.
func gemmTile(out, buf, x []float32, n, rows, cols, r0, r1 int) {
	var acc [4]float32
	var acc8 [8]float32
	var blk [4][rowTile]float32 // the tile's outputs for four tokens
	padded := x[:cap(x)]
	for t := 0; t < n; t += 4 {
		k4 := min(4, n-t)
		if k4 < 4 && len(padded) < (t+4)*cols {
			for ; t < n; t++ {
				xt := x[t*cols : (t+1)*cols]
				for r := r0; r < r1; r++ {
					out[t*rows+r] = dotF32(buf[(r-r0)*cols:(r-r0+1)*cols], xt)
				}
			}
			return
		}
		xt := padded[t*cols : (t+4)*cols]
		r := r0
		if useAsm && cols%8 == 0 {
			wide := useAVX512 && cols%16 == 0
			pairs := (r1 - r0) / 2
			for k := range blk {
				clear(blk[k][:2*pairs])
			}
			// Column blocks small enough that the four tokens' slices stay
			// in L1 while every row pair of the tile passes.
			for c0 := 0; c0 < cols; c0 += colBlock {
				cn := min(colBlock, cols-c0)
				for p := 0; p < pairs; p++ {
					rr := r0 + 2*p
					if wide {
						dot2x4AVX512(&buf[(rr-r0)*cols+c0], cols*4, &xt[c0], cols*4, cn, &acc8)
					} else {
						dot2x4Asm(&buf[(rr-r0)*cols+c0], cols*4, &xt[c0], cols*4, cn, &acc8)
					}
					for k := 0; k < 4; k++ {
						blk[k][2*p] += acc8[k]
						blk[k][2*p+1] += acc8[4+k]
					}
				}
			}
			r = r0 + 2*pairs
		}
		for ; r < r1; r++ {
			dot4F32(buf[(r-r0)*cols:(r-r0+1)*cols], xt, cols, &acc)
			for k := 0; k < 4; k++ {
				blk[k][r-r0] = acc[k]
			}
		}
		for k := 0; k < k4; k++ {
			copy(out[(t+k)*rows+r0:(t+k)*rows+r1], blk[k][:r1-r0])
		}
	}
}

// colBlock is the column block of gemmTile (a multiple of 16; 2880/3).
const colBlock = 960

// padRows is n rounded up to whole groups of four (the rows gemmTile may
// read of a padded activation buffer).
func padRows(n int) int { return (n + 3) &^ 3 }

// MatVecMXFP4: out[r] = Σ_c W[r,c]·x[c] + b[r] for an MXFP4 matrix W
// [rows, cols] (blocks [rows, cols/32, 16], scales [rows, cols/32]),
// dequantized on the fly; bias BF16 [rows] or nil. cols must be a
// multiple of 32.
func MatVecMXFP4(out []float32, blocks, scales, bias []byte, x []float32, rows, cols int) {
	matVecMXFP4(shared(), out, blocks, scales, bias, x, rows, cols)
}

func matVecMXFP4(p *pool, out []float32, blocks, scales, bias []byte, x []float32, rows, cols int) {
	nb := cols / 32
	_ = blocks[rows*nb*16-1]
	_ = scales[rows*nb-1]
	x = x[:cols]
	xs := x
	if useAsm && useAVX512 {
		xs = make([]float32, cols)
		splitBlocks(xs, x)
	}
	p.For(rows, 8, func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			s := dotMXFP4Split(blocks[r*nb*16:(r+1)*nb*16], scales[r*nb:(r+1)*nb], xs, x)
			if bias != nil {
				s += bf16(bias[2*r], bias[2*r+1])
			}
			out[r] = s
		}
	})
}

// Rope holds YaRN rotary tables (GPT-OSS.md §4.3): cos and sin of
// position·inv_freq, both multiplied by the concentration, for positions
// below maxPos; later positions are computed on the fly.
type Rope struct {
	half     int
	invFreq  []float32
	conc     float32
	cos, sin []float32 // [maxPos][half]
}

// NewRope computes the tables of c's RoPE for positions [0, maxPos), in
// float32 as the reference does.
func NewRope(c convert.ModelConfig, maxPos int) *Rope {
	d := c.HeadDim
	half := d / 2
	r := &Rope{half: half, invFreq: make([]float32, half), conc: 1}
	base := c.RopeTheta
	s := c.RopeScalingFactor
	var low, high float64
	if s > 1 {
		r.conc = float32(0.1*math.Log(s) + 1)
		dh := float64(half)
		low = dh * math.Log(float64(c.InitialContextLength)/(c.RopeNTKBeta*2*math.Pi)) / math.Log(base)
		high = dh * math.Log(float64(c.InitialContextLength)/(c.RopeNTKAlpha*2*math.Pi)) / math.Log(base)
	}
	for i := 0; i < half; i++ {
		freq := float32(math.Pow(base, float64(float32(2*i)/float32(d))))
		ext := 1 / freq
		if s <= 1 {
			r.invFreq[i] = ext
			continue
		}
		interp := 1 / (float32(s) * freq)
		ramp := float32((float64(i) - low) / (high - low))
		ramp = min(max(ramp, 0), 1)
		mask := 1 - ramp
		r.invFreq[i] = interp*(1-mask) + ext*mask
	}
	r.cos = make([]float32, maxPos*half)
	r.sin = make([]float32, maxPos*half)
	for p := 0; p < maxPos; p++ {
		r.fill(r.cos[p*half:(p+1)*half], r.sin[p*half:(p+1)*half], p)
	}
	return r
}

func (r *Rope) fill(cos, sin []float32, pos int) {
	for i, f := range r.invFreq {
		phi := float32(pos) * f
		cos[i] = float32(math.Cos(float64(phi))) * r.conc
		sin[i] = float32(math.Sin(float64(phi))) * r.conc
	}
}

// Apply rotates heads×head_dim values of one token at pos, in place,
// half-split (dim i with dim i+head_dim/2).
func (r *Rope) Apply(x []float32, heads, pos int) {
	h := r.half
	var cos, sin []float32
	if (pos+1)*h <= len(r.cos) {
		cos, sin = r.cos[pos*h:(pos+1)*h], r.sin[pos*h:(pos+1)*h]
	} else {
		cos, sin = make([]float32, h), make([]float32, h)
		r.fill(cos, sin, pos)
	}
	for hd := 0; hd < heads; hd++ {
		v := x[hd*2*h : (hd+1)*2*h]
		x1, x2 := v[:h], v[h:2*h]
		for i := 0; i < h; i++ {
			a, b := x1[i], x2[i]
			x1[i] = a*cos[i] - b*sin[i]
			x2[i] = b*cos[i] + a*sin[i]
		}
	}
}

// Attend is attention for one query token: q [heads·headDim]; keys and
// values [nKeys][kvHeads·headDim], already restricted to the allowed keys;
// sinks [heads]; query head h reads kv head h/(heads/kvHeads); scores scaled
// by 1/√headDim; the sink adds exp(sink) to each head's softmax
// denominator. out [heads·headDim].
func Attend(out, q, keys, values, sinks []float32, nKeys, heads, kvHeads, headDim int) {
	g := heads / kvHeads
	buf := make([]float32, attendScratch(g, headDim, nKeys))
	for kh := 0; kh < kvHeads; kh++ {
		attendGroup(out[kh*g*headDim:(kh+1)*g*headDim], q[kh*g*headDim:(kh+1)*g*headDim], keys, values,
			kvHeads*headDim, kh*headDim, nKeys, headDim, sinks[kh*g:(kh+1)*g], buf, nil)
	}
}

func attendScratch(group, headDim, nKeys int) int { return group * (headDim + nKeys) }

// attendGroup is attention for the query heads that share one kv head
// (len(q)/d of them, contiguous) over nKeys rows of keys/values (row
// stride stride, this kv head at offset off). Each key row is loaded once
// for four query heads (scores4). buf holds attendScratch floats.
//
// With part (2 floats per head) it computes a partial result over these
// keys only, for merging with other key ranges (mergeParts): out gets the
// unnormalized Σ e^(s−m)·v, part the max m of the scores and Σ e^(s−m);
// the sinks are left to the merge.
func attendGroup(out, q, keys, values []float32, stride, off, nKeys, d int, sinks, buf, part []float32) {
	g := len(q) / d
	scale := float32(1 / math.Sqrt(float64(d)))
	qs := buf[:g*d]
	for i, v := range q {
		qs[i] = v * scale
	}
	sc := buf[g*d : g*d+g*nKeys]
	h := 0
	for ; h+4 <= g; h += 4 {
		scores4(sc[h*nKeys:], nKeys, keys[off:], stride, qs[h*d:], d, nKeys)
	}
	for ; h < g; h++ {
		for j := 0; j < nKeys; j++ {
			sc[h*nKeys+j] = dotF32(keys[j*stride+off:j*stride+off+d], qs[h*d:(h+1)*d])
		}
	}
	for h := 0; h < g; h++ {
		s := sc[h*nKeys : (h+1)*nKeys]
		o := out[h*d : (h+1)*d]
		if part != nil {
			m := maxOf(float32(math.Inf(-1)), s)
			part[2*h], part[2*h+1] = m, expSub(s, m)
			clear(o)
			wsum(o, values[off:], stride, s)
			continue
		}
		m := maxOf(sinks[h], s)
		sum := expSub(s, m) + float32(math.Exp(float64(sinks[h]-m)))
		clear(o)
		wsum(o, values[off:], stride, s)
		inv := 1 / sum
		for i := range o {
			o[i] *= inv
		}
	}
}

// mergeParts combines nParts partial results of attendGroup for g heads of
// d values (parts [nParts][g·d], ml [nParts][2g]) and the heads' sinks
// into out [g·d].
func mergeParts(out, parts, ml, sinks []float32, nParts, g, d int) {
	for h := 0; h < g; h++ {
		m := sinks[h]
		for p := 0; p < nParts; p++ {
			m = max(m, ml[p*2*g+2*h])
		}
		den := math.Exp(float64(sinks[h] - m))
		o := out[h*d : (h+1)*d]
		clear(o)
		for p := 0; p < nParts; p++ {
			w := math.Exp(float64(ml[p*2*g+2*h] - m))
			den += w * float64(ml[p*2*g+2*h+1])
			axpy(o, parts[p*g*d+h*d:p*g*d+(h+1)*d], float32(w))
		}
		inv := float32(1 / den)
		for i := range o {
			o[i] *= inv
		}
	}
}

// RouterTopK picks the k largest logits (ties: lower index first) into
// idx[:k], sorted by logit descending, and w[:k] = softmax over those k.
func RouterTopK(logits []float32, k int, idx []int, w []float32) {
	for i := 0; i < k; i++ {
		best := -1
		for e, v := range logits {
			taken := false
			for _, t := range idx[:i] {
				if t == e {
					taken = true
					break
				}
			}
			if taken {
				continue
			}
			if best < 0 || v > logits[best] {
				best = e
			}
		}
		idx[i] = best
	}
	m := logits[idx[0]]
	var sum float64
	for i := 0; i < k; i++ {
		e := math.Exp(float64(logits[idx[i]] - m))
		w[i] = float32(e)
		sum += e
	}
	for i := 0; i < k; i++ {
		w[i] = float32(float64(w[i]) / sum)
	}
}

// SwiGLU: h [2I] interleaved (gate at even, linear at odd) → out [I]:
// gate clamped ≤ limit, linear to [−limit, limit], out = gate·σ(1.702·gate)·(linear+1).
// σ uses the engine's exp (relative error below 2e-7).
func SwiGLU(out, h []float32, limit float32) {
	var e [64]float32
	for j0 := 0; j0 < len(out); j0 += len(e) {
		n := min(len(e), len(out)-j0)
		for j := 0; j < n; j++ {
			e[j] = -1.702 * min(h[2*(j0+j)], limit)
		}
		expSub(e[:n], 0)
		for j := 0; j < n; j++ {
			g := min(h[2*(j0+j)], limit)
			l := min(max(h[2*(j0+j)+1], -limit), limit)
			out[j0+j] = g / (1 + e[j]) * (l + 1)
		}
	}
}

// expert is one layer's MoE weights, sliced from the layout.
type moeWeights struct {
	w1b, w1s, b1, w2b, w2s, b2 []byte
	inter, hidden              int
}

func loadMoE(l *convert.Layout, layer int) (moeWeights, error) {
	c := l.Config
	p := fmt.Sprintf("block.%d.mlp.", layer)
	m := moeWeights{
		w1b: l.Bytes(p + "mlp1_weight.blocks"), w1s: l.Bytes(p + "mlp1_weight.scales"), b1: l.Bytes(p + "mlp1_bias"),
		w2b: l.Bytes(p + "mlp2_weight.blocks"), w2s: l.Bytes(p + "mlp2_weight.scales"), b2: l.Bytes(p + "mlp2_bias"),
		inter: c.IntermediateSize, hidden: c.HiddenSize,
	}
	E, I, H := c.NumExperts, c.IntermediateSize, c.HiddenSize
	if H%32 != 0 || I%32 != 0 {
		return m, fmt.Errorf("cpu: hidden %d and intermediate %d must be multiples of 32 (MXFP4 blocks)", H, I)
	}
	want := []struct {
		b    []byte
		n    int
		name string
	}{{m.w1b, E * 2 * I * H / 2, "mlp1_weight.blocks"}, {m.w1s, E * 2 * I * H / 32, "mlp1_weight.scales"}, {m.b1, E * 2 * I * 2, "mlp1_bias"},
		{m.w2b, E * H * I / 2, "mlp2_weight.blocks"}, {m.w2s, E * H * I / 32, "mlp2_weight.scales"}, {m.b2, E * H * 2, "mlp2_bias"}}
	for _, w := range want {
		if len(w.b) != w.n {
			return m, fmt.Errorf("cpu: %s%s has %d bytes, the config implies %d", p, w.name, len(w.b), w.n)
		}
	}
	return m, nil
}

// expert returns expert e's slices: W1 blocks/scales/bias, W2 blocks/scales/bias.
func (m *moeWeights) expert(e int) (w1b, w1s, b1, w2b, w2s, b2 []byte) {
	I, H := m.inter, m.hidden
	r1, r2 := 2*I, H
	return m.w1b[e*r1*H/2 : (e+1)*r1*H/2], m.w1s[e*r1*H/32 : (e+1)*r1*H/32], m.b1[e*r1*2 : (e+1)*r1*2],
		m.w2b[e*r2*I/2 : (e+1)*r2*I/2], m.w2s[e*r2*I/32 : (e+1)*r2*I/32], m.b2[e*r2*2 : (e+1)*r2*2]
}

// ExpertMLP: out = W2_e·SwiGLU(W1_e·x + b1_e) + b2_e for one expert of one
// layer, MXFP4 dequantized on the fly. out and x are [hidden].
func ExpertMLP(out, x []float32, l *convert.Layout, layer, expert int) {
	m, err := loadMoE(l, layer)
	if err != nil {
		panic(err)
	}
	c := l.Config
	w1b, w1s, b1, w2b, w2s, b2 := m.expert(expert)
	h := make([]float32, 2*c.IntermediateSize)
	a := make([]float32, c.IntermediateSize)
	MatVecMXFP4(h, w1b, w1s, b1, x, 2*c.IntermediateSize, c.HiddenSize)
	SwiGLU(a, h, float32(c.SwigluLimit))
	MatVecMXFP4(out, w2b, w2s, b2, a, c.HiddenSize, c.IntermediateSize)
}
