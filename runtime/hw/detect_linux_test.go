//go:build linux && (amd64 || arm64)

package hw

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ebitengine/purego"

	"github.com/gptoss/gptoss/internal/gpustub"
	"github.com/gptoss/gptoss/internal/testproc"
)

const mib = 1 << 20

var (
	wantH100 = GPU{
		Index: 0, Name: "NVIDIA H100 80GB HBM3", UUID: "GPU-3f4b1a52-6c1e-5e1d-9b53-2a0d5d3c7e01",
		ComputeMajor: 9, ComputeMinor: 0, MemoryTotal: 81559 * mib, MemoryFree: (81559 - 479) * mib,
		PCIeGen: 5, PCIeWidth: 16, // the maximum generation, not the idle link's gen1
	}
	wantRTX4090 = GPU{
		Index: 0, Name: "NVIDIA GeForce RTX 4090", UUID: "GPU-8a61f0c4-2e9b-7d3f-1c55-90ab4e6d2f17",
		ComputeMajor: 8, ComputeMinor: 9, MemoryTotal: 24564 * mib, MemoryFree: (24564 - 367) * mib,
		PCIeGen: 4, PCIeWidth: 16,
	}
)

// stubOptions points Detect at the stub libraries in libDir.
func stubOptions(libDir string) Options {
	return Options{
		NVMLLib: filepath.Join(libDir, gpustub.NVMLName),
		CUDALib: filepath.Join(libDir, gpustub.CUDAName),
	}
}

func TestDetectScenarios(t *testing.T) {
	second := wantRTX4090
	second.Index = 1
	tests := []struct {
		scenario string
		gpus     []GPU
		driver   string
		cuda     int
		gpuError string
	}{
		{"h100", []GPU{wantH100}, "550.54.15", 12040, ""},
		{"rtx4090", []GPU{wantRTX4090}, "550.54.15", 12040, ""},
		{"mixed", []GPU{wantH100, second}, "550.54.15", 12040, ""},
		{"pascal", []GPU{{
			Index: 0, Name: "NVIDIA GeForce GTX 1080 Ti", UUID: "GPU-0c3e5a71-9f28-4b6d-8e14-d5a2c7b90f63",
			ComputeMajor: 6, ComputeMinor: 1, MemoryTotal: 11 << 30, MemoryFree: (11264 - 171) * mib,
			PCIeGen: 3, PCIeWidth: 16,
		}}, "535.154.05", 12020, ""},
		{"mig", []GPU{{
			Index: 0, Name: "NVIDIA A100-SXM4-80GB", UUID: "GPU-b2d7e9a0-41c6-3f8e-a5d2-7c1e0f9b6a48",
			ComputeMajor: 8, ComputeMinor: 0, MemoryTotal: 81920 * mib, MemoryFree: (81920 - 9741) * mib,
			PCIeGen: 4, PCIeWidth: 16, MIGEnabled: true,
		}, {
			Index: 0, Name: "NVIDIA A100-SXM4-80GB MIG 1g.10gb", UUID: "MIG-5c89b1e2-7d40-5a3b-8f21-6e0c9d4a1b37",
			ComputeMajor: 8, ComputeMinor: 0, MemoryTotal: 9728 * mib, MemoryFree: (9728 - 13) * mib,
			PCIeGen: 4, PCIeWidth: 16, MIGEnabled: true, MIGInstance: true,
		}}, "535.154.05", 12020, ""},
		{"nolibcuda", []GPU{wantH100}, "550.54.15", 0, ""},
		{"failing", []GPU{}, "", 0, "NVML init failed: Driver Not Loaded (NVML error 9)"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			t.Parallel()
			libDir := gpustub.Require(t, tt.scenario)
			m := Detect(stubOptions(libDir))
			if !reflect.DeepEqual(m.GPUs, tt.gpus) {
				t.Errorf("GPUs:\n got %+v\nwant %+v", m.GPUs, tt.gpus)
			}
			if m.DriverVersion != tt.driver || m.CUDADriverVersion != tt.cuda || m.GPUError != tt.gpuError {
				t.Errorf("driver %q, CUDA %d, GPUError %q; want %q, %d, %q",
					m.DriverVersion, m.CUDADriverVersion, m.GPUError, tt.driver, tt.cuda, tt.gpuError)
			}
			if len(tt.gpus) > 0 {
				checkBalanced(t, libDir)
			}
		})
	}
}

// checkBalanced checks, through the stubs' counters, that Detect shut NVML
// down again and initialised the CUDA driver.
func checkBalanced(t *testing.T, libDir string) {
	t.Helper()
	counter := func(lib, sym string) (int32, bool) {
		h, err := purego.Dlopen(filepath.Join(libDir, lib), purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err != nil {
			return 0, false // not built (nolibcuda)
		}
		var count func() int32
		purego.RegisterLibFunc(&count, h, sym)
		return count(), true
	}
	if n, _ := counter(gpustub.NVMLName, "gpustub_nvml_init_count"); n != 0 {
		t.Errorf("NVML left initialised %d times: nvmlShutdown missing", n)
	}
	if n, ok := counter(gpustub.CUDAName, "gpustub_cuda_init_count"); ok && n < 1 {
		t.Errorf("cuInit never succeeded (%d)", n)
	}
}

// TestDetectPartialDriver: functions missing from the library and failing
// per-device queries end up in GPU.Error, and the rest is still reported.
func TestDetectPartialDriver(t *testing.T) {
	libDir := gpustub.Require(t, "partial")
	m := Detect(stubOptions(libDir))
	if m.GPUError != "" || m.DriverVersion != "418.226.00" || m.CUDADriverVersion != 10010 {
		t.Errorf("GPUError %q, driver %q, CUDA %d", m.GPUError, m.DriverVersion, m.CUDADriverVersion)
	}
	if len(m.GPUs) != 2 {
		t.Fatalf("GPUs: %+v", m.GPUs)
	}
	t4, lost := m.GPUs[0], m.GPUs[1]
	if t4.Name != "Tesla T4" || t4.MemoryTotal != 15109*mib || t4.UUID != "" || t4.ComputeMajor != 0 || t4.PCIeGen != 0 {
		t.Errorf("T4: %+v", t4)
	}
	for _, want := range []string{
		"nvmlDeviceGetUUID: Unknown Error (NVML error 999)",
		"nvmlDeviceGetCudaComputeCapability: not in " + filepath.Join(libDir, gpustub.NVMLName),
	} {
		if !strings.Contains(t4.Error, want) {
			t.Errorf("T4 error %q lacks %q", t4.Error, want)
		}
	}
	if strings.Contains(t4.Error, "Pcie") || strings.Contains(t4.Error, "Mig") {
		t.Errorf("T4 error %q reports unsupported PCIe queries or absent MIG functions", t4.Error)
	}
	if lost.Index != 1 || lost.Error != "nvmlDeviceGetHandleByIndex_v2: GPU is lost (NVML error 15)" {
		t.Errorf("lost GPU: %+v", lost)
	}
	checkBalanced(t, libDir)
}

func TestDetectNoDriver(t *testing.T) {
	t.Run("explicit path", func(t *testing.T) {
		lib := filepath.Join(t.TempDir(), "libnvidia-ml.so.1")
		m := Detect(Options{NVMLLib: lib, CUDALib: filepath.Join(t.TempDir(), "libcuda.so.1")})
		if want := "no NVIDIA driver: " + lib + " not found"; m.GPUError != want {
			t.Errorf("GPUError %q, want %q", m.GPUError, want)
		}
		if m.GPUs == nil || len(m.GPUs) != 0 || m.CUDADriverVersion != 0 || m.DriverVersion != "" {
			t.Errorf("%+v", m)
		}
	})
	t.Run("loader", func(t *testing.T) {
		if h, err := purego.Dlopen(DefaultNVMLLib, purego.RTLD_NOW|purego.RTLD_LOCAL); err == nil {
			purego.Dlclose(h)
			t.Skip("this machine has an NVIDIA driver")
		}
		t.Setenv(EnvNVMLLib, "")
		t.Setenv(EnvCUDALib, "")
		m := Detect(Options{})
		if want := "no NVIDIA driver: libnvidia-ml.so.1 not found"; m.GPUError != want {
			t.Errorf("GPUError %q, want %q", m.GPUError, want)
		}
		b, err := json.Marshal(m)
		if err != nil || !bytes.Contains(b, []byte(`"gpus":[]`)) {
			t.Errorf("JSON %s (%v): want an empty gpus list", b, err)
		}
	})
}

// TestDetectEnvironment: the environment names the libraries when Options
// does not, and Options wins over it.
func TestDetectEnvironment(t *testing.T) {
	libDir := gpustub.Require(t, "rtx4090")
	for _, e := range gpustub.Env(libDir) {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}
	if gpustub.Env("/x")[0] != EnvNVMLLib+"=/x/"+DefaultNVMLLib || gpustub.Env("/x")[1] != EnvCUDALib+"=/x/"+DefaultCUDALib {
		t.Fatalf("gpustub.Env %q disagrees with runtime/hw's names", gpustub.Env("/x"))
	}
	if m := Detect(Options{}); len(m.GPUs) != 1 || m.GPUs[0].Name != wantRTX4090.Name || m.CUDADriverVersion != 12040 {
		t.Errorf("from the environment: %+v", m)
	}
	missing := filepath.Join(t.TempDir(), "none.so")
	if m := Detect(Options{NVMLLib: missing}); !strings.Contains(m.GPUError, missing) {
		t.Errorf("Options.NVMLLib did not override the environment: %q", m.GPUError)
	}
}

// TestDetectBadLibraries: a library that is not NVML, a file that is not a
// library at all, a CUDA driver that cannot start.
func TestDetectBadLibraries(t *testing.T) {
	h100 := gpustub.Require(t, "h100")
	failing := gpustub.Require(t, "failing")

	cuda := filepath.Join(h100, gpustub.CUDAName)
	m := Detect(Options{NVMLLib: cuda, CUDALib: cuda})
	if want := "not an NVML library: nvmlInit_v2: not in " + cuda; m.GPUError != want {
		t.Errorf("GPUError %q, want %q", m.GPUError, want)
	}

	junk := filepath.Join(t.TempDir(), "libnvidia-ml.so.1")
	if err := os.WriteFile(junk, []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	m = Detect(Options{NVMLLib: junk, CUDALib: junk})
	if !strings.HasPrefix(m.GPUError, "cannot load NVML: ") || !strings.Contains(m.GPUError, junk) {
		t.Errorf("GPUError %q", m.GPUError)
	}

	// NVML sees the GPU, but cuInit fails: the GPU is listed, there is no
	// CUDA driver version, and the reason is in GPUError.
	m = Detect(Options{NVMLLib: filepath.Join(h100, gpustub.NVMLName), CUDALib: filepath.Join(failing, gpustub.CUDAName)})
	if len(m.GPUs) != 1 || m.CUDADriverVersion != 0 || m.GPUError != "CUDA driver: cuInit: CUDA_ERROR_NO_DEVICE (100)" {
		t.Errorf("%d GPUs, CUDA %d, GPUError %q", len(m.GPUs), m.CUDADriverVersion, m.GPUError)
	}
}

// TestDetectWithoutCgo builds a program calling Detect with CGO_ENABLED=0
// and runs it against the h100 stub through the environment, as gptoss
// doctor would run.
func TestDetectWithoutCgo(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		testproc.Missing(t, "go not on PATH")
	}
	libDir := gpustub.Require(t, "h100")
	bin := filepath.Join(t.TempDir(), "detectjson")
	build := exec.Command(goBin, "build", "-o", bin, "./testdata/detectjson")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	disk := filepath.Join(t.TempDir(), "not", "yet")
	run := exec.Command(bin, disk)
	run.Env = append(os.Environ(), gpustub.Env(libDir)...)
	out, err := run.Output()
	if err != nil {
		t.Fatalf("detectjson: %v\n%s", err, out)
	}
	var m Machine
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !reflect.DeepEqual(m.GPUs, []GPU{wantH100}) || m.CUDADriverVersion != 12040 || m.DriverVersion != "550.54.15" {
		t.Errorf("without cgo: %s", out)
	}
	if m.Disk.Path != disk || m.Disk.Free <= 0 || m.CPU.Threads <= 0 || m.Memory.Total <= 0 {
		t.Errorf("without cgo: %s", out)
	}
}
