// Planning: PlanFit decides where a model runs on a Machine, and says why.
//
// The rules, in order:
//
//   - Memory per device is weights + KV cache + workspace.
//     Weights stay MXFP4 in memory (the checkpoint's size, ModelSpec.WeightsBytes).
//     The KV cache is BF16 and sliding-aware: per token and layer K+V take
//     2 × KVHeads × HeadDim × 2 bytes; full-attention layers keep the whole
//     context, sliding-window layers only the last SlidingWindow tokens.
//     Workspace is a fixed GPUWorkspace (CUDA context, cuBLAS workspace,
//     allocator slack) or CPUWorkspace (runtime, tokenizer, buffers) plus an
//     activations estimate for a PrefillChunk-token prefill step (attention is
//     computed in tiles, so activations do not grow with the context).
//   - A GPU is usable by the CUDA engine when it is not a whole GPU in MIG
//     mode (only its MIG slices are devices then), NVML reported its compute
//     capability and memory (other failed queries, such as the UUID, do not
//     matter), the compute capability is at least
//     MinComputeMajor.MinComputeMinor, and the CUDA driver (libcuda.so.1) is
//     present and at least MinCUDADriver.
//   - A GPU's room is its free memory (not its total: other processes count),
//     less GPUReserve. The CPU's room is Memory.Available (cgroup-bounded).
//   - A device is a candidate when the model fits there at MinContext tokens
//     (or the requested context, if smaller): below that nothing useful runs.
//   - The CUDA engine is chosen when any usable GPU is a candidate: first the
//     GPUs that hold the requested context, then the one with most room.
//     One GPU only for now: a model is never split across GPUs (the plan
//     says when several GPUs together would have held it).
//   - Otherwise the CPU engine, when the CPU is a candidate ("CPU only: will
//     run slowly").
//   - Otherwise engine "none": the model does not fit here.
//   - Plan.Fits says whether the requested context fits on the chosen device;
//     Plan.MaxContext is the largest context that does (whole multiples of
//     ContextStep below the model's maximum).
package hw

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Planning constants.
const (
	// MinComputeMajor.MinComputeMinor is the oldest GPU architecture the
	// CUDA kernels are built for (Ampere, sm_80: BF16 tensor cores).
	MinComputeMajor = 8
	MinComputeMinor = 0
	// MinCUDADriver is the oldest CUDA driver API version (as
	// cuDriverGetVersion reports it: 1000*major + 10*minor) the kernels load on.
	MinCUDADriver = 12000

	// GPUWorkspace is the fixed part of the GPU workspace; CPUWorkspace that
	// of the CPU engine.
	GPUWorkspace = 1 << 30
	CPUWorkspace = 512 << 20
	// GPUReserve is left free on every GPU (other allocations, fragmentation).
	GPUReserve = 512 << 20
	// PrefillChunk is the number of prompt tokens processed in one step; the
	// activations estimate is sized for it.
	PrefillChunk = 512
	// MinContext is the smallest context worth running (the models'
	// initial_context_length): a device that cannot hold it is not a candidate.
	MinContext = 4096
	// ContextStep rounds a reduced maximum context down.
	ContextStep = 1024
)

// Engines.
const (
	EngineCUDA = "cuda"
	EngineCPU  = "cpu"
	EngineNone = "none"
)

// ModelSpec is what planning needs to know about a model.
type ModelSpec struct {
	Name          string `json:"name"`
	WeightsBytes  int64  `json:"weightsBytes"`
	Layers        int    `json:"layers"`
	FullLayers    int    `json:"fullLayers"`    // layers attending to the whole context
	SlidingWindow int    `json:"slidingWindow"` // tokens the other layers keep; 0: none
	KVHeads       int    `json:"kvHeads"`
	HeadDim       int    `json:"headDim"`
	MaxContext    int    `json:"maxContext"`
	// HiddenSize and VocabSize size the activations estimate (0: left out).
	HiddenSize int `json:"hiddenSize,omitempty"`
	VocabSize  int `json:"vocabSize,omitempty"`
}

var specs = []ModelSpec{
	{Name: "gpt-oss-20b", WeightsBytes: 13_761_264_768, Layers: 24, FullLayers: 12, SlidingWindow: 128,
		KVHeads: 8, HeadDim: 64, MaxContext: 131072, HiddenSize: 2880, VocabSize: 201088},
	{Name: "gpt-oss-120b", WeightsBytes: 65_248_815_744, Layers: 36, FullLayers: 18, SlidingWindow: 128,
		KVHeads: 8, HeadDim: 64, MaxContext: 131072, HiddenSize: 2880, VocabSize: 201088},
}

// SpecFor returns the built-in spec of a gpt-oss model, by name
// ("gpt-oss-20b"), repository ("openai/gpt-oss-20b") or alias ("20b").
func SpecFor(name string) (ModelSpec, bool) {
	n := strings.TrimPrefix(strings.ToLower(name), "openai/")
	for _, s := range specs {
		if n == s.Name || "gpt-oss-"+n == s.Name {
			return s, true
		}
	}
	return ModelSpec{}, false
}

// SpecFromConfig reads a model's dimensions from its config.json: the
// Hugging Face one (num_hidden_layers, layer_types, sliding_window,
// num_key_value_heads, head_dim, max_position_embeddings, …) or OpenAI's
// original/config.json (initial_context_length × rope_scaling_factor).
// weights is the size of the weight files.
func SpecFromConfig(name string, configJSON []byte, weights int64) (ModelSpec, error) {
	var c struct {
		Layers         int      `json:"num_hidden_layers"`
		LayerTypes     []string `json:"layer_types"`
		SlidingWindow  *int     `json:"sliding_window"`
		KVHeads        int      `json:"num_key_value_heads"`
		Heads          int      `json:"num_attention_heads"`
		HeadDim        int      `json:"head_dim"`
		Hidden         int      `json:"hidden_size"`
		Vocab          int      `json:"vocab_size"`
		MaxPos         int      `json:"max_position_embeddings"`
		InitialContext int      `json:"initial_context_length"`
		RopeFactor     float64  `json:"rope_scaling_factor"`
		RopeScaling    *struct {
			Factor float64 `json:"factor"`
			Orig   int     `json:"original_max_position_embeddings"`
		} `json:"rope_scaling"`
	}
	if err := json.Unmarshal(configJSON, &c); err != nil {
		return ModelSpec{}, fmt.Errorf("%s: config.json: %w", name, err)
	}
	s := ModelSpec{Name: name, WeightsBytes: weights, Layers: c.Layers, KVHeads: c.KVHeads, HeadDim: c.HeadDim,
		HiddenSize: c.Hidden, VocabSize: c.Vocab, MaxContext: c.MaxPos}
	if s.KVHeads == 0 {
		s.KVHeads = c.Heads // no GQA
	}
	if s.HeadDim == 0 && c.Heads > 0 {
		s.HeadDim = c.Hidden / c.Heads
	}
	if s.MaxContext == 0 && c.InitialContext > 0 {
		f := c.RopeFactor
		if f == 0 && c.RopeScaling != nil {
			f = c.RopeScaling.Factor
		}
		if f < 1 {
			f = 1
		}
		s.MaxContext = int(float64(c.InitialContext) * f)
	}
	if s.Layers <= 0 || s.KVHeads <= 0 || s.HeadDim <= 0 || s.MaxContext <= 0 {
		return ModelSpec{}, fmt.Errorf("%s: config.json lacks num_hidden_layers, num_key_value_heads, head_dim or the context length", name)
	}
	if c.SlidingWindow != nil {
		s.SlidingWindow = *c.SlidingWindow
	}
	switch {
	case s.SlidingWindow <= 0:
		s.SlidingWindow, s.FullLayers = 0, s.Layers
	case len(c.LayerTypes) > 0:
		for _, t := range c.LayerTypes {
			if t != "sliding_attention" {
				s.FullLayers++
			}
		}
	default:
		// gpt-oss alternates sliding and full layers, sliding first.
		s.FullLayers = s.Layers / 2
	}
	return s, nil
}

// KVBytesPerToken is the size of one token's K and V in one layer (BF16).
func (s ModelSpec) KVBytesPerToken() int64 { return 2 * int64(s.KVHeads) * int64(s.HeadDim) * 2 }

// KVBytes is the sliding-aware KV cache for context tokens, as the CUDA
// engine keeps it (16-bit values, sliding layers hold the window).
func (s ModelSpec) KVBytes(context int) int64 {
	return s.kvBytes(context, 1, 0)
}

// CPUKVSlack is how many positions beyond the window the CPU engine's
// sliding-layer rings keep (so a conversation can back up and reuse a prefix).
const CPUKVSlack = 512

// CPUKVBytes is the KV cache of the CPU engine for context tokens: FP32
// values (twice KVBytes per token) and rings of window+CPUKVSlack positions
// on the sliding layers.
func (s ModelSpec) CPUKVBytes(context int) int64 {
	return s.kvBytes(context, 2, CPUKVSlack)
}

func (s ModelSpec) kvBytes(context int, mult int64, slack int) int64 {
	sliding := s.Layers - s.FullLayers
	window := context
	if s.SlidingWindow > 0 && s.SlidingWindow+slack < window {
		window = s.SlidingWindow + slack
	}
	return mult * s.KVBytesPerToken() * (int64(s.FullLayers)*int64(context) + int64(sliding)*int64(window))
}

// Activations estimates the live activations of one prefill step: a
// PrefillChunk of hidden states in FP32 with room for the attention and
// MoE intermediates (16 vectors each), plus two rows of logits.
func (s ModelSpec) Activations() int64 {
	return PrefillChunk*int64(s.HiddenSize)*4*16 + int64(s.VocabSize)*4*2
}

// Fit is how the model fits on one device.
type Fit struct {
	Device     string `json:"device"`         // "GPU 0 (NVIDIA H100 80GB HBM3)", "MIG slice 1g.10gb", "CPU"
	Engine     string `json:"engine"`         // cuda or cpu
	GPU        int    `json:"gpu"`            // GPU index, -1 for the CPU
	UUID       string `json:"uuid,omitempty"` // the device's UUID (MIG slices share their GPU's index)
	Usable     bool   `json:"usable"`         // the engine can run on this device at all
	Fits       bool   `json:"fits"`           // at the requested context
	Need       int64  `json:"need"`           // bytes at the requested context
	Have       int64  `json:"have"`           // room: free GPU memory less the reserve, or available RAM
	MaxContext int    `json:"maxContext"`
	Reason     string `json:"reason,omitempty"` // why the device cannot run the model
}

// Plan is where and how a model runs on a machine.
type Plan struct {
	Model      string   `json:"model"`
	Context    int      `json:"context"`        // requested (0 meant the model's maximum)
	Engine     string   `json:"engine"`         // cuda, cpu or none
	GPU        int      `json:"gpu"`            // -1 unless Engine is cuda
	UUID       string   `json:"uuid,omitempty"` // of the chosen GPU or MIG slice (CUDA_VISIBLE_DEVICES)
	Fits       bool     `json:"fits"`           // the requested context fits on the chosen device
	Weights    int64    `json:"weights"`
	KV         int64    `json:"kv"`
	Workspace  int64    `json:"workspace"`
	Need       int64    `json:"need"` // weights + KV + workspace at Context
	Have       int64    `json:"have"`
	MaxContext int      `json:"maxContext"` // largest context that fits on the chosen device; 0 when none
	Summary    string   `json:"summary"`
	Reasons    []string `json:"reasons,omitempty"` // why GPUs are unusable or too small
	Options    []Fit    `json:"options"`
}

// PlanFit plans spec on m at context tokens (0 or more than the model's
// maximum: the maximum). See the rules at the top of this file.
func PlanFit(spec ModelSpec, m *Machine, context int) Plan {
	if context <= 0 || context > spec.MaxContext {
		context = spec.MaxContext
	}
	minCtx := min(MinContext, context)
	p := Plan{Model: spec.Name, Context: context, GPU: -1, Engine: EngineNone}
	if m == nil {
		m = &Machine{}
	}

	// GPUs.
	driverWhy := ""
	switch {
	case len(m.GPUs) == 0:
	case m.CUDADriverVersion == 0 && m.GPUError != "":
		driverWhy = m.GPUError // "CUDA driver: cannot load: …"
	case m.CUDADriverVersion == 0:
		driverWhy = "no CUDA driver (libcuda.so.1 could not be loaded)"
	case m.CUDADriverVersion < MinCUDADriver:
		driverWhy = fmt.Sprintf("driver CUDA %s < %s required", cudaVersion(m.CUDADriverVersion), cudaVersion(MinCUDADriver))
	}
	if driverWhy != "" {
		p.Reasons = append(p.Reasons, driverWhy)
	}
	gpuWork := GPUWorkspace + spec.Activations()
	var usable []Fit // usable GPUs, whether or not the model fits
	for _, g := range m.GPUs {
		f := Fit{Device: gpuLabel(g), Engine: EngineCUDA, GPU: g.Index, UUID: g.UUID, Have: gpuRoom(g)}
		f.Need = spec.WeightsBytes + spec.KVBytes(context) + gpuWork
		detail := ""
		if g.Error != "" {
			detail = " (" + g.Error + ")"
		}
		switch {
		case g.MIGEnabled && !g.MIGInstance:
			f.Reason = f.Device + ": MIG mode is on; only its MIG slices can run a model"
		case g.ComputeMajor == 0:
			f.Reason = f.Device + ": compute capability unknown" + detail
		case g.MemoryTotal <= 0 && g.MemoryFree <= 0:
			f.Reason = f.Device + ": memory size unknown" + detail
		case g.ComputeMajor*10+g.ComputeMinor < MinComputeMajor*10+MinComputeMinor:
			f.Reason = fmt.Sprintf("%s: compute capability %d.%d < %d.%d required by the CUDA kernels",
				f.Device, g.ComputeMajor, g.ComputeMinor, MinComputeMajor, MinComputeMinor)
		case driverWhy != "":
			f.Reason = driverWhy
		default: // a failed query of something else (the UUID, PCIe) does not matter
			f.Usable = true
			f.Fits = f.Need <= f.Have
			f.MaxContext = maxContext(spec, spec.KVBytes, f.Have-spec.WeightsBytes-gpuWork, minCtx)
			if f.MaxContext == 0 {
				minNeed := spec.WeightsBytes + spec.KVBytes(minCtx) + gpuWork
				f.Reason = fmt.Sprintf("%s: %s usable < %s needed at %d tokens", f.Device, GB(f.Have), GB(minNeed), minCtx)
			}
			usable = append(usable, f)
		}
		if f.Reason != "" && f.Reason != driverWhy {
			p.Reasons = append(p.Reasons, f.Reason)
		}
		p.Options = append(p.Options, f)
	}
	if len(m.GPUs) == 0 {
		why := "no NVIDIA GPU found"
		if m.GPUError != "" {
			why = "no NVIDIA GPU: " + m.GPUError
		}
		p.Reasons = append(p.Reasons, why)
	}
	var cands []Fit
	var together int64
	for _, f := range usable {
		together += f.Have
		if f.MaxContext > 0 {
			cands = append(cands, f)
		}
	}
	minGPUNeed := spec.WeightsBytes + spec.KVBytes(minCtx) + gpuWork
	if len(cands) == 0 && len(usable) > 1 && together >= minGPUNeed {
		p.Reasons = append(p.Reasons, fmt.Sprintf("the %d usable GPUs together have %s, but a model runs on one GPU only for now",
			len(usable), GB(together)))
	}

	// The CPU.
	cpuWork := CPUWorkspace + spec.Activations()
	cpu := Fit{Device: "CPU", Engine: EngineCPU, GPU: -1, Usable: true, Have: m.Memory.Available}
	if cpu.Have <= 0 {
		cpu.Have = m.Memory.Total
	}
	cpu.Need = spec.WeightsBytes + spec.CPUKVBytes(context) + cpuWork
	cpu.Fits = cpu.Need <= cpu.Have
	cpu.MaxContext = maxContext(spec, spec.CPUKVBytes, cpu.Have-spec.WeightsBytes-cpuWork, minCtx)
	minCPUNeed := spec.WeightsBytes + spec.CPUKVBytes(minCtx) + cpuWork
	if cpu.MaxContext == 0 {
		cpu.Reason = fmt.Sprintf("CPU: %s RAM available < %s needed at %d tokens", GB(cpu.Have), GB(minCPUNeed), minCtx)
	}
	p.Options = append(p.Options, cpu)

	// Choose.
	var chosen *Fit
	work := int64(0)
	if len(cands) > 0 {
		sort.SliceStable(cands, func(i, j int) bool {
			if cands[i].Fits != cands[j].Fits {
				return cands[i].Fits
			}
			return cands[i].Have > cands[j].Have
		})
		chosen, work = &cands[0], gpuWork
		p.Engine, p.GPU, p.UUID = EngineCUDA, chosen.GPU, chosen.UUID
	} else if cpu.MaxContext > 0 {
		chosen, work = &cpu, cpuWork
		p.Engine = EngineCPU
	}
	p.Weights, p.KV = spec.WeightsBytes, spec.KVBytes(context)
	if p.Engine == EngineCPU {
		p.KV = spec.CPUKVBytes(context)
	}
	if chosen == nil {
		p.Workspace = cpuWork
		if len(usable) > 0 {
			p.Workspace = gpuWork
		}
		p.Need = p.Weights + p.KV + p.Workspace
		p.Have = cpu.Have
		largest := int64(0)
		for _, f := range usable {
			largest = max(largest, f.Have)
		}
		p.Have = max(p.Have, largest)
		need := minCPUNeed
		gpus := "there is no usable GPU"
		if len(usable) > 0 {
			need = minGPUNeed
			gpus = "the largest usable GPU has " + GB(largest)
		}
		p.Summary = fmt.Sprintf("does not fit: needs %s even at %d tokens, %s and %s RAM is available", GB(need), minCtx, gpus, GB(cpu.Have))
		if spec.Name == "gpt-oss-120b" {
			p.Summary += " — try 20b"
		}
		return p
	}
	p.Workspace, p.Need, p.Have = work, chosen.Need, chosen.Have
	p.Fits, p.MaxContext = chosen.Fits, chosen.MaxContext
	breakdown := fmt.Sprintf("%s weights + %s KV at %d tokens + %s workspace = %s", GB(p.Weights), GB(p.KV), p.Context, GB(p.Workspace), GB(p.Need))
	if p.Fits {
		breakdown += " of " + GB(p.Have)
	} else {
		breakdown += " > " + GB(p.Have)
	}
	where := "fits on " + chosen.Device
	if p.Engine == EngineCPU {
		where = fmt.Sprintf("CPU only: will run slowly (no usable GPU: %s)", noGPUWhy(m, p.Reasons, usable))
	}
	if !p.Fits {
		where += fmt.Sprintf(", up to %d tokens, not %d", p.MaxContext, p.Context)
	}
	if p.Engine == EngineCPU {
		breakdown += " RAM"
	}
	p.Summary = where + ": " + breakdown
	return p
}

// maxContext is the largest context whose KV cache fits in budget bytes,
// capped at the model's maximum and rounded down to ContextStep below it;
// 0 when not even minCtx tokens fit.
func maxContext(spec ModelSpec, kv func(int) int64, budget int64, minCtx int) int {
	if budget < kv(minCtx) {
		return 0
	}
	if kv(spec.MaxContext) <= budget {
		return spec.MaxContext
	}
	lo, hi := minCtx, spec.MaxContext // kv(lo) fits, kv(hi) does not
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if kv(mid) <= budget {
			lo = mid
		} else {
			hi = mid
		}
	}
	if r := lo / ContextStep * ContextStep; r >= minCtx {
		return r
	}
	return lo
}

func gpuRoom(g GPU) int64 {
	free := g.MemoryFree
	if free <= 0 {
		free = g.MemoryTotal // free memory unknown
	}
	return max(free-GPUReserve, 0)
}

var migProfile = regexp.MustCompile(`\b\d+g\.\d+gb\b`)

func gpuLabel(g GPU) string {
	if g.MIGInstance {
		if p := migProfile.FindString(g.Name); p != "" {
			return "MIG slice " + p
		}
		return fmt.Sprintf("MIG slice of GPU %d (%s)", g.Index, g.Name)
	}
	if g.Name == "" {
		return fmt.Sprintf("GPU %d", g.Index)
	}
	return fmt.Sprintf("GPU %d (%s)", g.Index, g.Name)
}

// noGPUWhy says in a few words why the CPU engine was chosen: the reason
// of the largest usable GPU (the nearest miss), else the first reason.
func noGPUWhy(m *Machine, reasons []string, usable []Fit) string {
	switch {
	case len(m.GPUs) == 0 && m.GPUError != "":
		return m.GPUError
	case len(m.GPUs) == 0 || len(reasons) == 0:
		return "no NVIDIA GPU found"
	}
	first := reasons[0]
	var best *Fit
	for i := range usable {
		if best == nil || usable[i].Have > best.Have {
			best = &usable[i]
		}
	}
	if best != nil && best.Reason != "" {
		first = best.Reason
	}
	if len(reasons) == 1 {
		return first
	}
	return fmt.Sprintf("%s; and %d more", first, len(reasons)-1)
}

func cudaVersion(v int) string { return fmt.Sprintf("%d.%d", v/1000, v%1000/10) }

// GB formats bytes in decimal gigabytes, as GPU and model sizes are quoted
// ("13.8 GB").
func GB(n int64) string {
	return fmt.Sprintf("%.1f GB", float64(n)/1e9)
}
