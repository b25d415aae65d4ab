package gpustub

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuild(t *testing.T) {
	for _, scenario := range Scenarios {
		t.Run(scenario, func(t *testing.T) {
			t.Parallel()
			libDir := Require(t, scenario)
			if !filepath.IsAbs(libDir) {
				t.Errorf("libDir %q is not absolute", libDir)
			}
			for _, name := range []string{NVMLName, CUDAName} {
				_, err := os.Stat(filepath.Join(libDir, name))
				if want := name == NVMLName || scenario != "nolibcuda"; (err == nil) != want {
					t.Errorf("%s: built %v, want %v", name, err == nil, want)
				}
			}
			if nm, err := exec.LookPath("nm"); err == nil {
				out, err := exec.Command(nm, "-D", "--defined-only", filepath.Join(libDir, NVMLName)).Output()
				if err != nil {
					t.Fatal(err)
				}
				for _, sym := range []string{"nvmlInit_v2", "nvmlShutdown", "nvmlDeviceGetMemoryInfo", "nvmlErrorString", "gpustub_nvml_init_count"} {
					if !strings.Contains(string(out), " T "+sym+"\n") {
						t.Errorf("%s does not export %s", NVMLName, sym)
					}
				}
				if cc := strings.Contains(string(out), " T nvmlDeviceGetCudaComputeCapability\n"); cc == (scenario == "partial") {
					t.Errorf("exports nvmlDeviceGetCudaComputeCapability: %v", cc)
				}
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	if _, err := Build(t.TempDir(), "h200"); err == nil || !strings.Contains(err.Error(), `unknown scenario "h200"`) {
		t.Errorf("unknown scenario: %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	if Available() {
		t.Fatal("Available with an empty PATH")
	}
	if _, err := Build(t.TempDir(), "h100"); err == nil {
		t.Error("Build without gcc succeeded")
	}
}

func TestEnv(t *testing.T) {
	got := strings.Join(Env("/stubs"), " ")
	if want := "GPTOSS_NVML_LIB=/stubs/libnvidia-ml.so.1 GPTOSS_CUDA_LIB=/stubs/libcuda.so.1"; got != want {
		t.Errorf("Env = %q, want %q", got, want)
	}
}
