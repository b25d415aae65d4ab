//go:build linux && (amd64 || arm64)

package hw

import (
	"fmt"
	"strings"
)

// NVML return codes Detect treats specially (nvml.h, nvmlReturn_t).
const (
	nvmlErrorNotSupported = 3
	nvmlErrorNotFound     = 6
	nvmlMissing           = -1 // not an NVML code: the function is not in the library
)

// nvmlDeviceMIGEnable is NVML_DEVICE_MIG_ENABLE, a MIG mode.
const nvmlDeviceMIGEnable = 1

// Buffer sizes from nvml.h (NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE,
// NVML_DEVICE_NAME_V2_BUFFER_SIZE, NVML_DEVICE_UUID_V2_BUFFER_SIZE).
const (
	nvmlDriverVersionSize = 80
	nvmlNameSize          = 96
	nvmlUUIDSize          = 96
)

// nvmlErrorNames names common NVML codes for a library without a working
// nvmlErrorString.
var nvmlErrorNames = map[int32]string{
	1: "Uninitialized", 2: "Invalid Argument", 3: "Not Supported",
	4: "Insufficient Permissions", 6: "Not Found", 7: "Insufficient Size",
	9: "Driver Not Loaded", 10: "Timeout", 15: "GPU is lost",
	18: "RM has detected an NVML/RM version mismatch", 999: "Unknown Error",
}

// nvmlMemory is nvmlMemory_t (version 1): bytes.
type nvmlMemory struct {
	Total, Free, Used uint64
}

// nvml holds the NVML entry points Detect uses, bound from the library; a
// nil field is a function the library lacks. nvmlDevice_t handles are
// opaque pointers, carried as uintptr; nvmlReturn_t is a C enum (int32).
type nvml struct {
	lib *library

	errorString      func(r int32) string
	initV2           func() int32
	shutdown         func() int32
	driverVersion    func(buf []byte, n uint32) int32
	count            func(n *uint32) int32
	handleByIndex    func(i uint32, dev *uintptr) int32
	name             func(dev uintptr, buf []byte, n uint32) int32
	uuid             func(dev uintptr, buf []byte, n uint32) int32
	computeCap       func(dev uintptr, major, minor *int32) int32
	memoryInfo       func(dev uintptr, mem *nvmlMemory) int32
	maxPCIeGen       func(dev uintptr, gen *uint32) int32
	currPCIeGen      func(dev uintptr, gen *uint32) int32
	currPCIeWidth    func(dev uintptr, width *uint32) int32
	migMode          func(dev uintptr, current, pending *uint32) int32
	maxMIGCount      func(dev uintptr, n *uint32) int32
	migHandleByIndex func(dev uintptr, i uint32, mig *uintptr) int32
}

func bindNVML(lib *library) *nvml {
	n := &nvml{lib: lib}
	lib.bind(map[string]any{
		"nvmlErrorString":                     &n.errorString,
		"nvmlInit_v2":                         &n.initV2,
		"nvmlShutdown":                        &n.shutdown,
		"nvmlSystemGetDriverVersion":          &n.driverVersion,
		"nvmlDeviceGetCount_v2":               &n.count,
		"nvmlDeviceGetHandleByIndex_v2":       &n.handleByIndex,
		"nvmlDeviceGetName":                   &n.name,
		"nvmlDeviceGetUUID":                   &n.uuid,
		"nvmlDeviceGetCudaComputeCapability":  &n.computeCap,
		"nvmlDeviceGetMemoryInfo":             &n.memoryInfo,
		"nvmlDeviceGetMaxPcieLinkGeneration":  &n.maxPCIeGen,
		"nvmlDeviceGetCurrPcieLinkGeneration": &n.currPCIeGen,
		"nvmlDeviceGetCurrPcieLinkWidth":      &n.currPCIeWidth,
		"nvmlDeviceGetMigMode":                &n.migMode,
		"nvmlDeviceGetMaxMigDeviceCount":      &n.maxMIGCount,
		"nvmlDeviceGetMigDeviceHandleByIndex": &n.migHandleByIndex,
	})
	return n
}

// nvmlError is a failed NVML call.
type nvmlError struct {
	fn   string
	code int32 // the nvmlReturn_t, or nvmlMissing
	text string
}

func (e *nvmlError) Error() string { return e.fn + ": " + e.text }

// call runs f, which calls the NVML function fn; bound says whether the
// library has fn. It returns nil on NVML_SUCCESS.
func (n *nvml) call(fn string, bound bool, f func() int32) *nvmlError {
	if !bound {
		return &nvmlError{fn: fn, code: nvmlMissing, text: "not in " + n.lib.name}
	}
	if r := f(); r != 0 {
		return &nvmlError{fn: fn, code: r, text: n.describe(r)}
	}
	return nil
}

// describe turns an NVML return code into "<nvmlErrorString> (NVML error N)".
func (n *nvml) describe(r int32) string {
	var s string
	if n.errorString != nil {
		s = n.errorString(r)
	}
	if s == "" {
		s = nvmlErrorNames[r]
	}
	if s == "" {
		s = "unknown error"
	}
	return fmt.Sprintf("%s (NVML error %d)", s, r)
}

// detectNVML fills m.GPUs, m.DriverVersion and, when there is no GPU list,
// m.GPUError from the NVML library lib.
func detectNVML(lib string, m *Machine) {
	l, missing, err := openLibrary(lib)
	if err != nil {
		if missing {
			m.GPUError = "no NVIDIA driver: " + lib + " not found"
		} else {
			m.GPUError = "cannot load NVML: " + err.Error()
		}
		return
	}
	n := bindNVML(l)
	if e := n.call("nvmlInit_v2", n.initV2 != nil, n.initV2); e != nil {
		if e.code == nvmlMissing {
			m.GPUError = "not an NVML library: " + e.Error()
		} else {
			m.GPUError = "NVML init failed: " + e.text
		}
		return
	}
	if n.shutdown != nil {
		defer n.shutdown()
	}

	buf := make([]byte, nvmlDriverVersionSize)
	if n.call("nvmlSystemGetDriverVersion", n.driverVersion != nil, func() int32 {
		return n.driverVersion(buf, uint32(len(buf)))
	}) == nil {
		m.DriverVersion = cString(buf)
	}

	var count uint32
	if e := n.call("nvmlDeviceGetCount_v2", n.count != nil, func() int32 { return n.count(&count) }); e != nil {
		m.GPUError = e.Error()
		return
	}
	if count == 0 {
		m.GPUError = "NVML found no GPUs"
		return
	}
	for i := range count {
		var h uintptr
		if e := n.call("nvmlDeviceGetHandleByIndex_v2", n.handleByIndex != nil, func() int32 {
			return n.handleByIndex(i, &h)
		}); e != nil {
			m.GPUs = append(m.GPUs, GPU{Index: int(i), Error: e.Error()})
			continue
		}
		m.GPUs = append(m.GPUs, n.physical(int(i), h)...)
	}
}

// physical describes the GPU at index i with handle h, followed by its MIG
// instances when MIG is enabled.
func (n *nvml) physical(i int, h uintptr) []GPU {
	g := GPU{Index: i}
	errs := n.identify(h, &g, false)
	errs = append(errs, n.pcie(h, &g)...)

	var slices []GPU
	current, pending := uint32(0), uint32(0)
	e := n.call("nvmlDeviceGetMigMode", n.migMode != nil, func() int32 { return n.migMode(h, &current, &pending) })
	switch {
	case e == nil && current == nvmlDeviceMIGEnable:
		g.MIGEnabled = true
		var migErrs []string
		slices, migErrs = n.migInstances(h, g)
		errs = append(errs, migErrs...)
	case e == nil, e.code == nvmlErrorNotSupported, e.code == nvmlMissing:
		// Not MIG-capable, MIG off, or a driver older than MIG (R450).
	default:
		errs = append(errs, e.Error())
	}
	g.Error = strings.Join(errs, "; ")
	return append([]GPU{g}, slices...)
}

// migInstances lists the MIG instances of the MIG-enabled GPU parent (handle
// h). Empty MIG slots are skipped.
func (n *nvml) migInstances(h uintptr, parent GPU) (gpus []GPU, errs []string) {
	var slots uint32
	if e := n.call("nvmlDeviceGetMaxMigDeviceCount", n.maxMIGCount != nil, func() int32 {
		return n.maxMIGCount(h, &slots)
	}); e != nil {
		return nil, []string{e.Error()}
	}
	for slot := range slots {
		var mh uintptr
		e := n.call("nvmlDeviceGetMigDeviceHandleByIndex", n.migHandleByIndex != nil, func() int32 {
			return n.migHandleByIndex(h, slot, &mh)
		})
		if e != nil {
			if e.code != nvmlErrorNotFound {
				errs = append(errs, fmt.Sprintf("MIG slot %d: %v", slot, e))
			}
			continue
		}
		s := GPU{
			Index:        parent.Index,
			ComputeMajor: parent.ComputeMajor,
			ComputeMinor: parent.ComputeMinor,
			PCIeGen:      parent.PCIeGen,
			PCIeWidth:    parent.PCIeWidth,
			MIGEnabled:   true,
			MIGInstance:  true,
		}
		s.Error = strings.Join(n.identify(mh, &s, true), "; ")
		gpus = append(gpus, s)
	}
	return gpus, errs
}

// identify fills g's name, UUID, memory and compute capability from the
// device (or MIG instance) h, and returns what failed. For a MIG instance
// the compute capability falls back silently to the parent's, already in g.
func (n *nvml) identify(h uintptr, g *GPU, mig bool) (errs []string) {
	note := func(e *nvmlError) {
		if e != nil {
			errs = append(errs, e.Error())
		}
	}
	name := make([]byte, nvmlNameSize)
	e := n.call("nvmlDeviceGetName", n.name != nil, func() int32 { return n.name(h, name, uint32(len(name))) })
	if e == nil {
		g.Name = cString(name)
	}
	note(e)

	uuid := make([]byte, nvmlUUIDSize)
	e = n.call("nvmlDeviceGetUUID", n.uuid != nil, func() int32 { return n.uuid(h, uuid, uint32(len(uuid))) })
	if e == nil {
		g.UUID = cString(uuid)
	}
	note(e)

	var mem nvmlMemory
	e = n.call("nvmlDeviceGetMemoryInfo", n.memoryInfo != nil, func() int32 { return n.memoryInfo(h, &mem) })
	if e == nil {
		g.MemoryTotal, g.MemoryFree = clampInt64(mem.Total), clampInt64(mem.Free)
	}
	note(e)

	var major, minor int32
	e = n.call("nvmlDeviceGetCudaComputeCapability", n.computeCap != nil, func() int32 {
		return n.computeCap(h, &major, &minor)
	})
	if e == nil {
		g.ComputeMajor, g.ComputeMinor = int(major), int(minor)
	} else if !mig {
		note(e)
	}
	return errs
}

// pcie fills g's PCIe link generation (the most the device and system
// support; the current generation drops while the GPU idles) and width.
func (n *nvml) pcie(h uintptr, g *GPU) (errs []string) {
	note := func(e *nvmlError) {
		if e != nil && e.code != nvmlErrorNotSupported {
			errs = append(errs, e.Error())
		}
	}
	var gen uint32
	e := n.call("nvmlDeviceGetMaxPcieLinkGeneration", n.maxPCIeGen != nil, func() int32 { return n.maxPCIeGen(h, &gen) })
	if e != nil {
		e = n.call("nvmlDeviceGetCurrPcieLinkGeneration", n.currPCIeGen != nil, func() int32 { return n.currPCIeGen(h, &gen) })
	}
	if e == nil {
		g.PCIeGen = int(gen)
	}
	note(e)

	var width uint32
	e = n.call("nvmlDeviceGetCurrPcieLinkWidth", n.currPCIeWidth != nil, func() int32 { return n.currPCIeWidth(h, &width) })
	if e == nil {
		g.PCIeWidth = int(width)
	}
	note(e)
	return errs
}

// cString returns buf up to its first NUL.
func cString(buf []byte) string {
	for i, b := range buf {
		if b == 0 {
			return string(buf[:i])
		}
	}
	return string(buf)
}

func clampInt64(v uint64) int64 {
	if v > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(v)
}
