package cuda

import (
	"context"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"github.com/gptoss/gptoss/runtime"
	"github.com/gptoss/gptoss/runtime/sample"
)

// prefillChunk is the most tokens one forward pass takes; longer inputs go
// through in chunks (the scratch buffers are sized for it).
const prefillChunk = 256

// Sequence is one sequence's KV cache, scratch buffers and stream on the
// model's GPU. Decoding one token replays a CUDA graph captured on first use:
// the token and position travel through pinned host memory that the graph's
// first copies read, so the frozen kernel parameters stay valid.
type Sequence struct {
	m      *Model
	s      *stream
	maxLen int
	n      int
	bufs   []devPtr
	kc, vc []devPtr // per layer, [maxLen, Hkv*D] fp16

	x, xn, qkv, attn, part, router devPtr
	ids, wts, order, tiles, ntiles devPtr
	attnCnt                        devPtr // attn_dec's per-KV-head split counters (zero between launches)
	sums                           devPtr // decode v16's two router-sums buffers (partFloats each; see outSums)
	act, y, logits, tok, pos, amax devPtr
	logitsAll                      devPtr // [prefillChunk, V], allocated when first asked for
	probs, sampOut                 devPtr // sampling scratch, allocated when first asked for
	host                           unsafe.Pointer
	hTok, hPos, hAmax              []int32
	hLogits                        []float32
	graph                          cuGraphExec
	noGraph                        bool
	out                            []float32
	// GraphErr says why decoding runs without a CUDA graph (nil: it uses
	// one, or GPTOSS_CUDA_GRAPH=0 turned it off).
	GraphErr error
	// PDLErr says why the graph was captured without programmatic
	// dependent launch although the model asked for it (nil: it was not
	// asked for, or it worked).
	PDLErr error
}

// NewSequence allocates a KV cache of maxLen tokens (0: Options.MaxContext,
// else DefaultContext) and the scratch buffers.
func (m *Model) NewSequence(maxLen int) (runtime.Sequence, error) {
	return m.newSequence(maxLen)
}

func (m *Model) newSequence(maxLen int) (*Sequence, error) {
	if maxLen <= 0 {
		maxLen = m.opts.MaxContext
	}
	if maxLen <= 0 {
		maxLen = DefaultContext
	}
	if ctxMax := m.cfg.InitialContextLength * int(max(m.cfg.RopeScalingFactor, 1)); ctxMax > 0 && maxLen > ctxMax {
		maxLen = ctxMax
	}
	unlock := m.d.enter()
	defer unlock()
	q := &Sequence{m: m, maxLen: maxLen, noGraph: os.Getenv("GPTOSS_CUDA_GRAPH") == "0"}
	var err error
	if q.s, err = m.d.newStream(); err != nil {
		return nil, err
	}
	q.s.pdl = m.pdl && m.d.pdlOK()
	c := m.cfg
	H, E, I, V, k := c.HiddenSize, c.NumExperts, c.IntermediateSize, c.VocabSize, c.ExpertsPerToken
	D, Hq, Hkv := c.HeadDim, c.NumAttentionHeads, c.NumKeyValueHeads
	C := prefillChunk
	alloc := func(p *devPtr, bytes int) {
		if err != nil {
			return
		}
		if *p, err = m.d.alloc(uint64(bytes)); err == nil {
			q.bufs = append(q.bufs, *p)
		}
	}
	q.kc, q.vc = make([]devPtr, c.NumHiddenLayers), make([]devPtr, c.NumHiddenLayers)
	for l := range q.kc {
		alloc(&q.kc[l], maxLen*Hkv*D*2)
		alloc(&q.vc[l], maxLen*Hkv*D*2)
	}
	alloc(&q.x, C*H*4)
	alloc(&q.xn, C*H*4)
	alloc(&q.qkv, C*(Hq+2*Hkv)*D*4)
	alloc(&q.attn, C*Hq*D*4)
	alloc(&q.part, max(C*Hq*attnSplits(C), 4*Hq*attnSplits(1), Hq*attnDecSplits)*(D+2)*4)
	alloc(&q.attnCnt, Hkv*4)
	alloc(&q.sums, 2*partFloats*4)
	alloc(&q.router, C*E*4)
	alloc(&q.ids, C*k*4)
	alloc(&q.wts, C*k*4)
	alloc(&q.order, C*k*4)
	alloc(&q.tiles, moeMaxTiles(C*k, E, 1)*16)
	alloc(&q.ntiles, 4)
	alloc(&q.act, C*k*I*4)
	alloc(&q.y, C*k*H*4)
	alloc(&q.logits, V*4)
	alloc(&q.tok, C*4)
	alloc(&q.pos, 4)
	alloc(&q.amax, 4)
	if err == nil {
		err = check("cuMemAllocHost", drv.MemAllocHost(&q.host, uint64(4*(C+2)+4*V)))
	}
	if err == nil {
		err = check("cuMemsetD8", drv.MemsetD8Async(q.attnCnt, 0, uint64(Hkv*4), q.s.s))
	}
	if err == nil {
		err = check("cuMemsetD8", drv.MemsetD8Async(q.sums, 0, 2*partFloats*4, q.s.s))
	}
	if err == nil {
		err = q.s.sync()
	}
	if err != nil {
		q.Close()
		return nil, fmt.Errorf("cuda: new sequence of %d tokens: %w", maxLen, err)
	}
	q.hTok = unsafe.Slice((*int32)(q.host), C)
	q.hPos = unsafe.Slice((*int32)(unsafe.Add(q.host, 4*C)), 1)
	q.hAmax = unsafe.Slice((*int32)(unsafe.Add(q.host, 4*C+4)), 1)
	q.hLogits = unsafe.Slice((*float32)(unsafe.Add(q.host, 4*(C+2))), V)
	if !q.noGraph {
		q.GraphErr = q.capture()
		if q.GraphErr != nil && q.s.pdl { // a driver that cannot capture PDL launches
			q.PDLErr, q.s.pdl = q.GraphErr, false
			q.GraphErr = q.capture()
		}
		if q.GraphErr != nil {
			q.noGraph = true
		}
	}
	return q, nil
}

func (q *Sequence) Len() int { return q.n }

// Truncate drops the tokens from position n on; their cache rows are
// overwritten by the next Forward.
func (q *Sequence) Truncate(n int) error {
	if n < 0 || n > q.n {
		return fmt.Errorf("cuda: truncate to %d: the sequence has %d tokens", n, q.n)
	}
	q.n = n
	return nil
}

// Forward runs tokens through the model (see runtime.Sequence).
func (q *Sequence) Forward(ctx context.Context, tokens []int32, all bool) ([]float32, error) {
	if len(tokens) == 0 {
		return nil, errors.New("cuda: forward: no tokens")
	}
	if q.n+len(tokens) > q.maxLen {
		return nil, fmt.Errorf("cuda: forward: %d + %d tokens exceed the sequence's %d", q.n, len(tokens), q.maxLen)
	}
	V := q.m.cfg.VocabSize
	for _, t := range tokens {
		if t < 0 || int(t) >= V {
			return nil, fmt.Errorf("cuda: forward: token %d outside the vocabulary (0..%d)", t, V-1)
		}
	}
	unlock := q.m.d.enter()
	defer unlock()
	if all {
		q.out = q.out[:0]
		if q.logitsAll == 0 {
			p, err := q.m.d.alloc(uint64(prefillChunk * V * 4))
			if err != nil {
				return nil, fmt.Errorf("cuda: logits of every token: %w", err)
			}
			q.logitsAll = p
			q.bufs = append(q.bufs, p)
		}
	}
	for off := 0; off < len(tokens); off += prefillChunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		chunk := tokens[off:min(off+prefillChunk, len(tokens))]
		T := len(chunk)
		copy(q.hTok, chunk)
		q.hPos[0] = int32(q.n)
		var err error
		switch {
		case all:
			err = q.enqueue(T, 1)
			if err == nil {
				err = q.s.sync()
			}
			if err == nil {
				q.out = append(q.out, make([]float32, T*V)...)
				dst := q.out[len(q.out)-T*V:]
				err = q.s.download(unsafe.Pointer(&dst[0]), q.logitsAll, T*V*4)
			}
		case T == 1 && q.graph != 0:
			err = q.decodeGraph()
		default:
			err = q.enqueue(T, 0)
			if err == nil {
				err = q.s.sync()
			}
		}
		if err != nil {
			return nil, fmt.Errorf("cuda: forward at position %d: %w", q.n, err)
		}
		q.n += T
	}
	if all {
		return q.out, nil
	}
	return q.hLogits, nil
}

// capture records the one-token step as a CUDA graph. Capturing runs
// nothing, so it is done when the sequence is made; a driver that cannot
// capture leaves the sequence on direct launches.
func (q *Sequence) capture() error {
	if err := check("cuStreamBeginCapture", drv.StreamBeginCapture(q.s.s, 2)); err != nil { // relaxed
		return err
	}
	err := q.enqueue(1, 0)
	var g cuGraph
	if r := drv.StreamEndCapture(q.s.s, &g); err == nil {
		err = check("cuStreamEndCapture", r)
	}
	if err == nil {
		err = check("cuGraphInstantiate", drv.GraphInstantiate(&q.graph, g, 0))
	}
	if g != 0 {
		drv.GraphDestroy(g)
	}
	if err != nil {
		q.graph = 0
	}
	return err
}

// decodeGraph replays the captured one-token step.
func (q *Sequence) decodeGraph() error {
	if err := check("cuGraphLaunch", drv.GraphLaunch(q.graph, q.s.s)); err != nil {
		return err
	}
	return q.s.sync()
}

func (q *Sequence) runDirect() error {
	if err := q.enqueue(1, 0); err != nil {
		return err
	}
	return q.s.sync()
}

// enqueue queues one forward pass of T ≤ prefillChunk tokens (already in
// hTok, position in hPos) on the stream: logitsMode 0 leaves the last
// token's logits in hLogits, 1 every token's in logitsAll.
func (q *Sequence) enqueue(T int, logitsMode int) error {
	m, s, c := q.m, q.s, q.m.cfg
	H, E, I, V, k := c.HiddenSize, c.NumExperts, c.IntermediateSize, c.VocabSize, c.ExpertsPerToken
	D, Hq, Hkv := c.HeadDim, c.NumAttentionHeads, c.NumKeyValueHeads
	eps := float32(c.RMSNormEps)
	if eps == 0 {
		eps = 1e-5
	}
	limit := float32(c.SwigluLimit)
	if limit == 0 {
		limit = 7
	}
	QKV := (Hq + 2*Hkv) * D
	n := T * k
	tile := moeTile(T)
	if m.moeTC && T > 1 {
		tile = moeTCTile
	}
	maxTiles := moeMaxTiles(n, E, tile)
	// mv: the BF16 GEMV/GEMM of the non-fused path (tensor cores for
	// prefill chunks when gemmTC)
	mv := func(W, bias, x, y devPtr, N, K, T int, accumulate bool) error {
		if T > 1 && m.gemmTC && K%32 == 0 {
			return s.gemmTC(W, bias, x, y, N, K, T, accumulate)
		}
		return s.matvec(W, bias, x, y, N, K, T, accumulate)
	}
	errs := []error{
		check("copy tokens", drv.MemcpyHtoDAsync(q.tok, unsafe.Pointer(&q.hTok[0]), uint64(4*T), s.s)),
		check("copy position", drv.MemcpyHtoDAsync(q.pos, unsafe.Pointer(&q.hPos[0]), 4, s.s)),
		s.embed(m.embed, q.tok, q.x, T, H),
	}
	for l, w := range m.layers {
		window := 0
		if l%2 == 0 {
			window = c.SlidingWindow
		}
		if T == 1 && m.fused {
			// the fused one-token step: 6 launches a layer instead of 10
			// (v6, v7: 5, the attention's split merge in its last blocks)
			errs = append(errs,
				s.qkvRope(w.qkvDec, w.qkvB, q.x, w.attnNorm, q.qkv, m.invFreq, q.pos, q.kc[l], q.vc[l], H, Hq, Hkv, D, m.conc, eps))
			if m.dec >= 6 && attnDecOK(Hq, Hkv, D) {
				minKeys, direct := attnMinKeys, false
				if m.dec >= 17 {
					minKeys, direct = m.attnMin17, true
				}
				errs = append(errs, s.attnDec(q.qkv, q.kc[l], q.vc[l], q.pos, w.sinks, q.part, q.attnCnt, q.attn, Hq, Hkv, D, window, minKeys, direct))
			} else {
				errs = append(errs, s.attention(q.qkv, q.kc[l], q.vc[l], q.pos, q.part, w.sinks, q.attn, T, Hq, Hkv, D, window))
			}
			if m.dec >= 16 {
				// v16, v17: the router's sums in the out-projection, finished in
				// the MoE kernels; the sums buffers alternate by layer
				part, other := q.sums, q.sums+partFloats*4
				if l%2 == 1 {
					part, other = other, part
				}
				errs = append(errs,
					s.outSums(w.outDec, w.outB, q.attn, q.x, w.gateW, w.mlpNorm, part, H, Hq*D, E),
					s.moeSumsMLP1(m.dec, w.w1Blocks, w.w1Scales, w.b1, q.x, w.mlpNorm, part, w.gateB, q.act, I, H, E, k, limit, eps),
					s.moeSumsMLP2(m.dec, w.w2Blocks, w.w2Scales, w.b2, q.act, part, w.gateB, other, q.x, H, I, E, k, eps))
				continue
			}
			errs = append(errs,
				s.matvecNorm(w.outDec, w.outB, q.attn, 0, q.x, H, Hq*D, eps, true),
				s.normRouter(q.x, w.mlpNorm, q.xn, w.gateW, w.gateB, q.ids, q.wts, H, E, k, eps),
				s.moeDecMLP1(m.dec, w.w1Blocks, w.w1Scales, w.b1, q.xn, q.ids, q.act, I, H, k, limit),
				s.moeDecMLP2(m.dec, w.w2Blocks, w.w2Scales, w.b2, q.act, q.ids, q.wts, q.x, H, I, k))
			continue
		}
		errs = append(errs,
			s.rmsnorm(q.x, w.attnNorm, q.xn, T, H, eps),
			mv(w.qkvW, w.qkvB, q.xn, q.qkv, QKV, H, T, false),
			s.ropeKV(q.qkv, m.invFreq, q.pos, q.kc[l], q.vc[l], T, Hq, Hkv, D, m.conc),
			s.attention(q.qkv, q.kc[l], q.vc[l], q.pos, q.part, w.sinks, q.attn, T, Hq, Hkv, D, window),
			mv(w.outW, w.outB, q.attn, q.x, H, Hq*D, T, true),
			s.rmsnorm(q.x, w.mlpNorm, q.xn, T, H, eps),
			mv(w.gateW, w.gateB, q.xn, q.router, E, H, T, false),
			s.routerTopK(q.router, q.ids, q.wts, T, E, k),
		)
		if moeDecodeOK(T, k) {
			errs = append(errs,
				s.moeMLP1Dec(w.w1Blocks, w.w1Scales, w.b1, q.xn, q.ids, q.act, I, H, k, limit),
				s.moeMLP2Dec(w.w2Blocks, w.w2Scales, w.b2, q.act, q.ids, q.wts, q.x, H, I, k))
			continue
		}
		if m.moeTC && T > 1 {
			errs = append(errs,
				s.moePlan(q.ids, n, E, tile, q.order, q.tiles, q.ntiles),
				s.moeTCMLP1(w.w1Blocks, w.w1Scales, w.b1, q.xn, q.order, q.tiles, q.ntiles, q.act, I, H, k, maxTiles, limit),
				s.moeTCMLP2(w.w2Blocks, w.w2Scales, w.b2, q.act, q.order, q.tiles, q.ntiles, q.y, H, I, maxTiles),
				s.moeCombine(q.y, q.wts, q.x, T, H, k))
			continue
		}
		errs = append(errs,
			s.moePlan(q.ids, n, E, tile, q.order, q.tiles, q.ntiles),
			s.moeMLP1(w.w1Blocks, w.w1Scales, w.b1, q.xn, q.order, q.tiles, q.ntiles, q.act, I, H, k, tile, maxTiles, limit),
			s.moeMLP2(w.w2Blocks, w.w2Scales, w.b2, q.act, q.order, q.tiles, q.ntiles, q.y, H, I, tile, maxTiles),
			s.moeCombine(q.y, q.wts, q.x, T, H, k),
		)
	}
	switch {
	case T == 1 && m.fused && logitsMode == 1:
		errs = append(errs, s.matvecNorm(m.unembedDec, 0, q.x, m.norm, q.logitsAll, V, H, eps, false))
	case T == 1 && m.fused:
		errs = append(errs,
			s.matvecNorm(m.unembedDec, 0, q.x, m.norm, q.logits, V, H, eps, false),
			check("copy logits", drv.MemcpyDtoHAsync(unsafe.Pointer(&q.hLogits[0]), q.logits, uint64(4*V), s.s)))
	case logitsMode == 1:
		errs = append(errs,
			s.rmsnorm(q.x, m.norm, q.xn, T, H, eps),
			mv(m.unembed, 0, q.xn, q.logitsAll, V, H, T, false))
	default:
		last := q.x + devPtr((T-1)*H*4)
		errs = append(errs,
			s.rmsnorm(last, m.norm, q.xn, 1, H, eps),
			s.matvec(m.unembed, 0, q.xn, q.logits, V, H, 1, false),
			check("copy logits", drv.MemcpyDtoHAsync(unsafe.Pointer(&q.hLogits[0]), q.logits, uint64(4*V), s.s)))
	}
	return errors.Join(errs...)
}

// Greedy returns the argmax of the last Forward's logits, computed on the
// device (lowest id on ties).
func (q *Sequence) Greedy() (int32, error) {
	unlock := q.m.d.enter()
	defer unlock()
	if err := q.s.argmax(q.logits, q.m.cfg.VocabSize, q.amax); err != nil {
		return 0, err
	}
	if err := q.s.download(unsafe.Pointer(&q.hAmax[0]), q.amax, 4); err != nil {
		return 0, err
	}
	return q.hAmax[0], nil
}

// DeviceSampler is implemented by the CUDA engine's sequences: the next
// token drawn on the device from the last Forward's logits (temperature,
// top-k, top-p as runtime/sample; u is the caller's uniform draw in [0, 1),
// so a seeded generator gives the same tokens). ok is false where the
// device cannot (presence/frequency penalties, a nucleus of more than 4096
// candidates): the caller samples the logits Forward returned on the host.
// It is runtime.DeviceSampler, which runtime/chat uses when a sequence
// implements it (GPTOSS_DEVICE_SAMPLING=0 turns that off).
type DeviceSampler interface {
	SampleDevice(p sample.Params, u float64) (tok int32, ok bool, err error)
}

var (
	_ DeviceSampler         = (*Sequence)(nil)
	_ runtime.DeviceSampler = (*Sequence)(nil)
)

// SampleDevice draws the next token on the device (see DeviceSampler).
func (q *Sequence) SampleDevice(p sample.Params, u float64) (int32, bool, error) {
	if err := p.Validate(); err != nil {
		return 0, false, err
	}
	if !(u >= 0 && u < 1) {
		return 0, false, fmt.Errorf("cuda: sample: draw %v outside [0, 1)", u)
	}
	if p.PresencePenalty != 0 || p.FrequencyPenalty != 0 {
		return 0, false, nil
	}
	if p.Greedy() {
		tok, err := q.Greedy()
		return tok, err == nil, err
	}
	unlock := q.m.d.enter()
	defer unlock()
	V := q.m.cfg.VocabSize
	if q.probs == 0 {
		var err error
		if q.probs, err = q.m.d.alloc(uint64(4 * V)); err != nil {
			return 0, false, fmt.Errorf("cuda: sample: %w", err)
		}
		q.bufs = append(q.bufs, q.probs)
		if q.sampOut, err = q.m.d.alloc(8); err != nil {
			return 0, false, fmt.Errorf("cuda: sample: %w", err)
		}
		q.bufs = append(q.bufs, q.sampOut)
	}
	if err := q.s.sampleTopKP(q.logits, V, float32(p.Temperature), p.TopK, float32(p.TopP), float32(u), q.probs, q.sampOut); err != nil {
		return 0, false, err
	}
	var out [2]int32
	if err := q.s.download(unsafe.Pointer(&out[0]), q.sampOut, 8); err != nil {
		return 0, false, err
	}
	if out[1] != 0 {
		return 0, false, nil
	}
	return out[0], true, nil
}

func (q *Sequence) Close() error {
	if q.m == nil {
		return nil
	}
	unlock := q.m.d.enter()
	defer unlock()
	if q.graph != 0 {
		drv.GraphExecDestroy(q.graph)
		q.graph = 0
	}
	q.s.close()
	for _, p := range q.bufs {
		q.m.d.free(p)
	}
	q.bufs = nil
	if q.host != nil {
		drv.MemFreeHost(q.host)
		q.host = nil
	}
	q.m = nil
	return nil
}
