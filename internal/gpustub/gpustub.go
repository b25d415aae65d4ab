// Package gpustub builds stand-in NVIDIA driver libraries for tests: a
// libnvidia-ml.so.1 (NVML) and a libcuda.so.1 (CUDA driver API) compiled
// with gcc from C source embedded in this package, exporting the entry
// points runtime/hw calls and answering with the scripted devices of a
// scenario. Tests point runtime/hw at them (hw.Options NVMLLib/CUDALib, or
// the GPTOSS_NVML_LIB / GPTOSS_CUDA_LIB environment variables for a gptoss
// subprocess), so the real dynamic-loading path runs on machines without a
// GPU.
//
// Scenarios (the one to build is chosen at compile time, so libraries built
// into different directories are independent and may be loaded side by side
// in one process):
//
//	h100       one NVIDIA H100 80GB HBM3: cc 9.0, 81559 MiB, PCIe gen5 x16
//	           (link currently trained down to gen1, as when idle);
//	           driver 550.54.15, CUDA 12040
//	rtx4090    one NVIDIA GeForce RTX 4090: cc 8.9, 24564 MiB, PCIe gen4 x16
//	mig        an NVIDIA A100-SXM4-80GB (cc 8.0, 81920 MiB) in MIG mode with
//	           one 1g.10gb slice (9728 MiB) in MIG slot 3; driver 535.154.05,
//	           CUDA 12020
//	pascal     NVIDIA GeForce GTX 1080 Ti: cc 6.1, 11264 MiB, PCIe gen3 x16
//	mixed      the h100 (index 0) and the rtx4090 (index 1)
//	failing    nvmlInit_v2 answers NVML_ERROR_DRIVER_NOT_LOADED and cuInit
//	           CUDA_ERROR_NO_DEVICE (the kernel module is not loaded)
//	nolibcuda  the h100's NVML, and no libcuda.so.1 at all
//	partial    an old, half-broken driver: a Tesla T4 whose UUID query fails,
//	           no nvmlDeviceGetCudaComputeCapability and no MIG entry points
//	           in the library, and a second GPU whose handle query answers
//	           NVML_ERROR_GPU_IS_LOST
//
// The libraries also export gpustub_nvml_init_count and
// gpustub_cuda_init_count (int(void)): the number of nvmlInit_v2 calls not
// yet matched by nvmlShutdown, and of successful cuInit calls.
package gpustub

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/internal/testproc"
)

// Library file names, as the dynamic loader knows them.
const (
	NVMLName = "libnvidia-ml.so.1"
	CUDAName = "libcuda.so.1"
)

// Scenarios lists the scenario names Build accepts.
var Scenarios = []string{"h100", "rtx4090", "mig", "pascal", "mixed", "failing", "nolibcuda", "partial"}

var (
	//go:embed csrc/nvml_stub.c
	nvmlSource []byte
	//go:embed csrc/cuda_stub.c
	cudaSource []byte
)

// Available reports whether Build can work here: gcc is on PATH.
func Available() bool {
	_, err := exec.LookPath("gcc")
	return err == nil
}

// Build compiles the scenario's libnvidia-ml.so.1 and (except for
// "nolibcuda") libcuda.so.1 into dir, creating dir if needed, and returns
// dir as an absolute path. It needs gcc (see Available).
func Build(dir, scenario string) (libDir string, err error) {
	if !slices.Contains(Scenarios, scenario) {
		return "", fmt.Errorf("gpustub: unknown scenario %q (have %s)", scenario, strings.Join(Scenarios, ", "))
	}
	if !Available() {
		return "", errors.New("gpustub: gcc not found on PATH")
	}
	libDir, err = filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(libDir, 0o755); err != nil {
		return "", err
	}
	define := "-DSCENARIO_" + strings.ToUpper(scenario)
	if err := compile(nvmlSource, define, filepath.Join(libDir, NVMLName)); err != nil {
		return "", err
	}
	if scenario != "nolibcuda" {
		if err := compile(cudaSource, define, filepath.Join(libDir, CUDAName)); err != nil {
			return "", err
		}
	}
	return libDir, nil
}

// compile builds one shared library from C source read on stdin. The
// libraries get no DT_SONAME on purpose: glibc would otherwise hand a loaded
// stub to a later dlopen("libnvidia-ml.so.1") in the same process.
func compile(src []byte, define, out string) error {
	cmd := exec.Command("gcc", "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", define, "-o", out, "-x", "c", "-")
	cmd.Stdin = bytes.NewReader(src)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("gpustub: gcc %s -o %s: %v\n%s", define, out, err, stderr.Bytes())
	}
	return nil
}

// Env returns the environment entries that point a gptoss process at the
// libraries in libDir.
func Env(libDir string) []string {
	return []string{
		"GPTOSS_NVML_LIB=" + filepath.Join(libDir, NVMLName),
		"GPTOSS_CUDA_LIB=" + filepath.Join(libDir, CUDAName),
	}
}

// Require builds the scenario into a fresh t.TempDir and returns the
// library directory. Without gcc it skips the test, or fails it when the
// environment has CI=true, so a CI run cannot pass by skipping.
func Require(tb testing.TB, scenario string) (libDir string) {
	tb.Helper()
	if !Available() {
		testproc.Missing(tb, "gpustub: gcc not found on PATH")
	}
	libDir, err := Build(tb.TempDir(), scenario)
	if err != nil {
		tb.Fatal(err)
	}
	return libDir
}
