// Package hw detects the hardware gptoss can run on (NVIDIA GPUs through
// NVML and the CUDA driver, loaded at run time without cgo; the CPU; memory
// with cgroup limits; disk) and plans how a model fits on it.
package hw

// Machine is what Detect found.
type Machine struct {
	GPUs     []GPU  `json:"gpus"`
	GPUError string `json:"gpuError,omitempty"` // why no GPU list: "no NVIDIA driver: libnvidia-ml.so.1 not found", an NVML error …
	// DriverVersion is NVML's driver version string; CUDADriverVersion the
	// CUDA driver API version (cuDriverGetVersion, e.g. 12040 = 12.4), 0 when
	// libcuda.so.1 is absent.
	DriverVersion     string `json:"driverVersion,omitempty"`
	CUDADriverVersion int    `json:"cudaDriverVersion,omitempty"`
	CPU               CPU    `json:"cpu"`
	Memory            Memory `json:"memory"`
	Disk              Disk   `json:"disk"`
}

// GPU is one NVIDIA device (or MIG instance).
type GPU struct {
	Index        int    `json:"index"`
	Name         string `json:"name"`
	UUID         string `json:"uuid"`
	ComputeMajor int    `json:"computeMajor"`
	ComputeMinor int    `json:"computeMinor"`
	MemoryTotal  int64  `json:"memoryTotal"` // bytes
	MemoryFree   int64  `json:"memoryFree"`  // bytes
	PCIeGen      int    `json:"pcieGen,omitempty"`
	PCIeWidth    int    `json:"pcieWidth,omitempty"`
	MIGEnabled   bool   `json:"migEnabled,omitempty"`
	MIGInstance  bool   `json:"migInstance,omitempty"` // this entry is a MIG slice of a physical GPU
	Error        string `json:"error,omitempty"`       // a per-device query failed
}

// CPU describes the processor.
type CPU struct {
	Model   string `json:"model"`
	Cores   int    `json:"cores"`   // physical cores
	Threads int    `json:"threads"` // logical CPUs usable by this process
	AVX2    bool   `json:"avx2"`
	AVX512  bool   `json:"avx512"` // AVX-512 F+BW+VL
	AMX     bool   `json:"amx"`    // AMX tiles with BF16
}

// Memory is system memory as this process can use it.
type Memory struct {
	Total       int64 `json:"total"`     // physical RAM, or the cgroup limit when lower
	Available   int64 `json:"available"` // MemAvailable, bounded by the cgroup's headroom
	CgroupLimit int64 `json:"cgroupLimit,omitempty"`
	CgroupUsage int64 `json:"cgroupUsage,omitempty"`
}

// Disk is the filesystem holding the cache.
type Disk struct {
	Path  string `json:"path"`
	Free  int64  `json:"free"`
	Total int64  `json:"total"`
}
