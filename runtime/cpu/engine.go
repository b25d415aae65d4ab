package cpu

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/runtime"
)

func init() { runtime.Register(Engine{}) }

// Engine is the CPU engine ("cpu"); it runs anywhere.
type Engine struct{}

func (Engine) Name() string     { return "cpu" }
func (Engine) Available() error { return nil }

const (
	// chunkTokens bounds one batch of a Forward (activation memory).
	chunkTokens = 512
	// TruncateSlack is how many positions beyond the window a sliding
	// layer's ring keeps, so Truncate can go back that far.
	TruncateSlack = 512
	// ropeTable is how many positions get precomputed RoPE tables.
	ropeTable = 16384
)

type layerWeights struct {
	attnNorm, qkvW, qkvB, outW, outB []byte
	mlpNorm, gateW, gateB            []byte
	sinks                            []float32
	moe                              moeWeights
	sliding                          bool
	qkvQ8, outQ8                     q8Matrix // Options.DecodeQ8
}

// q8Matrix is a BF16 matrix quantized for decode (runtime.QuantizeQ8).
type q8Matrix struct{ q, d []byte }

func quantize(w []byte, rows, cols, workers int) (q8Matrix, error) {
	nq, nd := runtime.Q8Sizes(rows, cols)
	m := q8Matrix{make([]byte, nq), make([]byte, nd)}
	return m, runtime.QuantizeQ8(m.q, m.d, w, rows, cols, workers)
}

// Model is a gpt-oss model loaded by the CPU engine.
type Model struct {
	l        *convert.Layout
	c        convert.ModelConfig
	p        *pool
	tiles    scratch // per-worker weight tiles
	outTiles scratch // per-worker tile outputs [tokens][rowTile]
	scores   scratch // per-worker attention scores
	rope     *Rope
	layers   []layerWeights
	embed    []byte
	normF    []byte
	unembed  []byte
	unembedQ q8Matrix // Options.DecodeQ8 (then one-token forwards use the q8 matrices)
	maxCtx   int
	slack    int // TruncateSlack (tests make it small)
	closed   atomic.Bool
	wsMu     sync.Mutex
	wsFree   []*workspace
	qDim     int // heads·headDim
	kvDim    int // kvHeads·headDim
}

// Load checks every tensor's size against the config and keeps views
// into the mapping; nothing is copied or dequantized.
func (Engine) Load(ctx context.Context, l *convert.Layout, o runtime.Options) (runtime.Model, error) {
	return Load(ctx, l, o)
}

// Load is Engine.Load returning the concrete type.
func Load(ctx context.Context, l *convert.Layout, o runtime.Options) (*Model, error) {
	c := l.Config
	if c.NumAttentionHeads <= 0 || c.NumKeyValueHeads <= 0 || c.HeadDim <= 0 || c.HeadDim%2 != 0 ||
		c.NumAttentionHeads%c.NumKeyValueHeads != 0 || c.ExpertsPerToken <= 0 || c.ExpertsPerToken > c.NumExperts {
		return nil, fmt.Errorf("cpu: unsupported config: %d heads, %d kv heads, head_dim %d, %d of %d experts",
			c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.ExpertsPerToken, c.NumExperts)
	}
	m := &Model{l: l, c: c, slack: TruncateSlack, qDim: c.NumAttentionHeads * c.HeadDim, kvDim: c.NumKeyValueHeads * c.HeadDim}
	m.maxCtx = c.InitialContextLength
	if c.RopeScalingFactor > 1 {
		m.maxCtx = int(float64(c.InitialContextLength) * c.RopeScalingFactor)
	}
	if m.maxCtx <= 0 {
		m.maxCtx = 4096
	}
	if o.MaxContext > 0 {
		m.maxCtx = min(m.maxCtx, o.MaxContext)
	}
	H, V, E := c.HiddenSize, c.VocabSize, c.NumExperts
	var errs []error
	get := func(name string, elems int) []byte {
		b := l.Bytes(name)
		if b == nil {
			errs = append(errs, fmt.Errorf("cpu: %s: tensor %s missing", l.Path, name))
		} else if len(b) != 2*elems {
			errs = append(errs, fmt.Errorf("cpu: %s: tensor %s has %d bytes, the config implies %d BF16 values", l.Path, name, len(b), elems))
		}
		return b
	}
	m.embed = get("embedding.weight", V*H)
	m.normF = get("norm.scale", H)
	m.unembed = get("unembedding.weight", V*H)
	qkvRows := m.qDim + 2*m.kvDim
	for n := 0; n < c.NumHiddenLayers; n++ {
		p := fmt.Sprintf("block.%d.", n)
		lw := layerWeights{
			attnNorm: get(p+"attn.norm.scale", H),
			qkvW:     get(p+"attn.qkv.weight", qkvRows*H),
			qkvB:     get(p+"attn.qkv.bias", qkvRows),
			outW:     get(p+"attn.out.weight", H*m.qDim),
			outB:     get(p+"attn.out.bias", H),
			mlpNorm:  get(p+"mlp.norm.scale", H),
			gateW:    get(p+"mlp.gate.weight", E*H),
			gateB:    get(p+"mlp.gate.bias", E),
			sliding:  n%2 == 0 && c.SlidingWindow > 0,
		}
		if s := get(p+"attn.sinks", c.NumAttentionHeads); len(s) == 2*c.NumAttentionHeads {
			lw.sinks = make([]float32, c.NumAttentionHeads)
			BF16ToF32(s, lw.sinks)
		}
		moe, err := loadMoE(l, n)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", l.Path, err))
		}
		lw.moe = moe
		m.layers = append(m.layers, lw)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.p = newPool(o.Threads)
	if o.DecodeQ8 {
		if err := m.quantizeQ8(ctx); err != nil {
			m.p.Close()
			return nil, err
		}
	}
	m.tiles = newScratch(m.p.n, rowTile*max(H, m.qDim, c.IntermediateSize))
	m.scores = newScratch(m.p.n, 256)
	m.outTiles = newScratch(m.p.n, rowTile*4)
	m.rope = NewRope(c, min(m.maxCtx, ropeTable))
	return m, nil
}

// quantizeQ8 makes the decode copies of the QKV, output and unembedding
// matrices (Options.DecodeQ8).
func (m *Model) quantizeQ8(ctx context.Context) error {
	c := m.c
	if c.HiddenSize%runtime.Q8Block != 0 || m.qDim%runtime.Q8Block != 0 {
		return fmt.Errorf("cpu: q8 decode weights: hidden %d and heads·head_dim %d must be multiples of %d", c.HiddenSize, m.qDim, runtime.Q8Block)
	}
	var err error
	if m.unembedQ, err = quantize(m.unembed, c.VocabSize, c.HiddenSize, m.p.n); err != nil {
		return fmt.Errorf("cpu: unembedding: %w", err)
	}
	for i := range m.layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		lw := &m.layers[i]
		if lw.qkvQ8, err = quantize(lw.qkvW, m.qDim+2*m.kvDim, c.HiddenSize, m.p.n); err != nil {
			return fmt.Errorf("cpu: block %d qkv: %w", i, err)
		}
		if lw.outQ8, err = quantize(lw.outW, c.HiddenSize, m.qDim, m.p.n); err != nil {
			return fmt.Errorf("cpu: block %d out: %w", i, err)
		}
	}
	return nil
}

// Kernels says "decode q8" when one-token forwards use the Q8 matrices
// (Options.DecodeQ8), else nothing.
func (m *Model) Kernels() string {
	if m.q8() {
		return "decode q8"
	}
	return ""
}

// q8 says whether Options.DecodeQ8 made the Q8 matrices.
func (m *Model) q8() bool { return m.unembedQ.q != nil }

func (m *Model) Config() convert.ModelConfig { return m.c }
func (m *Model) Engine() string              { return "cpu" }

// Close stops the worker pool; the layout stays the caller's. Sequences
// of a closed model refuse to run.
func (m *Model) Close() error {
	m.closed.Store(true)
	m.p.Close()
	return nil
}

// kvCache is one layer's keys and values for one sequence. A full
// layer keeps rows [0, len) and grows; a sliding layer keeps a ring of R
// positions (position p at slot p mod R), each written twice (slots s and
// s+R) so that any R consecutive positions are one contiguous run.
type kvCache struct {
	ring   int // R; 0 for a full layer
	k, v   []float32
	oldest int // lowest position whose row is still held (ring)
}

type sequence struct {
	m          *Model
	maxLen     int
	n          int
	kv         []kvCache
	logits     []float32
	closed     bool
	*workspace // while in Forward
}

// workspace is the activation memory of a Forward. Models keep finished
// ones for the next Forward of any sequence, so a new sequence does not
// fault in fresh pages for its first prompt.
type workspace struct {
	x, t, qkv, attn, proj, router []float32
	cos, sin                      []float32
	parts, partML                 []float32 // split attention's partial results
	moe                           moeBuffers
}

func (m *Model) getWorkspace() *workspace {
	m.wsMu.Lock()
	defer m.wsMu.Unlock()
	if n := len(m.wsFree); n > 0 {
		w := m.wsFree[n-1]
		m.wsFree = m.wsFree[:n-1]
		return w
	}
	return &workspace{}
}

func (m *Model) putWorkspace(w *workspace) {
	m.wsMu.Lock()
	defer m.wsMu.Unlock()
	m.wsFree = append(m.wsFree, w)
}

// NewSequence starts an empty sequence of at most maxLen tokens (0: the
// model's context, or Options.MaxContext).
func (m *Model) NewSequence(maxLen int) (runtime.Sequence, error) {
	if maxLen <= 0 {
		maxLen = m.maxCtx
	}
	if maxLen > m.maxCtx {
		return nil, fmt.Errorf("cpu: sequence of %d tokens: the model's context is %d", maxLen, m.maxCtx)
	}
	s := &sequence{m: m, maxLen: maxLen, kv: make([]kvCache, len(m.layers))}
	for i, lw := range m.layers {
		if lw.sliding {
			r := min(maxLen, m.c.SlidingWindow+m.slack)
			r = max(r, m.c.SlidingWindow)
			s.kv[i] = kvCache{ring: r, k: make([]float32, 2*r*m.kvDim), v: make([]float32, 2*r*m.kvDim)}
		}
	}
	return s, nil
}

func (s *sequence) Len() int { return s.n }

func (s *sequence) Close() error {
	s.closed = true
	s.kv = nil
	return nil
}

// Truncate drops positions n and later. A sliding layer can go back only
// as far as its ring still holds the window before n: TruncateSlack
// positions (512) beyond the window from the furthest position written.
func (s *sequence) Truncate(n int) error {
	if s.closed {
		return errors.New("cpu: sequence is closed")
	}
	if n < 0 || n > s.n {
		return fmt.Errorf("cpu: truncate to %d: the sequence has %d tokens", n, s.n)
	}
	if err := s.canResume(n); err != nil {
		return err
	}
	s.n = n
	for i := range s.kv {
		if kv := &s.kv[i]; kv.ring == 0 {
			kv.k, kv.v = kv.k[:n*s.m.kvDim], kv.v[:n*s.m.kvDim]
		}
	}
	return nil
}

// canResume says whether the next token can be fed at position n: every
// ring still holds the window before it.
func (s *sequence) canResume(n int) error {
	for i := range s.kv {
		kv := &s.kv[i]
		if kv.ring == 0 {
			continue
		}
		if need := max(0, n-(s.m.c.SlidingWindow-1)); need < kv.oldest {
			return fmt.Errorf("cpu: cannot go back to position %d: sliding layer %d keeps positions from %d on (the window plus %d); start a new sequence",
				n, i, kv.oldest, TruncateSlack)
		}
	}
	return nil
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// growPadded is grow for n rows of width w, with capacity for padRows(n)
// (gemmTile reads whole groups of four rows).
func growPadded(b []float32, n, w int) []float32 {
	if cap(b) < padRows(n)*w {
		return make([]float32, n*w, padRows(n)*w)
	}
	return b[:n*w]
}

// Forward feeds tokens in chunks of at most 512. On error (a bad token,
// a cancelled ctx) the sequence goes back to its length before the call
// when the sliding-window rings still allow (always for calls of at most
// 512 tokens); otherwise it keeps the whole chunks already fed.
func (s *sequence) Forward(ctx context.Context, tokens []int32, all bool) ([]float32, error) {
	if s.closed {
		return nil, errors.New("cpu: sequence is closed")
	}
	if s.m.closed.Load() {
		return nil, errors.New("cpu: the model is closed")
	}
	if len(tokens) == 0 {
		return nil, errors.New("cpu: forward of no tokens")
	}
	V := s.m.c.VocabSize
	for i, t := range tokens {
		if t < 0 || int(t) >= V {
			return nil, fmt.Errorf("cpu: token %d (at %d) is outside the vocabulary [0, %d)", t, i, V)
		}
	}
	if s.n+len(tokens) > s.maxLen {
		return nil, fmt.Errorf("cpu: %d tokens after %d exceed the sequence's %d", len(tokens), s.n, s.maxLen)
	}
	start := s.n
	if all {
		s.logits = grow(s.logits, len(tokens)*V)
	} else {
		s.logits = grow(s.logits, V)
	}
	s.workspace = s.m.getWorkspace()
	defer func() {
		s.m.putWorkspace(s.workspace)
		s.workspace = nil
	}()
	for at := 0; at < len(tokens); at += chunkTokens {
		end := min(at+chunkTokens, len(tokens))
		var out []float32
		if all {
			out = s.logits[at*V : end*V]
		} else if end == len(tokens) {
			out = s.logits
		}
		if err := s.chunk(ctx, tokens[at:end], out); err != nil {
			if s.canResume(start) == nil {
				s.Truncate(start)
			}
			return nil, err
		}
	}
	return s.logits, nil
}

// chunk runs n tokens at positions s.n… through the model; out gets the
// logits of every token (len n·V), of the last (len V), or none (nil).
func (s *sequence) chunk(ctx context.Context, tokens []int32, out []float32) error {
	m := s.m
	c := m.c
	n, H, p0 := len(tokens), c.HiddenSize, s.n
	half := c.HeadDim / 2
	s.x = grow(s.x, n*H)
	s.t = growPadded(s.t, n, H)
	s.qkv = grow(s.qkv, n*(m.qDim+2*m.kvDim))
	s.attn = growPadded(s.attn, n, m.qDim)
	s.proj = grow(s.proj, n*H)
	s.router = grow(s.router, n*c.NumExperts)
	s.cos, s.sin = grow(s.cos, n*half), grow(s.sin, n*half)
	for i, t := range tokens {
		Embed(s.x[i*H:(i+1)*H], m.embed, t, H)
		pos := p0 + i
		if (pos+1)*half <= len(m.rope.cos) {
			copy(s.cos[i*half:(i+1)*half], m.rope.cos[pos*half:])
			copy(s.sin[i*half:(i+1)*half], m.rope.sin[pos*half:])
		} else {
			m.rope.fill(s.cos[i*half:(i+1)*half], s.sin[i*half:(i+1)*half], pos)
		}
	}
	eps := float32(c.RMSNormEps)
	q8 := m.q8() && n == 1 // Options.DecodeQ8: one-token forwards
	for li := range m.layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		lw := &m.layers[li]
		s.norm(s.t, s.x, lw.attnNorm, n, eps)
		if q8 {
			matVecQ8(m.p, s.qkv, lw.qkvQ8.q, lw.qkvQ8.d, lw.qkvB, s.t, m.qDim+2*m.kvDim, H)
		} else {
			matMulBF16(m.p, m.tiles, s.qkv, lw.qkvW, lw.qkvB, s.t, n, m.qDim+2*m.kvDim, H)
		}
		s.attention(li, n, p0)
		if q8 {
			matVecQ8(m.p, s.proj, lw.outQ8.q, lw.outQ8.d, lw.outB, s.attn, H, m.qDim)
		} else {
			matMulBF16(m.p, m.tiles, s.proj, lw.outW, lw.outB, s.attn, n, H, m.qDim)
		}
		addTo(s.x, s.proj)
		s.norm(s.t, s.x, lw.mlpNorm, n, eps)
		matMulBF16(m.p, m.tiles, s.router, lw.gateW, lw.gateB, s.t, n, c.NumExperts, H)
		s.moeLayer(lw, n)
	}
	s.n = p0 + n
	if out == nil {
		return nil
	}
	first := 0
	if len(out) < n*c.VocabSize {
		first = n - 1
	}
	k := n - first
	s.norm(s.t[:k*H], s.x[first*H:], m.normF, k, eps)
	if q8 {
		matVecQ8(m.p, out, m.unembedQ.q, m.unembedQ.d, nil, s.t[:H], c.VocabSize, H)
		return nil
	}
	matMulBF16(m.p, m.tiles, out, m.unembed, nil, s.t[:k*H], k, c.VocabSize, H)
	return nil
}

func (s *sequence) norm(dst, src []float32, scale []byte, n int, eps float32) {
	H := s.m.c.HiddenSize
	for i := 0; i < n; i++ {
		RMSNorm(dst[i*H:(i+1)*H], src[i*H:(i+1)*H], scale, eps)
	}
}

func addTo(x, y []float32) {
	for i := range x {
		x[i] += y[i]
	}
}

// attention ropes q and k of n tokens at p0…, stores k and v, and
// attends, writing s.attn [n][qDim].
func (s *sequence) attention(li, n, p0 int) {
	m := s.m
	c := m.c
	d, half := c.HeadDim, c.HeadDim/2
	heads, kvHeads := c.NumAttentionHeads, c.NumKeyValueHeads
	row := m.qDim + 2*m.kvDim
	for i := 0; i < n; i++ {
		q := s.qkv[i*row : i*row+m.qDim]
		k := s.qkv[i*row+m.qDim : i*row+m.qDim+m.kvDim]
		cs, sn := s.cos[i*half:(i+1)*half], s.sin[i*half:(i+1)*half]
		rotate(q, heads, cs, sn)
		rotate(k, kvHeads, cs, sn)
	}
	kv := &s.kv[li]
	sinks := m.layers[li].sinks
	group := heads / kvHeads
	W := c.SlidingWindow
	step := n
	if kv.ring > 0 {
		step = kv.ring - W + 1
	}
	for a := 0; a < n; a += step {
		b := min(a+step, n)
		// store k and v of tokens a…b-1
		for i := a; i < b; i++ {
			pos := p0 + i
			k := s.qkv[i*row+m.qDim : i*row+m.qDim+m.kvDim]
			v := s.qkv[i*row+m.qDim+m.kvDim : (i+1)*row]
			if kv.ring > 0 {
				slot := pos % kv.ring
				for _, sl := range []int{slot, slot + kv.ring} {
					copy(kv.k[sl*m.kvDim:(sl+1)*m.kvDim], k)
					copy(kv.v[sl*m.kvDim:(sl+1)*m.kvDim], v)
				}
				kv.oldest = max(kv.oldest, pos-kv.ring+1)
			} else {
				kv.k = append(kv.k[:pos*m.kvDim], k...)
				kv.v = append(kv.v[:pos*m.kvDim], v...)
			}
		}
		maxKeys := p0 + b
		if kv.ring > 0 {
			maxKeys = min(maxKeys, W)
		}
		if b-a == 1 {
			s.attendOne(kv, sinks, p0+a, a)
			continue
		}
		m.p.For((b-a)*kvHeads, 1, func(w, lo, hi int) {
			buf := m.scores.get(w, attendScratch(group, d, maxKeys))
			for it := lo; it < hi; it++ {
				i, kh := a+it/kvHeads, it%kvHeads
				first, cnt := s.window(kv, p0+i)
				keys := kv.k[first*m.kvDim : (first+cnt)*m.kvDim]
				vals := kv.v[first*m.kvDim : (first+cnt)*m.kvDim]
				h0 := kh * group
				attendGroup(s.attn[i*m.qDim+h0*d:i*m.qDim+(h0+group)*d], s.qkv[i*row+h0*d:i*row+(h0+group)*d],
					keys, vals, m.kvDim, kh*d, cnt, d, sinks[h0:h0+group], buf, nil)
			}
		})
	}
}

// window returns the first cache row and the number of keys a query at
// pos attends to.
func (s *sequence) window(kv *kvCache, pos int) (first, cnt int) {
	if kv.ring == 0 {
		return 0, pos + 1
	}
	cnt = min(pos+1, s.m.c.SlidingWindow)
	return (pos - cnt + 1) % kv.ring, cnt
}

// splitKeys: a single query over at least this many keys is split into
// key ranges attended in parallel and merged (so decode at long context
// uses every worker, not one per kv head).
const splitKeys = 256

// attendOne is attention for the one token i (at pos) of a chunk.
func (s *sequence) attendOne(kv *kvCache, sinks []float32, pos, i int) {
	m := s.m
	c := m.c
	d, kvHeads := c.HeadDim, c.NumKeyValueHeads
	group := c.NumAttentionHeads / kvHeads
	row := m.qDim + 2*m.kvDim
	first, cnt := s.window(kv, pos)
	keys := kv.k[first*m.kvDim : (first+cnt)*m.kvDim]
	vals := kv.v[first*m.kvDim : (first+cnt)*m.kvDim]
	q := s.qkv[i*row : i*row+m.qDim]
	out := s.attn[i*m.qDim : (i+1)*m.qDim]
	segs := 1
	if cnt >= splitKeys {
		segs = min((2*m.p.n+kvHeads-1)/kvHeads, cnt/(splitKeys/2))
	}
	if segs <= 1 {
		m.p.For(kvHeads, 1, func(w, lo, hi int) {
			buf := m.scores.get(w, attendScratch(group, d, cnt))
			for kh := lo; kh < hi; kh++ {
				h0 := kh * group
				attendGroup(out[h0*d:(h0+group)*d], q[h0*d:(h0+group)*d], keys, vals, m.kvDim, kh*d, cnt, d, sinks[h0:h0+group], buf, nil)
			}
		})
		return
	}
	per := (cnt + segs - 1) / segs
	s.parts = grow(s.parts, kvHeads*segs*group*d)
	s.partML = grow(s.partML, kvHeads*segs*2*group)
	m.p.For(kvHeads*segs, 1, func(w, lo, hi int) {
		buf := m.scores.get(w, attendScratch(group, d, per))
		for it := lo; it < hi; it++ {
			kh, sg := it/segs, it%segs
			j0, j1 := sg*per, min((sg+1)*per, cnt)
			h0 := kh * group
			attendGroup(s.parts[it*group*d:(it+1)*group*d], q[h0*d:(h0+group)*d], keys[j0*m.kvDim:j1*m.kvDim], vals[j0*m.kvDim:j1*m.kvDim],
				m.kvDim, kh*d, j1-j0, d, nil, buf, s.partML[it*2*group:(it+1)*2*group])
		}
	})
	for kh := 0; kh < kvHeads; kh++ {
		h0 := kh * group
		mergeParts(out[h0*d:(h0+group)*d], s.parts[kh*segs*group*d:(kh+1)*segs*group*d], s.partML[kh*segs*2*group:(kh+1)*segs*2*group],
			sinks[h0:h0+group], segs, group, d)
	}
}

// rotate applies RoPE (one position's tables) to heads×2·half values.
func rotate(x []float32, heads int, cos, sin []float32) {
	h := len(cos)
	for hd := 0; hd < heads; hd++ {
		x1 := x[hd*2*h : hd*2*h+h]
		x2 := x[hd*2*h+h : (hd+1)*2*h]
		for i := 0; i < h; i++ {
			a, b := x1[i], x2[i]
			x1[i] = a*cos[i] - b*sin[i]
			x2[i] = b*cos[i] + a*sin[i]
		}
	}
}
