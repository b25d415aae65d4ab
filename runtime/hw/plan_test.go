package hw

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

const (
	planGiB = int64(1) << 30
	planMiB = int64(1) << 20
)

// Scripted devices, with the memory NVML reports for the real cards.
var (
	devH100 = GPU{Index: 0, Name: "NVIDIA H100 80GB HBM3", ComputeMajor: 9, ComputeMinor: 0,
		MemoryTotal: 81559 * planMiB, MemoryFree: 81000 * planMiB, PCIeGen: 5, PCIeWidth: 16}
	devRTX4090 = GPU{Index: 0, Name: "NVIDIA GeForce RTX 4090", ComputeMajor: 8, ComputeMinor: 9,
		MemoryTotal: 24564 * planMiB, MemoryFree: 24000 * planMiB, PCIeGen: 4, PCIeWidth: 16}
	devRTX4080 = GPU{Index: 0, Name: "NVIDIA GeForce RTX 4080", ComputeMajor: 8, ComputeMinor: 9,
		MemoryTotal: 16376 * planMiB, MemoryFree: 16000 * planMiB}
	devA100MIG = GPU{Index: 0, Name: "NVIDIA A100-SXM4-80GB", ComputeMajor: 8, ComputeMinor: 0,
		MemoryTotal: 81920 * planMiB, MemoryFree: 71000 * planMiB, MIGEnabled: true}
	devMIG1g = GPU{Index: 0, Name: "NVIDIA A100-SXM4-80GB MIG 1g.10gb", ComputeMajor: 8, ComputeMinor: 0,
		MemoryTotal: 9728 * planMiB, MemoryFree: 9600 * planMiB, MIGEnabled: true, MIGInstance: true}
	devMIG3g = GPU{Index: 0, Name: "NVIDIA A100-SXM4-80GB MIG 3g.40gb", ComputeMajor: 8, ComputeMinor: 0,
		MemoryTotal: 40192 * planMiB, MemoryFree: 40000 * planMiB, MIGEnabled: true, MIGInstance: true}
	devGTX1080Ti = GPU{Index: 0, Name: "NVIDIA GeForce GTX 1080 Ti", ComputeMajor: 6, ComputeMinor: 1,
		MemoryTotal: 11264 * planMiB, MemoryFree: 11000 * planMiB}
	devA100x40 = GPU{Index: 0, Name: "NVIDIA A100-PCIE-40GB", ComputeMajor: 8, ComputeMinor: 0,
		MemoryTotal: 40960 * planMiB, MemoryFree: 40000 * planMiB}
)

func scripted(ram int64, gpus ...GPU) *Machine {
	m := &Machine{Memory: Memory{Total: ram, Available: ram - ram/16}, CUDADriverVersion: 12040, DriverVersion: "550.54.15"}
	i := -1
	for _, g := range gpus {
		if !g.MIGInstance { // MIG slices carry their GPU's index
			i++
		}
		g.Index = i
		g.UUID = fmt.Sprintf("GPU-%d", len(m.GPUs))
		m.GPUs = append(m.GPUs, g)
	}
	if len(gpus) == 0 {
		m.CUDADriverVersion, m.DriverVersion = 0, ""
		m.GPUError = "no NVIDIA driver (libnvidia-ml.so.1 not found)"
	}
	return m
}

func mustSpec(t *testing.T, name string) ModelSpec {
	t.Helper()
	s, ok := SpecFor(name)
	if !ok {
		t.Fatalf("no mustSpec for %s", name)
	}
	return s
}

// closedFormMax is the largest context whose KV cache fits in budget, computed
// in closed form (the planner searches), rounded as the planner rounds.
func closedFormMax(s ModelSpec, budget int64, cpu bool) int {
	per, keep := s.KVBytesPerToken(), int64(s.SlidingWindow)
	if cpu { // FP32 values, rings of window + slack
		per, keep = 2*per, keep+CPUKVSlack
	}
	sliding := int64(s.Layers-s.FullLayers) * keep * per
	c := int((budget - sliding) / (int64(s.FullLayers) * per))
	if c >= s.MaxContext {
		return s.MaxContext
	}
	if c < MinContext {
		return 0
	}
	return c / ContextStep * ContextStep
}

func TestSpecs(t *testing.T) {
	s20, s120 := mustSpec(t, "20b"), mustSpec(t, "openai/gpt-oss-120b")
	if s20.Name != "gpt-oss-20b" || s20.WeightsBytes != 13_761_264_768 || s20.Layers != 24 || s20.FullLayers != 12 {
		t.Errorf("20b: %+v", s20)
	}
	if s120.Name != "gpt-oss-120b" || s120.WeightsBytes != 65_248_815_744 || s120.Layers != 36 || s120.FullLayers != 18 {
		t.Errorf("120b: %+v", s120)
	}
	if _, ok := SpecFor("gpt-oss-7b"); ok {
		t.Error("unknown model has a spec")
	}
	// GPT-OSS.md §8: BF16 2 KiB per layer per token; ≈3 GiB (20b) and
	// ≈4.5 GiB (120b) at 131072 tokens with a sliding-aware cache.
	if s20.KVBytesPerToken() != 2048 {
		t.Errorf("KV per token per layer: %d", s20.KVBytesPerToken())
	}
	if got, want := s20.KVBytes(131072), int64(2048*(12*131072+12*128)); got != want {
		t.Errorf("20b KV: %d, want %d", got, want)
	}
	if got, want := s120.KVBytes(131072), int64(2048*(18*131072+18*128)); got != want {
		t.Errorf("120b KV: %d, want %d", got, want)
	}
	if got, want := s20.CPUKVBytes(100000), int64(2*2048*(12*100000+12*(128+CPUKVSlack))); got != want {
		t.Errorf("20b CPU KV at 100000: %d, want %d", got, want)
	}
	if got, want := s20.KVBytes(100), int64(2048*24*100); got != want {
		t.Errorf("20b KV below the window: %d, want %d", got, want)
	}
}

func TestSpecFromConfig(t *testing.T) {
	types := make([]string, 24)
	for i := range types {
		types[i] = "sliding_attention"
		if i%2 == 1 {
			types[i] = "full_attention"
		}
	}
	lt, _ := json.Marshal(types)
	hf := `{"num_hidden_layers": 24, "num_key_value_heads": 8, "num_attention_heads": 64, "head_dim": 64,
		"hidden_size": 2880, "vocab_size": 201088, "sliding_window": 128, "max_position_embeddings": 131072,
		"layer_types": ` + string(lt) + `, "rope_scaling": {"factor": 32.0, "original_max_position_embeddings": 4096}}`
	s, err := SpecFromConfig("gpt-oss-20b", []byte(hf), 13_761_264_768)
	if err != nil {
		t.Fatal(err)
	}
	if want := mustSpec(t, "20b"); s != want {
		t.Errorf("hf config:\n%+v\nwant\n%+v", s, want)
	}
	orig := `{"num_hidden_layers": 36, "num_experts": 128, "experts_per_token": 4, "vocab_size": 201088,
		"hidden_size": 2880, "intermediate_size": 2880, "swiglu_limit": 7.0, "head_dim": 64,
		"num_attention_heads": 64, "num_key_value_heads": 8, "sliding_window": 128,
		"initial_context_length": 4096, "rope_theta": 150000, "rope_scaling_factor": 32.0,
		"rope_ntk_alpha": 1, "rope_ntk_beta": 32}`
	s, err = SpecFromConfig("gpt-oss-120b", []byte(orig), 65_248_815_744)
	if err != nil {
		t.Fatal(err)
	}
	if want := mustSpec(t, "120b"); s != want {
		t.Errorf("original config:\n%+v\nwant\n%+v", s, want)
	}
	// A dense model without sliding layers or GQA (head_dim derived).
	llama := `{"num_hidden_layers": 16, "num_attention_heads": 32, "hidden_size": 2048, "max_position_embeddings": 8192, "sliding_window": null}`
	s, err = SpecFromConfig("x/dense", []byte(llama), 1e9)
	if err != nil {
		t.Fatal(err)
	}
	if s.FullLayers != 16 || s.KVHeads != 32 || s.HeadDim != 64 || s.SlidingWindow != 0 || s.MaxContext != 8192 {
		t.Errorf("dense: %+v", s)
	}
	if s.KVBytes(1000) != 2*32*64*2*16*1000 {
		t.Errorf("dense KV: %d", s.KVBytes(1000))
	}
	for _, bad := range []string{`{}`, `not json`, `{"num_hidden_layers": 4, "num_key_value_heads": 2}`} {
		if _, err := SpecFromConfig("bad", []byte(bad), 0); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestPlanFit(t *testing.T) {
	type tc struct {
		name       string
		model      string
		m          *Machine
		context    int
		engine     string
		gpu        int
		fits       bool
		maxContext int // -1: check against closedFormMax on the chosen device
		summary    []string
		reasons    []string // substrings, each in some reason
	}
	oldDriver := scripted(64*planGiB, devH100)
	oldDriver.CUDADriverVersion = 11080
	noCUDA := scripted(64*planGiB, devRTX4090)
	noCUDA.CUDADriverVersion = 0
	noCUDA.GPUError = "CUDA driver: cannot load: libcuda.so.1: cannot open shared object file"
	noCUDA2 := scripted(64*planGiB, devRTX4090)
	noCUDA2.CUDADriverVersion = 0
	broken := scripted(64*planGiB, devH100)
	broken.GPUs[0].Error = "nvmlDeviceGetHandleByIndex_v2: GPU is lost (NVML error 15)"
	broken.GPUs[0].Name, broken.GPUs[0].ComputeMajor, broken.GPUs[0].MemoryTotal, broken.GPUs[0].MemoryFree = "", 0, 0, 0
	noUUID := scripted(64*planGiB, devH100)
	noUUID.GPUs[0].Error = "nvmlDeviceGetUUID: Unknown Error (NVML error 999)"
	noMem := scripted(64*planGiB, devH100)
	noMem.GPUs[0].Error = "nvmlDeviceGetMemoryInfo: Unknown Error"
	noMem.GPUs[0].MemoryTotal, noMem.GPUs[0].MemoryFree = 0, 0
	oldAll := scripted(64*planGiB, devGTX1080Ti, devH100)
	oldAll.CUDADriverVersion = 10010
	mixed := scripted(256*planGiB, devRTX4090, devH100) // the 4090 is GPU 0
	ramExact := &Machine{Memory: Memory{Total: 72 * planGiB, Available: 64 * planGiB}}

	cases := []tc{
		{name: "h100/20b", model: "20b", m: scripted(256*planGiB, devH100), engine: "cuda", gpu: 0, fits: true, maxContext: 131072,
			summary: []string{"fits on GPU 0 (NVIDIA H100 80GB HBM3): 13.8 GB weights + 3.2 GB KV at 131072 tokens + 1.2 GB workspace = 18.2 GB of 84.4 GB"}},
		{name: "h100/120b", model: "120b", m: scripted(256*planGiB, devH100), engine: "cuda", gpu: 0, fits: true, maxContext: 131072,
			summary: []string{"fits on GPU 0 (NVIDIA H100 80GB HBM3): 65.2 GB weights + 4.8 GB KV at 131072 tokens + 1.2 GB workspace = 71.3 GB of 84.4 GB"}},
		{name: "rtx4090/20b", model: "20b", m: scripted(24*planGiB, devRTX4090), engine: "cuda", gpu: 0, fits: true, maxContext: 131072,
			summary: []string{"fits on GPU 0 (NVIDIA GeForce RTX 4090)", "of 24.6 GB"}},
		{name: "rtx4090/120b, 24 GiB RAM", model: "120b", m: scripted(24*planGiB, devRTX4090), engine: "none", gpu: -1, fits: false, maxContext: 0,
			summary: []string{"does not fit: needs 66.6 GB even at 4096 tokens, the largest usable GPU has 24.6 GB and 24.2 GB RAM is available — try 20b"},
			reasons: []string{"GPU 0 (NVIDIA GeForce RTX 4090): 24.6 GB usable < 66.6 GB needed at 4096 tokens"}},
		{name: "rtx4090/120b, 128 GiB RAM", model: "120b", m: scripted(128*planGiB, devRTX4090), engine: "cpu", gpu: -1, fits: true, maxContext: 131072,
			summary: []string{"CPU only: will run slowly (no usable GPU: GPU 0 (NVIDIA GeForce RTX 4090): 24.6 GB usable < 66.6 GB needed at 4096 tokens): 65.2 GB weights", "RAM"}},
		{name: "rtx4080/20b: GPU, shorter context", model: "20b", m: scripted(64*planGiB, devRTX4080), engine: "cuda", gpu: 0, fits: false, maxContext: -1,
			summary: []string{"fits on GPU 0 (NVIDIA GeForce RTX 4080), up to ", " tokens, not 131072: ", "> 16.2 GB"}},
		{name: "rtx4080/20b at 32768", model: "20b", m: scripted(64*planGiB, devRTX4080), context: 32768, engine: "cuda", gpu: 0, fits: true, maxContext: -1,
			summary: []string{"KV at 32768 tokens"}},
		{name: "mig/20b, 64 GiB RAM", model: "20b", m: scripted(64*planGiB, devA100MIG, devMIG1g), engine: "cpu", gpu: -1, fits: true, maxContext: 131072,
			summary: []string{"CPU only: will run slowly (no usable GPU: MIG slice 1g.10gb: 9.5 GB usable < 15.0 GB needed at 4096 tokens; and 1 more): "},
			reasons: []string{"GPU 0 (NVIDIA A100-SXM4-80GB): MIG mode is on; only its MIG slices can run a model",
				"MIG slice 1g.10gb: 9.5 GB usable < 15.0 GB needed at 4096 tokens"}},
		{name: "pascal/20b", model: "20b", m: scripted(64*planGiB, devGTX1080Ti), engine: "cpu", gpu: -1, fits: true, maxContext: 131072,
			summary: []string{"CPU only: will run slowly (no usable GPU: GPU 0 (NVIDIA GeForce GTX 1080 Ti): compute capability 6.1 < 8.0 required by the CUDA kernels): "},
			reasons: []string{"GPU 0 (NVIDIA GeForce GTX 1080 Ti): compute capability 6.1 < 8.0 required by the CUDA kernels"}},
		{name: "no GPU, 64 GiB/20b", model: "20b", m: scripted(64 * planGiB), engine: "cpu", gpu: -1, fits: true, maxContext: 131072,
			summary: []string{"CPU only: will run slowly (no usable GPU: no NVIDIA driver (libnvidia-ml.so.1 not found)): 13.8 GB weights + 6.5 GB KV at 131072 tokens + 0.6 GB workspace = 20.9 GB of 64.4 GB RAM"},
			reasons: []string{"no NVIDIA GPU: no NVIDIA driver"}},
		{name: "no GPU, 64 GiB/120b", model: "120b", m: scripted(64 * planGiB), engine: "none", gpu: -1, maxContext: 0,
			summary: []string{"does not fit: needs 66.2 GB even at 4096 tokens, there is no usable GPU and 64.4 GB RAM is available — try 20b"}},
		{name: "no GPU, 64 GiB free/120b: shorter context", model: "120b", m: ramExact, engine: "cpu", gpu: -1, fits: false, maxContext: -1,
			summary: []string{"CPU only: will run slowly (no usable GPU: no NVIDIA GPU found), up to ", "not 131072", "> 68.7 GB RAM"}},
		{name: "no GPU, 8 GiB/20b", model: "20b", m: scripted(8 * planGiB), engine: "none", gpu: -1, maxContext: 0,
			summary: []string{"does not fit: needs 14.6 GB even at 4096 tokens, there is no usable GPU and 8.1 GB RAM is available"}},
		{name: "no GPU, 8 GiB/120b", model: "120b", m: scripted(8 * planGiB), engine: "none", gpu: -1, maxContext: 0,
			summary: []string{"— try 20b"}},
		{name: "mixed/120b", model: "120b", m: mixed, engine: "cuda", gpu: 1, fits: true, maxContext: 131072,
			summary: []string{"fits on GPU 1 (NVIDIA H100 80GB HBM3)"},
			reasons: []string{"GPU 0 (NVIDIA GeForce RTX 4090): 24.6 GB usable < 66.6 GB needed"}},
		{name: "mixed/20b: most free memory", model: "20b", m: mixed, engine: "cuda", gpu: 1, fits: true, maxContext: 131072,
			summary: []string{"fits on GPU 1 (NVIDIA H100 80GB HBM3)"}},
		{name: "mixed + 4080/20b: full context first", model: "20b", m: scripted(64*planGiB, devRTX4080, devRTX4090), engine: "cuda", gpu: 1, fits: true, maxContext: 131072},
		{name: "old driver/20b", model: "20b", m: oldDriver, engine: "cpu", gpu: -1, fits: true, maxContext: 131072,
			summary: []string{"(no usable GPU: driver CUDA 11.8 < 12.0 required)"},
			reasons: []string{"driver CUDA 11.8 < 12.0 required"}},
		{name: "no libcuda/20b", model: "20b", m: noCUDA, engine: "cpu", gpu: -1, fits: true, maxContext: 131072,
			summary: []string{"(no usable GPU: CUDA driver: cannot load: libcuda.so.1"},
			reasons: []string{"CUDA driver: cannot load: libcuda.so.1"}},
		{name: "no libcuda, no message/20b", model: "20b", m: noCUDA2, engine: "cpu", gpu: -1, fits: true, maxContext: 131072,
			reasons: []string{"no CUDA driver (libcuda.so.1 could not be loaded)"}},
		{name: "mig 3g.40gb/20b", model: "20b", m: scripted(64*planGiB, devA100MIG, devMIG1g, devMIG3g), engine: "cuda", gpu: 0, fits: true, maxContext: 131072,
			summary: []string{"fits on MIG slice 3g.40gb: "},
			reasons: []string{"MIG mode is on", "MIG slice 1g.10gb: 9.5 GB usable < 15.0 GB needed at 4096 tokens"}},
		{name: "query failed", model: "20b", m: broken, engine: "cpu", gpu: -1, fits: true, maxContext: 131072,
			reasons: []string{"GPU 0: compute capability unknown (nvmlDeviceGetHandleByIndex_v2: GPU is lost (NVML error 15))"}},
		{name: "UUID query failed: still usable", model: "20b", m: noUUID, engine: "cuda", gpu: 0, fits: true, maxContext: 131072},
		{name: "memory query failed", model: "20b", m: noMem, engine: "cpu", gpu: -1, fits: true, maxContext: 131072,
			reasons: []string{"GPU 0 (NVIDIA H100 80GB HBM3): memory size unknown (nvmlDeviceGetMemoryInfo: Unknown Error)"}},
		{name: "old driver and an old GPU", model: "20b", m: oldAll, engine: "cpu", gpu: -1, fits: true, maxContext: 131072,
			summary: []string{"(no usable GPU: driver CUDA 10.1 < 12.0 required; and 1 more)"},
			reasons: []string{"driver CUDA 10.1 < 12.0 required", "GPU 0 (NVIDIA GeForce GTX 1080 Ti): compute capability 6.1 < 8.0"}},
		{name: "2× A100 40GB/120b: one GPU only", model: "120b", m: scripted(32*planGiB, devA100x40, devA100x40), engine: "none", gpu: -1, maxContext: 0,
			summary: []string{"the largest usable GPU has 41.4 GB"},
			reasons: []string{"the 2 usable GPUs together have 82.8 GB, but a model runs on one GPU only for now"}},
		{name: "context above the maximum is capped", model: "20b", m: scripted(256*planGiB, devH100), context: 1 << 20, engine: "cuda", gpu: 0, fits: true, maxContext: 131072,
			summary: []string{"at 131072 tokens"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustSpec(t, c.model)
			p := PlanFit(s, c.m, c.context)
			if p.Engine != c.engine || p.GPU != c.gpu || p.Fits != c.fits {
				t.Errorf("engine %s gpu %d fits %v, want %s %d %v\n%s", p.Engine, p.GPU, p.Fits, c.engine, c.gpu, c.fits, p.Summary)
			}
			want := c.maxContext
			if want == -1 {
				work := int64(GPUWorkspace)
				if p.Engine == EngineCPU {
					work = CPUWorkspace
				}
				want = closedFormMax(s, p.Have-s.WeightsBytes-work-s.Activations(), p.Engine == EngineCPU)
				if want <= MinContext || want >= s.MaxContext {
					t.Fatalf("case does not exercise a shorter context: %d", want)
				}
			}
			if p.MaxContext != want {
				t.Errorf("max context %d, want %d", p.MaxContext, want)
			}
			if p.Engine != EngineNone && p.MaxContext > 0 {
				// The maximum fits and one more step does not.
				work, kv := p.Workspace, s.KVBytes
				if p.Engine == EngineCPU {
					kv = s.CPUKVBytes
				}
				if s.WeightsBytes+kv(p.MaxContext)+work > p.Have {
					t.Errorf("max context %d does not fit", p.MaxContext)
				}
				if p.MaxContext < s.MaxContext && s.WeightsBytes+kv(p.MaxContext+ContextStep)+work <= p.Have {
					t.Errorf("max context %d: %d would fit too", p.MaxContext, p.MaxContext+ContextStep)
				}
			}
			if p.Need != p.Weights+p.KV+p.Workspace || p.Fits != (p.Need <= p.Have) && p.Engine != EngineNone {
				t.Errorf("need %d = %d + %d + %d, have %d, fits %v", p.Need, p.Weights, p.KV, p.Workspace, p.Have, p.Fits)
			}
			for _, w := range c.summary {
				if !strings.Contains(p.Summary, w) {
					t.Errorf("summary %q\nlacks %q", p.Summary, w)
				}
			}
			for _, w := range c.reasons {
				found := false
				for _, r := range p.Reasons {
					found = found || strings.Contains(r, w)
				}
				if !found {
					t.Errorf("reasons %q\nlack %q", p.Reasons, w)
				}
			}
			if strings.Contains(p.Summary, "try 20b") != (c.model == "120b" && c.engine == "none") {
				t.Errorf("summary %q: 'try 20b' only when 120b does not fit", p.Summary)
			}
			if len(p.Options) != len(c.m.GPUs)+1 || p.Options[len(p.Options)-1].Device != "CPU" {
				t.Errorf("options: %+v", p.Options)
			}
		})
	}
}

func TestPlanFitReasonsOnlyForUnusableGPUs(t *testing.T) {
	// Both GPUs can run 20b; GPU 0 is not chosen but needs no excuse.
	p := PlanFit(mustSpec(t, "20b"), scripted(64*planGiB, devRTX4090, devH100), 0)
	if len(p.Reasons) != 0 {
		t.Errorf("reasons: %q", p.Reasons)
	}
	if !p.Options[0].Fits || !p.Options[0].Usable || p.Options[0].MaxContext != 131072 {
		t.Errorf("option 0: %+v", p.Options[0])
	}
	// A MIG slice shares its GPU's index: the UUID says which device.
	p = PlanFit(mustSpec(t, "20b"), scripted(64*planGiB, devA100MIG, devMIG1g, devMIG3g), 0)
	if p.GPU != 0 || p.UUID != "GPU-2" {
		t.Errorf("MIG slice: gpu %d uuid %q", p.GPU, p.UUID)
	}
	// nil machine: no GPU, no RAM.
	p = PlanFit(mustSpec(t, "20b"), nil, 0)
	if p.Engine != EngineNone || !strings.Contains(p.Reasons[0], "no NVIDIA GPU found") {
		t.Errorf("nil scripted: %+v", p)
	}
}

func TestPlanJSON(t *testing.T) {
	p := PlanFit(mustSpec(t, "20b"), scripted(256*planGiB, devH100), 0)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	json.Unmarshal(b, &back)
	for _, k := range []string{"model", "context", "engine", "gpu", "fits", "weights", "kv", "workspace", "need", "have", "maxContext", "summary", "options"} {
		if _, ok := back[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
}

func TestGB(t *testing.T) {
	for n, want := range map[int64]string{13_761_264_768: "13.8 GB", 0: "0.0 GB", 85_520_809_984: "85.5 GB"} {
		if got := GB(n); got != want {
			t.Errorf("GB(%d) = %q, want %q", n, got, want)
		}
	}
}
