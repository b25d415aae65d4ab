package cuda

import (
	"fmt"
	"math"

	"github.com/gptoss/gptoss/convert"
)

// Kernel launches, one method per kernel (see kernels/gptoss.cu). Shapes are
// in elements; activations are float32.

const warpsPerBlock = 8

var (
	attnKernel = map[int]string{16: "attn_partial_d16", 32: "attn_partial_d32", 64: "attn_partial_d64", 128: "attn_partial_d128"}
	moeKernel  = map[int][2]string{1: {"moe_mlp1_t1", "moe_mlp2_t1"}, 8: {"moe_mlp1_t8", "moe_mlp2_t8"}}
) // matvec / MoE kernels: 256 threads, one warp per row

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func (s *stream) embed(table, tokens, x devPtr, T, H int) error {
	return s.launch("embed", grid(T, 1, 1), grid(256, 1, 1), table, tokens, x, T, H)
}

func (s *stream) rmsnorm(x, scale, out devPtr, T, H int, eps float32) error {
	return s.launch("rmsnorm", grid(T, 1, 1), grid(256, 1, 1), x, scale, out, T, H, eps)
}

// matvec: y[T,N] (+)= x[T,K] · W[N,K]ᵀ + b (bias may be 0).
func (s *stream) matvec(W, bias, x, y devPtr, N, K, T int, accumulate bool) error {
	if K%8 != 0 {
		return fmt.Errorf("matvec: K=%d is not a multiple of 8", K)
	}
	acc := 0
	if accumulate {
		acc = 1
	}
	if T == 1 {
		return s.launch("matvec_bf16_t1", grid(ceilDiv(N, warpsPerBlock), 1, 1), grid(32*warpsPerBlock, 1, 1), W, bias, x, y, N, K, T, acc)
	}
	return s.launch("matvec_bf16_t8", grid(ceilDiv(N, warpsPerBlock), ceilDiv(T, 8), 1), grid(32*warpsPerBlock, 1, 1), W, bias, x, y, N, K, T, acc)
}

func (s *stream) ropeKV(qkv, invFreq, pos, kc, vc devPtr, T, Hq, Hkv, D int, conc float32) error {
	return s.launch("rope_kv", grid(T, 1, 1), grid(256, 1, 1), qkv, invFreq, pos, kc, vc, T, Hq, Hkv, D, conc)
}

// attnSplits is the number of key splits for T query tokens: many for
// decode (one token must fill the GPU), one for prefill.
func attnSplits(T int) int {
	if T <= 4 {
		return 32
	}
	return 1
}

// attention: out[T, Hq*D] for the queries in qkv at positions pos..pos+T-1
// over the cache rows 0..pos+T-1 (window > 0: the last window of them).
// part holds T*Hq*S*(D+2) floats.
func (s *stream) attention(qkv, kc, vc, pos, part, sinks, out devPtr, T, Hq, Hkv, D, window int) error {
	switch D {
	case 16, 32, 64, 128:
	default:
		return fmt.Errorf("attention: head_dim %d is not 16, 32, 64 or 128", D)
	}
	S := attnSplits(T)
	scale := float32(1 / math.Sqrt(float64(D)))
	if err := s.launch(attnKernel[D], grid(Hq, T, S), grid(128, 1, 1),
		qkv, kc, vc, pos, part, T, Hq, Hkv, window, S, scale); err != nil {
		return err
	}
	return s.launch("attn_combine", grid(Hq, T, 1), grid(max(32, D), 1, 1), part, sinks, out, T, Hq, D, S)
}

func (s *stream) routerTopK(logits, ids, wts devPtr, T, E, k int) error {
	return s.launch("router_topk", grid(ceilDiv(T, 8), 1, 1), grid(256, 1, 1), logits, ids, wts, T, E, k)
}

// moeTile is the assignments per MoE tile for T tokens (1 when decoding).
func moeTile(T int) int {
	if T == 1 {
		return 1
	}
	return 8
}

// moeMaxTiles bounds the tiles moe_plan can make for n assignments.
func moeMaxTiles(n, E, tile int) int { return min(n, ceilDiv(n, tile)+E) }

func (s *stream) moePlan(ids devPtr, n, E, tile int, order, tiles, ntiles devPtr) error {
	return s.launch("moe_plan", grid(1, 1, 1), grid(1024, 1, 1), ids, n, E, tile, order, tiles, ntiles)
}

func (s *stream) moeMLP1(blocks, scales, bias, x, order, tiles, ntiles, act devPtr, I, K, topk, tile, maxTiles int, limit float32) error {
	return s.launch(moeKernel[tile][0], grid(ceilDiv(I, warpsPerBlock), maxTiles, 1), grid(32*warpsPerBlock, 1, 1),
		blocks, scales, bias, x, order, tiles, ntiles, act, I, K, topk, limit)
}

func (s *stream) moeMLP2(blocks, scales, bias, act, order, tiles, ntiles, y devPtr, H, I, tile, maxTiles int) error {
	return s.launch(moeKernel[tile][1], grid(ceilDiv(H, warpsPerBlock), maxTiles, 1), grid(32*warpsPerBlock, 1, 1),
		blocks, scales, bias, act, order, tiles, ntiles, y, H, I)
}

// moeDecodeOK says whether the one-token MoE kernels (no plan, combine
// fused into mlp2) handle k experts per token.
func moeDecodeOK(T, k int) bool { return T == 1 && k <= 4 }

// moeMLP1Dec: act[k', :] = SwiGLU(W1_{ids[k']} · x + b1) for the k experts of
// one token.
func (s *stream) moeMLP1Dec(blocks, scales, bias, x, ids, act devPtr, I, K, topk int, limit float32) error {
	return s.launch("moe_mlp1_dec", grid(ceilDiv(I, warpsPerBlock), topk, 1), grid(32*warpsPerBlock, 1, 1),
		blocks, scales, bias, x, ids, act, I, K, topk, limit)
}

// moeMLP2Dec: x += Σ_k' wts[k']·(W2_{ids[k']} · act[k'] + b2) for one token.
func (s *stream) moeMLP2Dec(blocks, scales, bias, act, ids, wts, x devPtr, H, I, topk int) error {
	return s.launch("moe_mlp2_dec", grid(ceilDiv(H, warpsPerBlock), 1, 1), grid(32*warpsPerBlock, 1, 1),
		blocks, scales, bias, act, ids, wts, x, H, I, topk)
}

func (s *stream) moeCombine(y, wts, x devPtr, T, H, k int) error {
	return s.launch("moe_combine", grid(T, 1, 1), grid(256, 1, 1), y, wts, x, T, H, k)
}

func (s *stream) argmax(v devPtr, n int, out devPtr) error {
	return s.launch("argmax", grid(1, 1, 1), grid(1024, 1, 1), v, n, out)
}

// persistentGrid is the grid of a persistent kernel (256 threads a block,
// warps striding over the work): as many blocks as stay resident on the
// device at once (the occupancy API, per kernel; one block per SM, which
// would leave room for the next kernel's blocks under PDL, measured 20%
// slower), at most one per 8 items.
func (s *stream) persistentGrid(name string, items int) int {
	d := s.d
	d.mu.Lock()
	n, ok := d.resident[name]
	d.mu.Unlock()
	if !ok {
		var v int32
		if f, found := d.fn[name]; found && drv.OccupancyMaxBlocks(&v, f, 32*warpsPerBlock, uint64(d.dynSmem[name])) == 0 && v > 0 {
			n = int(v)
		} else {
			n = 2
		}
		d.mu.Lock()
		d.resident[name] = n
		d.mu.Unlock()
	}
	return max(1, min(max(d.sms, 1)*n, ceilDiv(items, warpsPerBlock)))
}

// prefetchItems is how many of its first rows (row pairs) a warp of the
// BF16 decode GEMVs prefetches into L2 before its PDL wait (measured: 0, 1,
// 2 and 8 within 2% of each other).
const prefetchItems = 1

// fusedMax is the longest vector the fused decode kernels stage in shared
// memory (FMAX in kernels/gptoss.cu).
const fusedMax = 4096

// fusedOK says whether the fused decode kernels handle the model's shapes
// (every staged vector — hidden, expert intermediate, attention output —
// at most fusedMax long and whole MXFP4 blocks; the router's top-k in one
// warp).
func fusedOK(c convert.ModelConfig) bool {
	H, I, A := c.HiddenSize, c.IntermediateSize, c.NumAttentionHeads*c.HeadDim
	return H <= fusedMax && I <= fusedMax && A <= fusedMax && H%32 == 0 && I%32 == 0 && A%32 == 0 &&
		c.NumExperts <= 256 && c.ExpertsPerToken >= 1 && c.ExpertsPerToken <= 8
}

// matvecNorm: y[N] (+)= W · (rmsnorm(x)·scale) + b for one token (scale 0:
// W·x + b). K ≤ fusedMax, K % 32 == 0.
func (s *stream) matvecNorm(W decMat, bias, x, scale, y devPtr, N, K int, eps float32, accumulate bool) error {
	if K > fusedMax || K%32 != 0 {
		return fmt.Errorf("matvec_norm: K=%d (want a multiple of 32 ≤ %d)", K, fusedMax)
	}
	acc := 0
	if accumulate {
		acc = 1
	}
	if W.q8() {
		return s.launchPDL("matvec_norm_q8", grid(s.persistentGrid("matvec_norm_q8", N), 1, 1), grid(32*warpsPerBlock, 1, 1),
			W.w, W.d, bias, x, scale, y, N, K, eps, acc, prefetchItems)
	}
	return s.launchPDL("matvec_norm_t1", grid(s.persistentGrid("matvec_norm_t1", N), 1, 1), grid(32*warpsPerBlock, 1, 1),
		W.w, bias, x, scale, y, N, K, eps, acc, prefetchItems)
}

// decMat is a weight matrix of the fused decode step's GEMVs: BF16 rows
// (d == 0) or, with Options.DecodeQ8, int8 rows w and their BF16 scales d
// (runtime.QuantizeQ8's format; the kernels *_q8).
type decMat struct{ w, d devPtr }

func bf16Mat(w devPtr) decMat { return decMat{w: w} }
func (m decMat) q8() bool     { return m.d != 0 }

// outSums (decode v16): x += W · attn + b for one token, and into part (zero
// before, partFloats) the router's sums from the new x: Σ G[e][r]·scale[r]·
// x[r] per expert and Σ x[r]², which the v16 MoE kernels finish. K ≤
// fusedMax, E ≤ 255 (v16OK).
func (s *stream) outSums(W decMat, bias, attn, x, G, scale, part devPtr, H, K, E int) error {
	if K > fusedMax || K%32 != 0 || E > 255 {
		return fmt.Errorf("outproj_sums: K=%d E=%d (want K a multiple of 32 ≤ %d, E < 256)", K, E, fusedMax)
	}
	name := "outproj_sums_"
	if W.q8() {
		name += "q8_"
	}
	switch { // experts a lane
	case E <= 32:
		name += "1"
	case E <= 128:
		name += "4"
	default:
		name += "8"
	}
	if W.q8() {
		return s.launchPDL(name, grid(s.persistentGrid(name, H), 1, 1), grid(32*warpsPerBlock, 1, 1),
			W.w, W.d, bias, attn, x, G, scale, part, H, K, E)
	}
	return s.launchPDL(name, grid(s.persistentGrid(name, H), 1, 1), grid(32*warpsPerBlock, 1, 1),
		W.w, bias, attn, x, G, scale, part, H, K, E)
}

// partFloats is the float count of one router-sums buffer (OR_COPIES copies
// of OR_EMAX + 1 sums).
const partFloats = 16 * 257

// v17Max is the longest row (K of mlp1, I of mlp2) decode v17's MoE
// kernels take: 3 blocks of 32 values a lane (V17_U).
const v17Max = 3 * 32 * 32

// moeRouterMax is the longest row of decode version v's MoE kernels (16,
// 17).
func moeRouterMax(v int) int {
	if v == 17 {
		return v17Max
	}
	return fusedMax
}

// moeSumsMLP1 (decode v16, v17: moe16_* or moe17_*): the router finished
// from part (norm scale nscale, gate bias gb), then act[k', :] = SwiGLU(W1_e
// · xn + b1) for the k experts, xn = rmsnorm(x)·nscale staged on the way.
// K ≤ moeRouterMax(v).
func (s *stream) moeSumsMLP1(v int, blocks, scales, bias, x, nscale, part, gb, act devPtr, I, K, E, topk int, limit, eps float32) error {
	name := fmt.Sprintf("moe%d_mlp1_dec", v)
	if (v != 16 && v != 17) || K > moeRouterMax(v) || K%32 != 0 || (v == 17 && (I > v17Max || I%32 != 0)) || E > 255 || topk > 8 {
		return fmt.Errorf("%s: K=%d I=%d E=%d k=%d", name, K, I, E, topk)
	}
	items := topk * ceilDiv(I, 2) // v16: two outputs a warp at a time, v17: one
	if v == 17 {
		items = topk * I
	}
	return s.launchPDL(name, grid(s.persistentGrid(name, items), 1, 1),
		grid(32*warpsPerBlock, 1, 1), blocks, scales, bias, x, nscale, part, gb, act, I, K, E, topk, limit, eps)
}

// moeSumsMLP2 (decode v16, v17): the router finished from part again, then
// x += Σ_k' w_k'·(W2_e · act[k'] + b2); zero (the other sums buffer) is
// cleared. I ≤ moeRouterMax(v).
func (s *stream) moeSumsMLP2(v int, blocks, scales, bias, act, part, gb, zero, x devPtr, H, I, E, topk int, eps float32) error {
	name := fmt.Sprintf("moe%d_mlp2_dec", v)
	if (v != 16 && v != 17) || I > moeRouterMax(v) || I%32 != 0 || E > 255 || topk > 8 {
		return fmt.Errorf("%s: I=%d E=%d k=%d", name, I, E, topk)
	}
	items := ceilDiv(H, 2) // per expert slot
	perSlot := min(max(1, s.persistentGrid(name, topk*items)/topk), ceilDiv(items, warpsPerBlock))
	return s.launchPDL(name, grid(perSlot*topk, 1, 1), grid(32*warpsPerBlock, 1, 1),
		blocks, scales, bias, act, part, gb, zero, x, H, I, E, topk, eps)
}

// qkvRope: qkv = W · (rmsnorm(x)·scale) + b for one token, then RoPE on its
// q and k heads at position *pos and k, v into the cache rows (rope_kv
// fused into the GEMV's epilogue).
func (s *stream) qkvRope(W decMat, bias, x, scale, qkv, invFreq, pos, kc, vc devPtr, K, Hq, Hkv, D int, conc, eps float32) error {
	if K > fusedMax || K%32 != 0 || D%2 != 0 {
		return fmt.Errorf("qkv_rope: K=%d D=%d outside the kernel's limits", K, D)
	}
	if W.q8() {
		return s.launchPDL("qkv_rope_q8", grid(s.persistentGrid("qkv_rope_q8", (Hq+2*Hkv)*D/2), 1, 1), grid(32*warpsPerBlock, 1, 1),
			W.w, W.d, bias, x, scale, qkv, invFreq, pos, kc, vc, K, Hq, Hkv, D, conc, eps, prefetchItems)
	}
	return s.launchPDL("qkv_rope_t1", grid(s.persistentGrid("qkv_rope_t1", (Hq+2*Hkv)*D/2), 1, 1), grid(32*warpsPerBlock, 1, 1),
		W.w, bias, x, scale, qkv, invFreq, pos, kc, vc, K, Hq, Hkv, D, conc, eps, prefetchItems)
}

// normRouter: xn = rmsnorm(x)·scale, then the router's top-k experts and
// softmax weights of G·xn + b, for one token, in one block.
func (s *stream) normRouter(x, scale, xn, G, gb, ids, wts devPtr, H, E, k int, eps float32) error {
	if H > fusedMax || H%32 != 0 || E > 256 || k > 8 {
		return fmt.Errorf("norm_router: H=%d E=%d k=%d outside the kernel's limits", H, E, k)
	}
	return s.launchPDL("norm_router", grid(1, 1, 1), grid(1024, 1, 1), x, scale, xn, G, gb, ids, wts, H, E, k, eps)
}

// sampleTopKP draws a token from logits[V] on the device (kernel
// sample_topkp): out[0] the token, out[1] 0, or 1 when the candidates
// exceed the kernel's table (2: no token has any mass) and the caller must
// sample on the host. probs is V floats of scratch.
func (s *stream) sampleTopKP(logits devPtr, V int, temperature float32, topK int, topP, u float32, probs, out devPtr) error {
	if !(temperature > 0) {
		return fmt.Errorf("sample: temperature %v (greedy is argmax)", temperature)
	}
	return s.launch("sample_topkp", grid(1, 1, 1), grid(1024, 1, 1), logits, V, 1/temperature, topK, topP, u, probs, out)
}

// moeTCTile is the assignments per tile of the tensor-core MoE kernels.
const moeTCTile = 16

// moeTCMLP1 / moeTCMLP2: the grouped MoE of a prefill chunk on tensor cores
// (tiles of moeTCTile assignments from moePlan; 64 weight rows a block).
func (s *stream) moeTCMLP1(blocks, scales, bias, x, order, tiles, ntiles, act devPtr, I, K, topk, maxTiles int, limit float32) error {
	return s.launch("moe_tc_mlp1", grid(ceilDiv(2*I, 64), maxTiles, 1), grid(128, 1, 1),
		blocks, scales, bias, x, order, tiles, ntiles, act, I, K, topk, limit)
}

func (s *stream) moeTCMLP2(blocks, scales, bias, act, order, tiles, ntiles, y devPtr, H, I, maxTiles int) error {
	return s.launch("moe_tc_mlp2", grid(ceilDiv(H, 64), maxTiles, 1), grid(128, 1, 1),
		blocks, scales, bias, act, order, tiles, ntiles, y, H, I)
}

// gemmTC: y[T,N] (+)= x[T,K] · W[N,K]ᵀ + b on tensor cores (prefill; K % 32
// == 0), 64 rows × 16 tokens a block.
func (s *stream) gemmTC(W, bias, x, y devPtr, N, K, T int, accumulate bool) error {
	if K%32 != 0 {
		return fmt.Errorf("gemm_tc: K=%d is not a multiple of 32", K)
	}
	acc := 0
	if accumulate {
		acc = 1
	}
	return s.launch("gemm_tc_bf16", grid(ceilDiv(T, 16), ceilDiv(N, 64), 1), grid(128, 1, 1), W, bias, x, y, N, K, T, acc)
}

// attnDecSplits is the key splits of the decode attention (attn_dec): at
// least attnMinKeys (32; v17: Model.attnMin17) keys each, so short contexts
// use few of them.
const attnDecSplits = 64

// b2i is a kernel's int flag.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// attnMinKeys is the fewest keys of an attn_dec split up to v16 (the
// kernel's minc).
const attnMinKeys = 32

// attnMin17Default is v17's: a sliding layer's 128 keys are one split,
// written out directly (not yet measured against others: the benchmark
// test sweeps it, GPTOSS_CUDA_ATTN_MIN sets it).
const attnMin17Default = 128

// attnDecOK says whether attn_dec handles the model's heads (at most 8
// query heads per KV head: one warp each).
func attnDecOK(Hq, Hkv, D int) bool {
	switch D {
	case 16, 32, 64, 128:
	default:
		return false
	}
	return Hkv > 0 && Hq%Hkv == 0 && Hq/Hkv <= 8
}

// attnDec: out[Hq*D] for one query at position *pos over the cache rows
// 0..pos (window > 0: the last window of them), one launch (splits merged
// by the last block of each KV head). part holds Hq*attnDecSplits*(D+2)
// floats; cnt Hkv ints, zero before the first launch (each launch leaves
// them zero). A split takes at least minKeys keys; with direct, a KV head
// whose keys make one split writes out without the merge.
func (s *stream) attnDec(qkv, kc, vc, pos, sinks, part, cnt, out devPtr, Hq, Hkv, D, window, minKeys int, direct bool) error {
	if !attnDecOK(Hq, Hkv, D) {
		return fmt.Errorf("attn_dec: %d query heads, %d KV heads of %d outside the kernel's limits", Hq, Hkv, D)
	}
	scale := float32(1 / math.Sqrt(float64(D)))
	return s.launchPDL(fmt.Sprintf("attn_dec_d%d", D), grid(Hkv, attnDecSplits, 1), grid(32*(Hq/Hkv), 1, 1),
		qkv, kc, vc, pos, sinks, part, cnt, out, Hq, Hkv, window, attnDecSplits, scale, max(minKeys, 1), b2i(direct))
}

// moeDecKernels are the fused step's one-token MoE kernels of each decode
// version (kernels/gptoss.cu) and how many outputs of mlp1 (rows of mlp2)
// a warp takes at a time.
var moeDecKernels = map[int]struct {
	mlp1, mlp2 string
	per        int
}{
	3:  {"moe3_mlp1_dec", "moe3_mlp2_dec", 1},
	6:  {"moe6_mlp1_dec", "moe6_mlp2_dec", 2},
	7:  {"moe7_mlp1_dec", "moe7_mlp2_dec", 2}, // 64 KB of dynamic shared memory
	12: {"moe7_mlp1_dec", "moe12_mlp2_dec", 2},
}

// moe7OK says whether the device took the 64 KB of dynamic shared memory of
// the E2M1 table (moe7's, moe12's and moe16's kernels).
func (d *device) moe7OK() bool {
	return d.dynOK("moe7_mlp1_dec", "moe7_mlp2_dec", "moe12_mlp2_dec", "moe16_mlp1_dec", "moe16_mlp2_dec")
}

// moe17OK says whether the device took the dynamic shared memory of v17's
// MoE kernels (v17Shared).
func (d *device) moe17OK() bool {
	return d.dynOK("moe17_mlp1_dec", "moe17_mlp2_dec")
}

// dynOK says whether the device took the dynamic shared memory of every
// one of these kernels.
func (d *device) dynOK(names ...string) bool {
	for _, n := range names {
		if _, ok := d.dynSmem[n]; !ok {
			return false
		}
	}
	return true
}

// moeDecKernel returns version v's kernels (v6's where the device refused
// v7's and v12's shared memory).
func (s *stream) moeDecKernel(v int) (mlp1, mlp2 string, per int, err error) {
	if v >= 7 && !s.d.moe7OK() {
		v = 6
	}
	k, ok := moeDecKernels[v]
	if !ok {
		return "", "", 0, fmt.Errorf("no decode MoE kernels of version %d", v)
	}
	return k.mlp1, k.mlp2, k.per, nil
}

// moeDecMLP1: act[k', :] = SwiGLU(W1_{ids[k']} · xn + b1) for the k experts
// of one token, one persistent launch (decode version v). K ≤ fusedMax.
func (s *stream) moeDecMLP1(v int, blocks, scales, bias, xn, ids, act devPtr, I, K, topk int, limit float32) error {
	name, _, per, err := s.moeDecKernel(v)
	if err != nil {
		return err
	}
	if K > fusedMax || K%32 != 0 {
		return fmt.Errorf("%s: K=%d (want a multiple of 32 ≤ %d)", name, K, fusedMax)
	}
	return s.launchPDL(name, grid(s.persistentGrid(name, topk*ceilDiv(I, per)), 1, 1), grid(32*warpsPerBlock, 1, 1),
		blocks, scales, bias, xn, ids, act, I, K, topk, limit)
}

// moeDecMLP2: x += Σ_k' wts[k']·(W2_{ids[k']} · act[k'] + b2) for one token
// (decode version v); the grid is a multiple of k, each block serving one
// expert slot. I ≤ fusedMax.
func (s *stream) moeDecMLP2(v int, blocks, scales, bias, act, ids, wts, x devPtr, H, I, topk int) error {
	_, name, per, err := s.moeDecKernel(v)
	if err != nil {
		return err
	}
	if I > fusedMax || I%32 != 0 {
		return fmt.Errorf("%s: I=%d (want a multiple of 32 ≤ %d)", name, I, fusedMax)
	}
	items := ceilDiv(H, per) // per expert slot
	perSlot := min(max(1, s.persistentGrid(name, topk*items)/topk), ceilDiv(items, warpsPerBlock))
	return s.launchPDL(name, grid(perSlot*topk, 1, 1), grid(32*warpsPerBlock, 1, 1),
		blocks, scales, bias, act, ids, wts, x, H, I, topk)
}
