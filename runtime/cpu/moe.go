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
	b.xe = growPadded(b.xe, rows, H)
	b.ae, b.ye = growPadded(b.ae, rows, I), grow(b.ye, rows*H)
	split := splitKernels()
	fill := start
	for i := 0; i < n; i++ {
		for k := 0; k < K; k++ {
			e := b.idx[i*K+k]
			r := fill[e]
			fill[e]++
			b.where[i*K+k] = r
			if split {
				splitBlocks(b.xe[r*H:(r+1)*H], s.t[i*H:(i+1)*H])
			} else {
				copy(b.xe[r*H:(r+1)*H], s.t[i*H:(i+1)*H])
			}
		}
	}
	mo := &lw.moe
	s.expertPass(mo, true, b.xe, b.ae, 2*I, H)
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
// grouped rows of in ([rows][cols]). Each tile of 16 output rows lands in
// a small per-worker buffer [tokens][16], then: for W1, bias and SwiGLU
// (the 16 rows are 8 gate/linear pairs) straight into out = the SwiGLU
// outputs [rows][I] (in split order when the AVX-512 kernels run); for
// W2, bias into out [rows][outRows]. The W1 outputs never go to memory
// as a whole.
func (s *sequence) expertPass(mo *moeWeights, first bool, in, out []float32, outRows, cols int) {
	m := s.m
	b := &s.moe
	tilesPer := (outRows + rowTile - 1) / rowTile
	nb := cols / 32
	split := splitKernels() // in is in split order
	limit := float32(m.c.SwigluLimit)
	I := m.c.IntermediateSize
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
			r0, r1 := j*rowTile, min((j+1)*rowTile, outRows)
			nr := r1 - r0
			o := m.outTiles.get(wk, cnt*rowTile) // [cnt][rowTile]
			if cnt < fusedBelow {
				for r := r0; r < r1; r++ {
					bl, sc := blocks[r*nb*16:(r+1)*nb*16], scales[r*nb:(r+1)*nb]
					for t := 0; t < cnt; t++ {
						if split {
							o[t*rowTile+r-r0] = dotMXFP4AVX512(&bl[0], &sc[0], nb, &x[t*cols], &mxConsts[0])
						} else {
							o[t*rowTile+r-r0] = dotMXFP4(bl, sc, x[t*cols:(t+1)*cols])
						}
					}
				}
			} else {
				buf := m.tiles.get(wk, rowTile*cols)
				for r := r0; r < r1; r++ {
					if split {
						mxfp4RowSplit(buf[(r-r0)*cols:(r-r0+1)*cols], blocks[r*nb*16:(r+1)*nb*16], scales[r*nb:(r+1)*nb])
					} else {
						mxfp4Row(buf[(r-r0)*cols:(r-r0+1)*cols], blocks[r*nb*16:(r+1)*nb*16], scales[r*nb:(r+1)*nb])
					}
				}
				gemmTile(o, buf, x, cnt, rowTile, cols, 0, nr)
			}
			var bv [rowTile]float32
			for r := r0; r < r1; r++ {
				bv[r-r0] = bf16(bias[2*r], bias[2*r+1])
			}
			for t := 0; t < cnt; t++ {
				v := o[t*rowTile : t*rowTile+nr]
				for k := range v {
					v[k] += bv[k]
				}
				if !first {
					copy(out[(g0+t)*outRows+r0:], v)
					continue
				}
				var a [rowTile / 2]float32
				SwiGLU(a[:nr/2], v, limit)
				dst := out[(g0+t)*I : (g0+t+1)*I]
				j0 := r0 / 2
				if !split {
					copy(dst[j0:], a[:nr/2])
					continue
				}
				for k, av := range a[:nr/2] {
					jj := j0 + k
					dst[jj&^31+(jj&1)*16+(jj&31)/2] = av
				}
			}
		}
	})
}
