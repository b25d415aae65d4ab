package hw

import (
	"fmt"
	"os"
)

// Environment variables naming the NVIDIA libraries to load, when Options
// leaves them empty. Tests point them at stand-ins (internal/gpustub).
const (
	EnvNVMLLib = "GPTOSS_NVML_LIB"
	EnvCUDALib = "GPTOSS_CUDA_LIB"
)

// The libraries' sonames, looked up through the dynamic loader by default.
const (
	DefaultNVMLLib = "libnvidia-ml.so.1"
	DefaultCUDALib = "libcuda.so.1"
)

// Options says where Detect looks. The zero value looks at this machine.
type Options struct {
	// DiskPath is the directory whose filesystem Disk describes (the model
	// cache). It need not exist yet: Detect measures its nearest existing
	// parent. Empty: Disk is left zero.
	DiskPath string
	// NVMLLib and CUDALib are the NVML and CUDA driver libraries to load: a
	// path, or a name for the dynamic loader to search. Empty: the
	// environment variables GPTOSS_NVML_LIB / GPTOSS_CUDA_LIB, else
	// libnvidia-ml.so.1 / libcuda.so.1.
	NVMLLib, CUDALib string
	// ProcRoot is where procfs is mounted ("/proc" when empty).
	ProcRoot string
	// CgroupRoot is where the cgroup filesystem is mounted ("/sys/fs/cgroup"
	// when empty).
	CgroupRoot string
}

func (o Options) withDefaults() Options {
	if o.NVMLLib == "" {
		o.NVMLLib = os.Getenv(EnvNVMLLib)
	}
	if o.NVMLLib == "" {
		o.NVMLLib = DefaultNVMLLib
	}
	if o.CUDALib == "" {
		o.CUDALib = os.Getenv(EnvCUDALib)
	}
	if o.CUDALib == "" {
		o.CUDALib = DefaultCUDALib
	}
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.CgroupRoot == "" {
		o.CgroupRoot = "/sys/fs/cgroup"
	}
	return o
}

// Detect reports the machine's GPUs, CPU, memory and disk. It never fails
// and never panics: what it cannot find is left zero, and why the GPU list
// is empty (no driver, an NVML error) is in Machine.GPUError; a failed query
// of one device is in that GPU's Error.
//
// GPUs come from NVML (libnvidia-ml.so.1) and the CUDA driver version
// from libcuda.so.1, both loaded at run time without cgo, so a gptoss built
// with CGO_ENABLED=0 runs on machines without an NVIDIA driver.
// CUDADriverVersion is 0 when libcuda is absent or cuInit fails; when NVML
// lists GPUs but a present CUDA driver fails to load or start, GPUError
// says why. A MIG-enabled GPU is listed with MIGEnabled, followed by one
// entry per MIG instance (MIGInstance set, the parent's Index, the
// instance's own name, UUID and memory). Detect does not unload the
// libraries: a process that ran cuInit has driver threads running code of
// libcuda.
func Detect(o Options) *Machine {
	o = o.withDefaults()
	m := &Machine{}
	guard(func() { detectGPUs(o, m) }, func(msg string) {
		m.GPUs, m.GPUError = nil, "GPU detection failed: "+msg
	})
	guard(func() { m.CPU = detectCPU(o.ProcRoot) }, func(string) {})
	guard(func() { m.Memory = detectMemory(o.ProcRoot, o.CgroupRoot) }, func(string) {})
	if o.DiskPath != "" {
		guard(func() { m.Disk = detectDisk(o.DiskPath) }, func(string) {})
	}
	if m.GPUs == nil {
		m.GPUs = []GPU{} // "gpus": [] in JSON, not null
	}
	return m
}

// guard runs f and hands a panic's message to recovered: a probe of
// foreign code or odd files must not take the process down.
func guard(f func(), recovered func(msg string)) {
	defer func() {
		if p := recover(); p != nil {
			recovered(fmt.Sprint(p))
		}
	}()
	f()
}

// detectGPUs fills m's GPU fields from NVML and the CUDA driver. A CUDA
// driver problem goes to GPUError only when NVML listed GPUs: otherwise
// GPUError already says why there are none.
func detectGPUs(o Options, m *Machine) {
	detectNVML(o.NVMLLib, m)
	cudaErr := detectCUDA(o.CUDALib, m)
	if cudaErr != "" && m.GPUError == "" {
		m.GPUError = "CUDA driver: " + cudaErr
	}
}
