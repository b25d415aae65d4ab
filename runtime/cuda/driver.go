package cuda

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"unsafe"
)

// cuResult is a CUresult.
type cuResult int32

type (
	cuDevice    int32
	cuContext   uintptr
	cuModule    uintptr
	cuFunction  uintptr
	cuStream    uintptr
	cuEvent     uintptr
	cuGraph     uintptr
	cuGraphExec uintptr
	devPtr      uint64
)

// Device attributes (CUdevice_attribute).
const (
	attrMultiprocessors = 16
	attrCCMajor         = 75
	attrCCMinor         = 76
)

// driver holds the CUDA driver API functions this engine uses, bound from
// libcuda at run time (purego; versioned symbols named explicitly).
type driver struct {
	Init                   func(flags uint32) cuResult
	DriverGetVersion       func(v *int32) cuResult
	DeviceGetCount         func(n *int32) cuResult
	DeviceGet              func(d *cuDevice, ordinal int32) cuResult
	DeviceGetAttribute     func(v *int32, attr int32, d cuDevice) cuResult
	DeviceGetName          func(name *byte, n int32, d cuDevice) cuResult
	DevicePrimaryCtxRetain func(c *cuContext, d cuDevice) cuResult
	CtxSetCurrent          func(c cuContext) cuResult
	CtxSynchronize         func() cuResult
	MemGetInfo             func(free, total *uint64) cuResult
	MemAlloc               func(p *devPtr, size uint64) cuResult
	MemFree                func(p devPtr) cuResult
	MemAllocHost           func(p *unsafe.Pointer, size uint64) cuResult
	MemFreeHost            func(p unsafe.Pointer) cuResult
	MemcpyHtoDAsync        func(dst devPtr, src unsafe.Pointer, size uint64, s cuStream) cuResult
	MemcpyDtoHAsync        func(dst unsafe.Pointer, src devPtr, size uint64, s cuStream) cuResult
	MemcpyDtoDAsync        func(dst, src devPtr, size uint64, s cuStream) cuResult
	MemsetD8Async          func(dst devPtr, v uint8, n uint64, s cuStream) cuResult
	StreamCreate           func(s *cuStream, flags uint32) cuResult
	StreamDestroy          func(s cuStream) cuResult
	StreamSynchronize      func(s cuStream) cuResult
	StreamWaitEvent        func(s cuStream, e cuEvent, flags uint32) cuResult
	EventCreate            func(e *cuEvent, flags uint32) cuResult
	EventDestroy           func(e cuEvent) cuResult
	EventRecord            func(e cuEvent, s cuStream) cuResult
	EventSynchronize       func(e cuEvent) cuResult
	EventElapsedTime       func(ms *float32, start, end cuEvent) cuResult
	ModuleLoadData         func(m *cuModule, image unsafe.Pointer) cuResult
	ModuleGetFunction      func(f *cuFunction, m cuModule, name *byte) cuResult
	ModuleUnload           func(m cuModule) cuResult
	LaunchKernel           func(f cuFunction, gx, gy, gz, bx, by, bz, shmem uint32, s cuStream, params, extra unsafe.Pointer) cuResult
	StreamBeginCapture     func(s cuStream, mode int32) cuResult
	StreamEndCapture       func(s cuStream, g *cuGraph) cuResult
	GraphInstantiate       func(e *cuGraphExec, g cuGraph, flags uint64) cuResult
	GraphLaunch            func(e cuGraphExec, s cuStream) cuResult
	GraphExecDestroy       func(e cuGraphExec) cuResult
	GraphDestroy           func(g cuGraph) cuResult
	GetErrorName           func(r cuResult, s **byte) cuResult
	GetErrorString         func(r cuResult, s **byte) cuResult
	OccupancyMaxBlocks     func(n *int32, f cuFunction, blockSize int32, dynSmem uint64) cuResult

	// optional (nil when the driver lacks it): launches with attributes,
	// for programmatic dependent launch (CUDA 11.8+ drivers)
	LaunchKernelEx func(cfg unsafe.Pointer, f cuFunction, params, extra unsafe.Pointer) cuResult
	// kernel attributes: more than 48 KB of dynamic shared memory
	FuncSetAttribute func(f cuFunction, attr int32, value int32) cuResult
	// a module's global variable (the step trace's buffer pointer)
	ModuleGetGlobal func(p *devPtr, size *uint64, m cuModule, name *byte) cuResult
}

// CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
const funcAttrMaxDynamicSharedBytes = 8

// optionalSymbols are the driver functions the engine does without.
func (d *driver) optionalSymbols() map[string]any {
	return map[string]any{"cuLaunchKernelEx": &d.LaunchKernelEx, "cuFuncSetAttribute": &d.FuncSetAttribute,
		"cuModuleGetGlobal_v2": &d.ModuleGetGlobal}
}

// symbols maps each driver field to its libcuda symbol.
func (d *driver) symbols() map[string]any {
	return map[string]any{
		"cuInit": &d.Init, "cuDriverGetVersion": &d.DriverGetVersion,
		"cuDeviceGetCount": &d.DeviceGetCount, "cuDeviceGet": &d.DeviceGet,
		"cuDeviceGetAttribute": &d.DeviceGetAttribute, "cuDeviceGetName": &d.DeviceGetName,
		"cuDevicePrimaryCtxRetain": &d.DevicePrimaryCtxRetain, "cuCtxSetCurrent": &d.CtxSetCurrent,
		"cuCtxSynchronize": &d.CtxSynchronize, "cuMemGetInfo_v2": &d.MemGetInfo,
		"cuMemAlloc_v2": &d.MemAlloc, "cuMemFree_v2": &d.MemFree,
		"cuMemAllocHost_v2": &d.MemAllocHost, "cuMemFreeHost": &d.MemFreeHost,
		"cuMemcpyHtoDAsync_v2": &d.MemcpyHtoDAsync, "cuMemcpyDtoHAsync_v2": &d.MemcpyDtoHAsync,
		"cuMemcpyDtoDAsync_v2": &d.MemcpyDtoDAsync, "cuMemsetD8Async": &d.MemsetD8Async,
		"cuStreamCreate": &d.StreamCreate, "cuStreamDestroy_v2": &d.StreamDestroy,
		"cuStreamSynchronize": &d.StreamSynchronize, "cuStreamWaitEvent": &d.StreamWaitEvent,
		"cuEventCreate": &d.EventCreate, "cuEventDestroy_v2": &d.EventDestroy,
		"cuEventRecord": &d.EventRecord, "cuEventSynchronize": &d.EventSynchronize,
		"cuEventElapsedTime": &d.EventElapsedTime,
		"cuModuleLoadData":   &d.ModuleLoadData, "cuModuleGetFunction": &d.ModuleGetFunction,
		"cuModuleUnload": &d.ModuleUnload, "cuLaunchKernel": &d.LaunchKernel,
		"cuStreamBeginCapture_v2": &d.StreamBeginCapture, "cuStreamEndCapture": &d.StreamEndCapture,
		"cuGraphInstantiateWithFlags": &d.GraphInstantiate, "cuGraphLaunch": &d.GraphLaunch,
		"cuGraphExecDestroy": &d.GraphExecDestroy, "cuGraphDestroy": &d.GraphDestroy,
		"cuGetErrorName": &d.GetErrorName, "cuGetErrorString": &d.GetErrorString,
		"cuOccupancyMaxActiveBlocksPerMultiprocessor": &d.OccupancyMaxBlocks,
	}
}

var (
	drv     driver
	drvErr  error
	drvOnce sync.Once
)

// loadDriver binds libcuda (GPTOSS_CUDA_LIB or libcuda.so.1) and runs
// cuInit once; the error says why CUDA cannot be used.
func loadDriver() error {
	drvOnce.Do(func() {
		lib := os.Getenv("GPTOSS_CUDA_LIB")
		if lib == "" {
			lib = "libcuda.so.1"
		}
		syms, optional := drv.symbols(), drv.optionalSymbols()
		maps.Copy(syms, optional)
		missing, err := bindLibrary(lib, syms)
		if err != nil {
			drvErr = fmt.Errorf("no CUDA driver (%s): %v", lib, err)
			return
		}
		// an optional function the driver lacks stays nil
		missing = slices.DeleteFunc(missing, func(name string) bool { _, ok := optional[name]; return ok })
		if len(missing) > 0 {
			drvErr = fmt.Errorf("CUDA driver %s is too old: lacks %v", lib, missing)
			return
		}
		if r := drv.Init(0); r != 0 {
			drvErr = fmt.Errorf("cuInit: %v", r)
		}
	})
	return drvErr
}

func (r cuResult) Error() string {
	var name, desc *byte
	if drv.GetErrorName != nil && drv.GetErrorName(r, &name) == 0 && name != nil {
		s := cString(name)
		if drv.GetErrorString != nil && drv.GetErrorString(r, &desc) == 0 && desc != nil {
			s += ": " + cString(desc)
		}
		return fmt.Sprintf("%s (%d)", s, int32(r))
	}
	return fmt.Sprintf("CUDA error %d", int32(r))
}

// check turns a CUresult into an error naming the call.
func check(what string, r cuResult) error {
	if r == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w", what, r)
}

// cString copies the NUL-terminated C string at p.
func cString(p *byte) string {
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

func cStr(s string) *byte {
	b := append([]byte(s), 0)
	return &b[0]
}

var errNoKernels = errors.New("this gptoss was built without the CUDA kernels (build it with `make cuda build`)")
