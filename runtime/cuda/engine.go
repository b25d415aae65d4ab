package cuda

import (
	"context"
	"fmt"
	"math"
	"os"
	goruntime "runtime"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/runtime"
)

func init() { runtime.Register(Engine{}) }

// Engine is the CUDA engine ("cuda").
type Engine struct{}

func (Engine) Name() string { return "cuda" }

var (
	availOnce sync.Once
	availErr  error
)

// Available says whether this build has its kernels and device 0 is a
// usable GPU (a driver, compute capability ≥ 8.0).
func (Engine) Available() error {
	availOnce.Do(func() {
		if _, err := kernelImage(); err != nil {
			availErr = err
			return
		}
		_, availErr = probe(0)
	})
	return availErr
}

// DefaultContext is a sequence's length when neither NewSequence nor
// Options.MaxContext names one.
const DefaultContext = 16384

// layerWeights are one block's tensors on the device.
type layerWeights struct {
	attnNorm, qkvW, qkvB, sinks, outW, outB        devPtr
	mlpNorm, gateW, gateB                          devPtr
	w1Blocks, w1Scales, b1, w2Blocks, w2Scales, b2 devPtr
	// the decode step's QKV and output matrices: qkvW and outW, or their
	// Q8 copies (Options.DecodeQ8)
	qkvDec, outDec decMat
}

// Model is a model whose weights live on one GPU.
type Model struct {
	d       *device
	cfg     convert.ModelConfig
	opts    runtime.Options
	arena   devPtr
	embed   devPtr
	norm    devPtr
	unembed devPtr
	// unembedDec: the decode step's unembedding (unembed, or its Q8 copy:
	// Options.DecodeQ8, see q8)
	unembedDec decMat
	layers     []layerWeights
	invFreq    devPtr
	conc       float32
	// Kernel choices (all measured in one gpu-check run, PERF.md):
	// moeTC: the tensor-core MoE for prefill chunks (moe_tc_*; default;
	// GPTOSS_CUDA_MOE=v1 selects the FP32 grouped kernels); gemmTC: the tensor-core BF16 GEMM for prefill
	// (gemm_tc_bf16; default; GPTOSS_CUDA_GEMM=v1 the FP32 one); fused:
	// the fused one-token step (matvec_norm_t1, qkv_rope_t1, norm_router,
	// moe3_*; default; GPTOSS_CUDA_FUSED=0 the old step; shapes outside
	// fusedOK leave it off); dec: in the fused step, the decode kernels'
	// version: 12 (v7 with mlp2's first rows requested before its PDL
	// wait: moe12_mlp2_dec), 7 (moe7_*, attn_dec), 6 (moe6_*,
	// attn_dec; also where the device refuses moe7's shared memory) or 3
	// (moe3_*, attn_partial + attn_combine), 16 (the default: the router's
	// sums in the out-projection, outproj_sums, finished in the MoE kernels
	// moe16_*; Load takes 12 where v16OK fails), 17 (v16 with the MoE
	// kernels moe17_*: cp.async rings and a half2 table, and attention
	// splits of at least attnMin17 keys written directly when one; not yet measured,
	// Load takes 16 where v17OK fails), GPTOSS_CUDA_DEC=v3|v6|v7|v12|v17,
	// or auto: the fastest of v16, v17, v12 on this GPU that agrees with v16 (tune.go)
	// (v8–v11, v13–v15 and v16's variants were measured and removed, PERF.md);
	// pdl: programmatic dependent launch for the fused step's kernels where
	// the GPU and driver have it (default; GPTOSS_CUDA_PDL=0 off).
	moeTC, gemmTC bool
	fused, pdl    bool
	dec           int
	// attnMin17: the fewest keys of an attention split in v17's step
	// (attnMin17Default; GPTOSS_CUDA_ATTN_MIN); v16 and older use
	// attnMinKeys and always merge.
	attnMin17 int
	// Tune is what tuning chose (GPTOSS_CUDA_DEC=auto, tune.go); nil when
	// the version was named or defaulted.
	Tune *TuneResult
	// LoadTime is how long Load took; LoadBytes the weight bytes it copied.
	LoadTime  time.Duration
	LoadBytes int64
}

// checkConfig refuses dimensions the kernels do not handle.
func checkConfig(c convert.ModelConfig) error {
	switch {
	case c.HeadDim != 16 && c.HeadDim != 32 && c.HeadDim != 64 && c.HeadDim != 128:
		return fmt.Errorf("head_dim %d: the CUDA kernels handle 16, 32, 64 and 128", c.HeadDim)
	case c.HiddenSize%32 != 0 || c.IntermediateSize%32 != 0:
		return fmt.Errorf("hidden %d / intermediate %d: must be multiples of 32 (MXFP4 blocks)", c.HiddenSize, c.IntermediateSize)
	case c.NumKeyValueHeads <= 0 || c.NumAttentionHeads%c.NumKeyValueHeads != 0:
		return fmt.Errorf("%d attention heads over %d KV heads", c.NumAttentionHeads, c.NumKeyValueHeads)
	case c.NumExperts <= 0 || c.NumExperts > 256:
		return fmt.Errorf("%d experts: the router kernel handles 1–256", c.NumExperts)
	case c.ExpertsPerToken <= 0 || c.ExpertsPerToken > 8 || c.ExpertsPerToken > c.NumExperts:
		return fmt.Errorf("%d experts per token: the router kernel handles 1–8", c.ExpertsPerToken)
	case c.VocabSize <= 0 || c.NumHiddenLayers <= 0:
		return fmt.Errorf("vocab %d, %d layers", c.VocabSize, c.NumHiddenLayers)
	}
	return nil
}

// ropeTables returns YaRN's inverse frequencies (head_dim/2) and the
// concentration that scales cos and sin (GPT-OSS.md §4.3), computed in
// float32 exactly as the CPU engine's cpu.NewRope does.
func ropeTables(c convert.ModelConfig) ([]float32, float32) {
	d := c.HeadDim
	half := d / 2
	inv := make([]float32, half)
	conc := float32(1)
	base, s := c.RopeTheta, c.RopeScalingFactor
	var low, high float64
	if s > 1 {
		conc = float32(0.1*math.Log(s) + 1)
		dh := float64(half)
		low = dh * math.Log(float64(c.InitialContextLength)/(c.RopeNTKBeta*2*math.Pi)) / math.Log(base)
		high = dh * math.Log(float64(c.InitialContextLength)/(c.RopeNTKAlpha*2*math.Pi)) / math.Log(base)
	}
	for i := range inv {
		freq := float32(math.Pow(base, float64(float32(2*i)/float32(d))))
		ext := 1 / freq
		if s <= 1 {
			inv[i] = ext
			continue
		}
		interp := 1 / (float32(s) * freq)
		ramp := min(max(float32((float64(i)-low)/(high-low)), 0), 1)
		inv[i] = interp*ramp + ext*(1-ramp)
	}
	return inv, conc
}

// Load copies the layout's weights to GPU o.Device (MXFP4 stays 4-bit):
// chunks go through pinned staging buffers on two streams so that the
// reads of the mapping overlap the transfers.
func (Engine) Load(ctx context.Context, l *convert.Layout, o runtime.Options) (runtime.Model, error) {
	return Load(ctx, l, o)
}

// Load is Engine.Load returning the concrete model.
func Load(ctx context.Context, l *convert.Layout, o runtime.Options) (*Model, error) {
	start := time.Now()
	cfg := l.Config
	if err := checkConfig(cfg); err != nil {
		return nil, fmt.Errorf("cuda: %s: %w", l.Path, err)
	}
	d, err := openDevice(o.Device)
	if err != nil {
		return nil, fmt.Errorf("cuda: %w", err)
	}
	unlock := d.enter()
	defer unlock()

	// defaults: the kernels that passed and were fastest in the last
	// gpu-check (PERF.md); the env vars select the older ones
	m := &Model{d: d, cfg: cfg, opts: o, moeTC: os.Getenv("GPTOSS_CUDA_MOE") != "v1",
		gemmTC: os.Getenv("GPTOSS_CUDA_GEMM") != "v1",
		fused:  os.Getenv("GPTOSS_CUDA_FUSED") != "0" && fusedOK(cfg),
		dec:    decVersion(os.Getenv("GPTOSS_CUDA_DEC")),
		pdl:    os.Getenv("GPTOSS_CUDA_PDL") != "0"}
	m.attnMin17 = attnMin17Default
	if v, err := strconv.Atoi(os.Getenv("GPTOSS_CUDA_ATTN_MIN")); err == nil && v > 0 {
		m.attnMin17 = v
	}
	if m.dec == 17 && !m.v17OK() {
		m.dec = 16
	}
	if m.dec == 16 && !m.v16OK() {
		m.dec = 12
	}
	type tensor struct {
		name string
		dst  *devPtr
		size int64
	}
	var list []tensor
	add := func(name string, dst *devPtr, want int64) {
		list = append(list, tensor{name, dst, want})
	}
	H, E, I, V := int64(cfg.HiddenSize), int64(cfg.NumExperts), int64(cfg.IntermediateSize), int64(cfg.VocabSize)
	qkv := int64((cfg.NumAttentionHeads + 2*cfg.NumKeyValueHeads) * cfg.HeadDim)
	attn := int64(cfg.NumAttentionHeads * cfg.HeadDim)
	add("embedding.weight", &m.embed, V*H*2)
	add("norm.scale", &m.norm, H*2)
	add("unembedding.weight", &m.unembed, V*H*2)
	m.layers = make([]layerWeights, cfg.NumHiddenLayers)
	for n := range m.layers {
		w := &m.layers[n]
		p := fmt.Sprintf("block.%d.", n)
		add(p+"attn.norm.scale", &w.attnNorm, H*2)
		add(p+"attn.qkv.weight", &w.qkvW, qkv*H*2)
		add(p+"attn.qkv.bias", &w.qkvB, qkv*2)
		add(p+"attn.sinks", &w.sinks, int64(cfg.NumAttentionHeads)*2)
		add(p+"attn.out.weight", &w.outW, H*attn*2)
		add(p+"attn.out.bias", &w.outB, H*2)
		add(p+"mlp.norm.scale", &w.mlpNorm, H*2)
		add(p+"mlp.gate.weight", &w.gateW, E*H*2)
		add(p+"mlp.gate.bias", &w.gateB, E*2)
		add(p+"mlp.mlp1_weight.blocks", &w.w1Blocks, E*2*I*H/2)
		add(p+"mlp.mlp1_weight.scales", &w.w1Scales, E*2*I*H/32)
		add(p+"mlp.mlp1_bias", &w.b1, E*2*I*2)
		add(p+"mlp.mlp2_weight.blocks", &w.w2Blocks, E*H*I/2)
		add(p+"mlp.mlp2_weight.scales", &w.w2Scales, E*H*I/32)
		add(p+"mlp.mlp2_bias", &w.b2, E*H*2)
	}
	var total uint64
	jobs := make([]copyJob, 0, len(list))
	for _, t := range list {
		b := l.Bytes(t.name)
		if b == nil {
			return nil, fmt.Errorf("cuda: %s: no tensor %s", l.Path, t.name)
		}
		if int64(len(b)) != t.size {
			return nil, fmt.Errorf("cuda: %s: tensor %s has %d bytes, the config implies %d", l.Path, t.name, len(b), t.size)
		}
		jobs = append(jobs, copyJob{off: total, src: b})
		total += (uint64(len(b)) + 255) &^ 255
	}
	// Options.DecodeQ8: room for the Q8 copies after the layout's tensors
	var q8s []q8Job
	if o.DecodeQ8 {
		if !m.fused {
			return nil, fmt.Errorf("cuda: %s: q8 decode weights need the fused decode step (GPTOSS_CUDA_FUSED=0, or shapes it does not take)", l.Path)
		}
		addQ8 := func(src []byte, rows, cols int, dst *decMat) {
			nq, nd := runtime.Q8Sizes(rows, cols)
			j := q8Job{src: src, rows: rows, cols: cols, dst: dst, qOff: total}
			total += (uint64(nq) + 255) &^ 255
			j.dOff = total
			total += (uint64(nd) + 255) &^ 255
			q8s = append(q8s, j)
		}
		addQ8(l.Bytes("unembedding.weight"), int(V), int(H), &m.unembedDec)
		for n := range m.layers {
			p := fmt.Sprintf("block.%d.", n)
			addQ8(l.Bytes(p+"attn.qkv.weight"), int(qkv), int(H), &m.layers[n].qkvDec)
			addQ8(l.Bytes(p+"attn.out.weight"), int(H), int(attn), &m.layers[n].outDec)
		}
	}
	inv, conc := ropeTables(cfg)
	m.conc = conc
	if m.arena, err = d.alloc(total + 256); err != nil {
		return nil, fmt.Errorf("cuda: weights: %w", err)
	}
	for i, t := range list {
		*t.dst = m.arena + devPtr(jobs[i].off)
	}
	m.unembedDec = bf16Mat(m.unembed)
	for n := range m.layers {
		w := &m.layers[n]
		w.qkvDec, w.outDec = bf16Mat(w.qkvW), bf16Mat(w.outW)
	}
	m.invFreq = m.arena + devPtr(total)
	if err := uploadStaged(ctx, d, m.arena, jobs, unsafe.Slice((*byte)(unsafe.Pointer(&inv[0])), 4*len(inv)), total); err != nil {
		m.Close()
		return nil, fmt.Errorf("cuda: loading weights: %w", err)
	}
	if len(q8s) > 0 {
		if err := m.uploadQ8(ctx, q8s); err != nil {
			m.Close()
			return nil, fmt.Errorf("cuda: q8 decode weights: %w", err)
		}
	}
	m.LoadBytes = int64(total)
	if os.Getenv("GPTOSS_CUDA_DEC") == "auto" && m.fused {
		if m.Tune, err = m.autotune(ctx, o.TuneDir); err != nil {
			m.Close()
			return nil, fmt.Errorf("cuda: tuning the decode step: %w", err)
		}
	}
	m.LoadTime = time.Since(start)
	return m, nil
}

// q8Job is a BF16 matrix of the layout quantized at load
// (Options.DecodeQ8) into the arena at qOff (values) and dOff (scales).
type q8Job struct {
	src        []byte
	rows, cols int
	qOff, dOff uint64
	dst        *decMat
}

// uploadQ8 quantizes each matrix on the host (runtime.QuantizeQ8, every
// CPU) into one reused buffer and uploads it; host memory is the largest
// matrix's Q8 size, not the sum.
func (m *Model) uploadQ8(ctx context.Context, jobs []q8Job) error {
	u, err := newUploader(m.d)
	if err != nil {
		return err
	}
	defer u.close()
	var buf []byte
	for _, j := range jobs {
		nq, nd := runtime.Q8Sizes(j.rows, j.cols)
		if cap(buf) < nq+nd {
			buf = make([]byte, nq+nd)
		}
		q, dd := buf[:nq], buf[nq:nq+nd]
		// the previous matrix's bytes are in pinned memory once send returns
		if err := runtime.QuantizeQ8(q, dd, j.src, j.rows, j.cols, goruntime.GOMAXPROCS(0)); err != nil {
			return err
		}
		if err := u.send(ctx, m.arena+devPtr(j.qOff), q); err != nil {
			return err
		}
		if err := u.send(ctx, m.arena+devPtr(j.dOff), dd); err != nil {
			return err
		}
		*j.dst = decMat{w: m.arena + devPtr(j.qOff), d: m.arena + devPtr(j.dOff)}
	}
	return u.finish()
}

// Kernels says which decode step the model runs ("decode v16", or what
// tuning measured).
func (m *Model) Kernels() string {
	if m.Tune == nil && !m.fused {
		return "decode unfused"
	}
	dec, weights, detail := m.dec, "", ""
	if m.Tune != nil {
		dec, detail = m.Tune.Dec, m.Tune.detail()
	}
	if m.q8() {
		weights = " q8"
	}
	return fmt.Sprintf("decode v%d%s%s", dec, weights, detail)
}

// q8 says whether the fused decode step reads Q8 copies
// (Options.DecodeQ8; set once they are uploaded).
func (m *Model) q8() bool { return m.unembedDec.q8() }

func (m *Model) Config() convert.ModelConfig { return m.cfg }
func (m *Model) Engine() string              { return "cuda" }

// Device names the GPU the model runs on.
func (m *Model) Device() string { return m.d.name }

// PeakDeviceBytes is the most device memory this process has held through
// the engine's allocations (weights, KV caches, scratch).
func (m *Model) PeakDeviceBytes() uint64 {
	m.d.mu.Lock()
	defer m.d.mu.Unlock()
	return m.d.peakUse
}

func (m *Model) Close() error {
	if m.arena != 0 {
		unlock := m.d.enter()
		m.d.free(m.arena)
		unlock()
		m.arena = 0
	}
	return nil
}

// v16OK says whether decode v16 (the router in the out-projection and the
// MoE kernels) takes the model: fewer than 256 experts, top-k ≤ 8, the
// 64 KB table of moe7, and an even layer count (each layer's mlp2 clears
// the sums buffer of the layer before, which the layer after reuses).
func (m *Model) v16OK() bool {
	c := m.cfg
	return c.NumExperts < 256 && c.ExpertsPerToken <= 8 && c.NumHiddenLayers%2 == 0 && m.d.moe7OK()
}

// v17OK says whether decode v17 (v16 with moe17's MoE kernels) takes the
// model: v16OK, rows of at most v17Max values, and the device took moe17's
// dynamic shared memory (v17Shared).
func (m *Model) v17OK() bool {
	c := m.cfg
	return m.v16OK() && c.HiddenSize <= v17Max && c.IntermediateSize <= v17Max &&
		m.d.moe17OK()
}

// decVersion is the decode kernels' version GPTOSS_CUDA_DEC names (v3, v6,
// v7, v12, v17), else the default (v16; also where auto then tunes).
func decVersion(v string) int {
	switch v {
	case "v17":
		return 17
	case "v3":
		return 3
	case "v6":
		return 6
	case "v7":
		return 7
	case "v12":
		return 12
	}
	return 16
}
