package cpu

// The mixture-of-experts block for a chunk of tokens: route, group the
// chosen (token, expert) pairs by expert, run each active expert's two
// MXFP4 matrices over its tokens (one parallel loop over every active
// expert's row tiles, so the weights of an expert are read once per
// chunk), then add each token's weighted expert outputs in slot order.

type moeBuffers struct {
	idx            []int     // [n][k] chosen experts
	w              []float32 // [n][k] their weights
	where          []int     // [n][k] row of the pair in the grouped buffers
	active, off    []int     // active experts; their first grouped row (len active+1)
	count          []int     // per expert
	xe, he, ae, ye []float32 // grouped inputs, W1 outputs, SwiGLU outputs, W2 outputs
	split          []float32 // inputs split per block (splitBlocks)
}

func growInts(b []int, n int) []int {
	if cap(b) < n {
		return make([]int, n)
	}
	return b[:n]
}

// fusedBelow: an expert tile with fewer tokens than this dots the MXFP4
// blocks directly instead of widening the rows to f32 first.
const fusedBelow = 4

func (s *sequence) moeLayer(lw *layerWeights, n int) {
	m := s.m
	c := m.c
	E, K, H, I := c.NumExperts, c.ExpertsPerToken, c.HiddenSize, c.IntermediateSize
	b := &s.moe
	b.idx, b.w, b.where = growInts(b.idx, n*K), grow(b.w, n*K), growInts(b.where, n*K)
	b.count = growInts(b.count, E)
	clear(b.count)
	for i := 0; i < n; i++ {
		RouterTopK(s.router[i*E:(i+1)*E], K, b.idx[i*K:(i+1)*K], b.w[i*K:(i+1)*K])
		for _, e := range b.idx[i*K : (i+1)*K] {
			b.count[e]++
		}
	}
	b.active, b.off = b.active[:0], append(b.off[:0], 0)
	start := growInts(nil, E)
	for e := 0; e < E; e++ {
		if b.count[e] > 0 {
			start[e] = b.off[len(b.off)-1]
			b.active = append(b.active, e)
			b.off = append(b.off, start[e]+b.count[e])
		}
	}
	rows := n * K
	b.xe, b.he = growPadded(b.xe, rows, H), grow(b.he, rows*2*I)
	b.ae, b.ye = growPadded(b.ae, rows, I), grow(b.ye, rows*H)
	fill := start
	for i := 0; i < n; i++ {
		for k := 0; k < K; k++ {
			e := b.idx[i*K+k]
			r := fill[e]
			fill[e]++
			b.where[i*K+k] = r
			copy(b.xe[r*H:(r+1)*H], s.t[i*H:(i+1)*H])
		}
	}
	mo := &lw.moe
	s.expertPass(mo, true, b.xe, b.he, 2*I, H)
	limit := float32(c.SwigluLimit)
	m.p.For(rows, 16, func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			SwiGLU(b.ae[r*I:(r+1)*I], b.he[r*2*I:(r+1)*2*I], limit)
		}
	})
	s.expertPass(mo, false, b.ae, b.ye, H, I)
	for i := 0; i < n; i++ {
		xi := s.x[i*H : (i+1)*H]
		for k := 0; k < K; k++ {
			r := b.where[i*K+k]
			wk := b.w[i*K+k]
			axpy(xi, b.ye[r*H:(r+1)*H], wk)
		}
	}
}

// expertPass runs W1 (first) or W2 of every active expert over its
// grouped rows of in ([rows][cols]) into out ([rows][outRows]).
func (s *sequence) expertPass(mo *moeWeights, first bool, in, out []float32, outRows, cols int) {
	m := s.m
	b := &s.moe
	tilesPer := (outRows + rowTile - 1) / rowTile
	nb := cols / 32
	// The fused path's inputs, split per block for the AVX-512 kernel.
	xs := in
	if useAsm && useAVX512 {
		b.split = grow(b.split, len(in))
		xs = b.split
		for ai := range b.active {
			if g0, g1 := b.off[ai], b.off[ai+1]; g1-g0 < fusedBelow {
				for r := g0; r < g1; r++ {
					splitBlocks(xs[r*cols:(r+1)*cols], in[r*cols:(r+1)*cols])
				}
			}
		}
	}
	m.p.For(len(b.active)*tilesPer, 1, func(wk, lo, hi int) {
		for item := lo; item < hi; item++ {
			ai, j := item/tilesPer, item%tilesPer
			w1b, w1s, b1, w2b, w2s, b2 := mo.expert(b.active[ai])
			blocks, scales, bias := w2b, w2s, b2
			if first {
				blocks, scales, bias = w1b, w1s, b1
			}
			g0, cnt := b.off[ai], b.off[ai+1]-b.off[ai]
			x := in[g0*cols : (g0+cnt)*cols]
			o := out[g0*outRows : (g0+cnt)*outRows]
			r0, r1 := j*rowTile, min((j+1)*rowTile, outRows)
			if cnt < fusedBelow {
				for r := r0; r < r1; r++ {
					bl, sc := blocks[r*nb*16:(r+1)*nb*16], scales[r*nb:(r+1)*nb]
					for t := 0; t < cnt; t++ {
						o[t*outRows+r] = dotMXFP4Split(bl, sc, xs[(g0+t)*cols:(g0+t+1)*cols], x[t*cols:(t+1)*cols])
					}
				}
			} else {
				buf := m.tiles.get(wk, rowTile*cols)
				for r := r0; r < r1; r++ {
					mxfp4Row(buf[(r-r0)*cols:(r-r0+1)*cols], blocks[r*nb*16:(r+1)*nb*16], scales[r*nb:(r+1)*nb])
				}
				gemmTile(o, buf, x, cnt, outRows, cols, r0, r1)
			}
			for r := r0; r < r1; r++ {
				bv := bf16(bias[2*r], bias[2*r+1])
				for t := 0; t < cnt; t++ {
					o[t*outRows+r] += bv
				}
			}
		}
	})
}
