package main

// End-to-end tests of `gptoss doctor` and the pull preflight, on the stand-in
// NVIDIA libraries of internal/gpustub (the real dynamic-loading path, no GPU
// needed). The RAM is this machine's: expectations that depend on it are
// derived from what doctor reports.

import (
	"bufio"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/internal/gpustub"
	"github.com/gptoss/gptoss/internal/hubtest"
	"github.com/gptoss/gptoss/runtime/hw"
)

type doctorReport struct {
	Machine hw.Machine `json:"machine"`
	Plans   []hw.Plan  `json:"plans"`
}

// gpuEnv is a test hub environment whose gptoss sees the scenario's GPUs.
func gpuEnv(t *testing.T, scenario string) *env {
	t.Helper()
	lib := gpustub.Require(t, scenario)
	e := newEnv(t, 1<<20, hubtest.Options{})
	e.extra = append(gpustub.Env(lib), "GPTOSS_FORCE=") // the fit check is what these tests are about
	return e
}

func (e *env) doctor(args ...string) doctorReport {
	e.t.Helper()
	r := e.mustRun(append([]string{"doctor", "--json"}, args...)...)
	var rep doctorReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		e.t.Fatalf("doctor --json: %v\n%s", err, r.stdout)
	}
	return rep
}

func (rep doctorReport) plan(t *testing.T, model string) hw.Plan {
	t.Helper()
	for _, p := range rep.Plans {
		if p.Model == model {
			return p
		}
	}
	t.Fatalf("no plan for %s in %+v", model, rep.Plans)
	return hw.Plan{}
}

func wantContains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s lacks %q:\n%s", what, sub, s)
		}
	}
}

func TestDoctorH100(t *testing.T) {
	e := gpuEnv(t, "h100")
	rep := e.doctor()
	if len(rep.Machine.GPUs) != 1 || rep.Machine.GPUs[0].Name != "NVIDIA H100 80GB HBM3" || rep.Machine.CUDADriverVersion != 12040 {
		t.Fatalf("machine: %+v", rep.Machine)
	}
	if len(rep.Plans) != 2 {
		t.Fatalf("plans: %+v", rep.Plans)
	}
	for _, model := range []string{"gpt-oss-20b", "gpt-oss-120b"} {
		p := rep.plan(t, model)
		if p.Engine != "cuda" || p.GPU != 0 || !p.Fits || p.MaxContext != 131072 {
			t.Errorf("%s: %+v", model, p)
		}
	}
	if rep.Machine.Disk.Total == 0 || rep.Machine.Memory.Total == 0 || rep.Machine.CPU.Threads == 0 {
		t.Errorf("machine: %+v", rep.Machine)
	}
	r := e.mustRun("doctor")
	wantContains(t, "doctor", r.stdout,
		"GPU 0: NVIDIA H100 80GB HBM3, compute capability 9.0, 85.5 GB", "PCIe gen5 x16",
		"Driver:  NVIDIA 550.54.15, CUDA 12.4", "CPU:", "AVX2", "AVX-512", "AMX", "RAM:", "available",
		"Disk:", "free of", e.home,
		"gpt-oss-20b: fits on GPU 0 (NVIDIA H100 80GB HBM3): 13.8 GB weights + 3.2 GB KV at 131072 tokens",
		"gpt-oss-120b: fits on GPU 0 (NVIDIA H100 80GB HBM3): 65.2 GB weights + 4.8 GB KV at 131072 tokens",
		"max context: 131072 tokens on GPU 0")
	// One model, a shorter context.
	rep = e.doctor("120b", "--context", "8192")
	if len(rep.Plans) != 1 || rep.Plans[0].Model != "gpt-oss-120b" || rep.Plans[0].Context != 8192 || rep.Plans[0].MaxContext != 131072 {
		t.Errorf("doctor 120b --context 8192: %+v", rep.Plans)
	}
	r = e.mustRun("doctor", "openai/gpt-oss-20b", "-q")
	if strings.TrimSpace(r.stdout) != "gpt-oss-20b: "+rep0(e).Summary || strings.Contains(r.stdout, "GPU 0:") {
		t.Errorf("doctor -q: %s", r.stdout)
	}
	// The preflight says where it would run, and lets the pull through.
	e.hub.AddRepo("openai/gpt-oss-120b", e.src)
	r = e.mustRun("pull", "120b", "--dry-run")
	wantContains(t, "pull 120b stderr", r.stderr, "gpt-oss-120b: fits on GPU 0 (NVIDIA H100 80GB HBM3)")
}

func rep0(e *env) hw.Plan { return e.doctor("20b").Plans[0] }

// withoutRAM cuts a plan summary before the RAM figure at its end, which
// moves between two doctor runs on a busy machine.
func withoutRAM(summary string) string {
	i := strings.LastIndex(summary, " GB RAM")
	if i < 0 {
		return summary
	}
	return summary[:strings.LastIndex(summary[:i], " ")]
}

func TestDoctorRTX4090AndPullPreflight(t *testing.T) {
	e := gpuEnv(t, "rtx4090")
	rep := e.doctor()
	p20, p120 := rep.plan(t, "gpt-oss-20b"), rep.plan(t, "gpt-oss-120b")
	if p20.Engine != "cuda" || p20.GPU != 0 || !p20.Fits || p20.MaxContext != 131072 {
		t.Errorf("20b: %+v", p20)
	}
	// 120b does not fit the 4090; the CPU takes it only with ≈66 GB of RAM.
	cpu := p120.Options[len(p120.Options)-1]
	if p120.Engine == "cuda" || cpu.Device != "CPU" || (p120.Engine == "none") != (cpu.MaxContext == 0) {
		t.Fatalf("120b: %+v", p120)
	}
	wantContains(t, "120b reasons", strings.Join(p120.Reasons, "\n"), "GPU 0 (NVIDIA GeForce RTX 4090): ", "GB usable <", "GB needed at 4096 tokens")
	r := e.mustRun("doctor")
	wantContains(t, "doctor", r.stdout, "gpt-oss-20b: fits on GPU 0 (NVIDIA GeForce RTX 4090)", "gpt-oss-120b: "+withoutRAM(p120.Summary),
		"not used: GPU 0 (NVIDIA GeForce RTX 4090)")

	e.hub.AddRepo("openai/gpt-oss-120b", e.src)
	r = e.mustRun("pull", "20b", "--dry-run")
	wantContains(t, "pull 20b stderr", r.stderr, "gpt-oss-20b: fits on GPU 0 (NVIDIA GeForce RTX 4090)")
	if r = e.mustRun("pull", "20b", "--dry-run", "-q"); strings.Contains(r.stderr, "fits") {
		t.Errorf("--quiet printed the verdict: %s", r.stderr)
	}
	if p120.Engine != "none" {
		t.Logf("this machine has %s of RAM available: 120b runs on the CPU, so the refusal is not exercised", hw.GB(cpu.Have))
		r = e.mustRun("pull", "120b", "--dry-run")
		wantContains(t, "pull 120b stderr", r.stderr, "gpt-oss-120b: CPU only: will run slowly")
		return
	}
	r = e.wantCode(exitNoFit, "pull", "120b", "--dry-run")
	wantContains(t, "refusal", r.stderr, "gpt-oss-120b would not run on this machine (does not fit: ", "try 20b", "use --force to download anyway")
	// --json: the verdict is an event.
	r = e.wantCode(exitNoFit, "pull", "120b", "--json")
	var ev map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(r.stdout, "\n", 2)[0]), &ev); err != nil || ev["event"] != "fit" || ev["engine"] != "none" || ev["model"] != "gpt-oss-120b" {
		t.Errorf("--json fit event: %v %s", err, r.stdout)
	}
	// --force passes the check (a dry run: nothing big moves).
	r = e.mustRun("pull", "120b", "--dry-run", "--force")
	wantContains(t, "forced dry run", r.stdout, "would download")
	wantContains(t, "forced dry run stderr", r.stderr, "gpt-oss-120b: does not fit")
	// Only the configs: no check.
	e.mustRun("pull", "120b", "--include", "*.json", "--dry-run")
	// Forced once (the fixture is small), a cached pull is not asked again.
	e.mustRun("pull", "120b", "--force")
	r = e.mustRun("pull", "120b")
	wantContains(t, "cached pull", r.stderr, "already in the cache")
	e.extra = append(e.extra, "GPTOSS_OFFLINE=1")
	e.mustRun("pull", "120b")
}

func TestPullPreflightJSONEvent(t *testing.T) {
	e := gpuEnv(t, "rtx4090")
	r := e.mustRun("pull", "20b", "--json")
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	var first map[string]any
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("not NDJSON: %q", sc.Text())
		}
		if first == nil {
			first = ev
		}
	}
	if first["event"] != "fit" || first["engine"] != "cuda" || first["fits"] != true || first["maxContext"] != float64(131072) ||
		!strings.HasPrefix(first["summary"].(string), "fits on GPU 0 (NVIDIA GeForce RTX 4090)") {
		t.Errorf("first event: %v", first)
	}
	if r.stderr != "" {
		t.Errorf("--json wrote to stderr: %s", r.stderr)
	}
}

func TestDoctorNoGPU(t *testing.T) {
	for _, c := range []struct {
		name     string
		scenario string // "" : the library is missing
		why      string
	}{
		{"driver not loaded", "failing", "NVML init failed"},
		{"no library", "", "libnvidia-ml.so.1 not found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var e *env
			if c.scenario != "" {
				e = gpuEnv(t, c.scenario)
			} else {
				e = newEnv(t, 1<<20, hubtest.Options{})
				missing := filepath.Join(t.TempDir(), "nowhere")
				e.extra = []string{"GPTOSS_NVML_LIB=" + filepath.Join(missing, "libnvidia-ml.so.1"), "GPTOSS_CUDA_LIB=" + filepath.Join(missing, "libcuda.so.1")}
			}
			r := e.mustRun("doctor")
			wantContains(t, "doctor", r.stdout, "GPUs:    no NVIDIA GPU (", c.why, "RAM:", "gpt-oss-20b: ", "gpt-oss-120b: ")
			if strings.Contains(r.stdout, "fits on GPU") {
				t.Errorf("a GPU verdict without a GPU:\n%s", r.stdout)
			}
			rep := e.doctor()
			if len(rep.Machine.GPUs) != 0 || !strings.Contains(rep.Machine.GPUError, c.why) {
				t.Errorf("machine: %+v", rep.Machine)
			}
			for _, p := range rep.Plans {
				if p.Engine == "cuda" || p.GPU != -1 {
					t.Errorf("%s: %+v", p.Model, p)
				}
				if p.Engine == "cpu" && !strings.HasPrefix(p.Summary, "CPU only: will run slowly (no usable GPU: ") {
					t.Errorf("%s: %s", p.Model, p.Summary)
				}
			}
		})
	}
}

func TestDoctorOldAndSlicedGPUs(t *testing.T) {
	e := gpuEnv(t, "pascal")
	rep := e.doctor("20b")
	p := rep.Plans[0]
	if p.Engine == "cuda" || len(p.Reasons) == 0 || !strings.Contains(p.Reasons[0], "compute capability 6.1 < 8.0 required by the CUDA kernels") {
		t.Errorf("pascal: %+v", p)
	}
	r := e.mustRun("doctor", "20b")
	wantContains(t, "doctor pascal", r.stdout, "compute capability 6.1", "not used: GPU 0 (NVIDIA GeForce GTX 1080 Ti): compute capability 6.1 < 8.0")

	e = gpuEnv(t, "mig")
	r = e.mustRun("doctor", "20b")
	wantContains(t, "doctor mig", r.stdout, "MIG mode on", "MIG slice of GPU 0: NVIDIA A100-SXM4-80GB MIG 1g.10gb",
		"not used: MIG slice 1g.10gb: ", "GB needed at 4096 tokens", "MIG mode is on; only its MIG slices can run a model")

	e = gpuEnv(t, "nolibcuda")
	r = e.mustRun("doctor", "20b")
	wantContains(t, "doctor nolibcuda", r.stdout, "GPU 0: NVIDIA H100", "Driver:  NVIDIA 550.54.15, no CUDA driver (", "libcuda.so.1",
		"gpt-oss-20b: CPU only: will run slowly (no usable GPU: ", "not used: ")

	e = gpuEnv(t, "mixed")
	rep = e.doctor()
	for _, p := range rep.Plans {
		if p.Engine != "cuda" || p.GPU != 0 || !strings.Contains(p.Summary, "H100") {
			t.Errorf("mixed %s: %+v", p.Model, p)
		}
	}
}

func TestDoctorArguments(t *testing.T) {
	e := gpuEnv(t, "h100")
	e.wantCode(exitUsage, "doctor", "--context", "-1")
	e.wantCode(exitUsage, "doctor", "20b", "120b")
	e.wantCode(exitNotFound, "doctor", "someone/unknown-model")
	// A cached model outside the catalog: sized from its config.json.
	if _, err := e.hub.AddRepo("someone/tiny-oss", e.src); err != nil {
		t.Fatal(err)
	}
	e.mustRun("pull", "someone/tiny-oss")
	rep := e.doctor("someone/tiny-oss")
	var shards int64
	for _, f := range e.repo.Files {
		if !strings.Contains(f.Path, "/") && strings.HasSuffix(f.Path, ".safetensors") {
			shards += f.Size
		}
	}
	p := rep.Plans[0]
	if p.Model != "someone/tiny-oss" || p.Engine != "cuda" || p.Weights != shards || p.Context != 131072 || p.KV != 2*2*16*2*(2*131072+2*4) {
		t.Errorf("cached model: %+v (weights want %d)", p, shards)
	}
}
