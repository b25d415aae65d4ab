package cuda

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
	"unsafe"
)

// The kernels, built by `make cuda` (nvcc) into fatbin/kernels.fatbin. The
// folder holds a README so that a build without nvcc still compiles.
//
//go:embed all:fatbin
var fatbinFS embed.FS

// GPTOSS_CUDA_KERNELS names a fatbin to load instead (a development
// build, or `make cuda-trace`'s kernels that record the step trace).
func kernelImage() ([]byte, error) {
	if p := os.Getenv("GPTOSS_CUDA_KERNELS"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("GPTOSS_CUDA_KERNELS: %w", err)
		}
		return b, nil
	}
	b, err := fatbinFS.ReadFile("fatbin/kernels.fatbin")
	if err != nil || len(b) == 0 {
		return nil, errNoKernels
	}
	return b, nil
}

// kernelNames are the kernels the module must export.
var kernelNames = []string{
	"embed", "rmsnorm", "matvec_bf16_t1", "matvec_bf16_t8", "rope_kv",
	"attn_partial_d16", "attn_partial_d32", "attn_partial_d64", "attn_partial_d128", "attn_combine",
	"router_topk", "moe_plan", "moe_mlp1_t1", "moe_mlp1_t8", "moe_mlp2_t1", "moe_mlp2_t8",
	"moe_combine", "moe_mlp1_dec", "moe_mlp2_dec", "argmax",
	"moe_tc_mlp1", "moe_tc_mlp2", "gemm_tc_bf16", "sample_topkp", "matvec_norm_t1", "qkv_rope_t1", "norm_router", "moe3_mlp1_dec", "moe3_mlp2_dec",
	"attn_dec_d16", "attn_dec_d32", "attn_dec_d64", "attn_dec_d128",
	"bw_read", "moe6_mlp1_dec", "moe6_mlp2_dec", "moe7_mlp1_dec", "moe7_mlp2_dec", "moe12_mlp2_dec",
	"outproj_sums_1", "outproj_sums_4", "outproj_sums_8", "moe16_mlp1_dec", "moe16_mlp2_dec",
	"moe17_mlp1_dec", "moe17_mlp2_dec",
	"matvec_norm_q8", "qkv_rope_q8", "outproj_sums_q8_1", "outproj_sums_q8_4", "outproj_sums_q8_8",
}

// dynamicShared is the dynamic shared memory of the kernels that use it
// (bytes; set as their attribute when the module loads, passed at launch).
var dynamicShared = map[string]int{"moe7_mlp1_dec": 65536, "moe7_mlp2_dec": 65536, "moe12_mlp2_dec": 65536,
	"moe16_mlp1_dec": 65536, "moe16_mlp2_dec": 65536, "moe17_mlp1_dec": v17Shared, "moe17_mlp2_dec": v17Shared}

// v17Shared is moe17's dynamic shared memory (kernels/gptoss.cu): the
// half2 table (LUTH_BYTES) and each of the 8 warps' ring of V17_S stages of
// V17_STAGE bytes (3 blocks × 2 rows × 32 lanes × 16 bytes + 208 for the
// scales); kernels/gptoss.cu static_asserts the same sum.
const v17Shared = 32768 + warpsPerBlock*2*(3*2*512+208)

// device is one GPU with its primary context and the loaded kernels.
type device struct {
	ordinal  int
	dev      cuDevice
	ctx      cuContext
	name     string
	imageSum string // the kernel image's SHA-256 (16 hex digits): part of the tuning key
	ccMajor  int
	ccMinor  int
	sms      int
	mod      cuModule
	fn       map[string]cuFunction
	resident map[string]int // blocks of 256 threads per SM, per kernel (persistent grids)
	dynSmem  map[string]int // the kernels of dynamicShared the device accepted
	dynErr   error          // why one was refused (v7 then runs v6's kernels)
	mu       sync.Mutex
	allocs   map[devPtr]uint64
	inUse    uint64
	peakUse  uint64
	baseFree uint64 // free device memory when the device was opened
}

var (
	devMu   sync.Mutex
	devices = map[int]*device{}
)

// probe says whether device ordinal can run this engine, without loading
// the kernels.
func probe(ordinal int) (name string, err error) {
	if err := loadDriver(); err != nil {
		return "", err
	}
	var n int32
	if err := check("cuDeviceGetCount", drv.DeviceGetCount(&n)); err != nil {
		return "", err
	}
	if ordinal < 0 || int(n) <= ordinal {
		return "", fmt.Errorf("no CUDA device %d (%d devices)", ordinal, n)
	}
	var d cuDevice
	if err := check("cuDeviceGet", drv.DeviceGet(&d, int32(ordinal))); err != nil {
		return "", err
	}
	var major, minor int32
	drv.DeviceGetAttribute(&major, attrCCMajor, d)
	drv.DeviceGetAttribute(&minor, attrCCMinor, d)
	var buf [256]byte
	drv.DeviceGetName(&buf[0], int32(len(buf)), d)
	name = cString(&buf[0])
	if major < 8 {
		return name, fmt.Errorf("GPU %d (%s) has compute capability %d.%d; the CUDA engine needs 8.0 or newer", ordinal, name, major, minor)
	}
	return name, nil
}

// openDevice returns device ordinal with its context and kernels, opening
// it once per process.
func openDevice(ordinal int) (*device, error) {
	devMu.Lock()
	defer devMu.Unlock()
	if d, ok := devices[ordinal]; ok {
		return d, nil
	}
	name, err := probe(ordinal)
	if err != nil {
		return nil, err
	}
	img, err := kernelImage()
	if err != nil {
		return nil, err
	}
	d := &device{ordinal: ordinal, name: name, fn: map[string]cuFunction{}, resident: map[string]int{}, allocs: map[devPtr]uint64{}}
	sum := sha256.Sum256(img)
	d.imageSum = hex.EncodeToString(sum[:8])
	if err := check("cuDeviceGet", drv.DeviceGet(&d.dev, int32(ordinal))); err != nil {
		return nil, err
	}
	var v int32
	drv.DeviceGetAttribute(&v, attrCCMajor, d.dev)
	d.ccMajor = int(v)
	drv.DeviceGetAttribute(&v, attrCCMinor, d.dev)
	d.ccMinor = int(v)
	drv.DeviceGetAttribute(&v, attrMultiprocessors, d.dev)
	d.sms = int(v)
	if err := check("cuDevicePrimaryCtxRetain", drv.DevicePrimaryCtxRetain(&d.ctx, d.dev)); err != nil {
		return nil, err
	}
	unlock := d.enter()
	defer unlock()
	if err := check("cuModuleLoadData (the embedded kernels)", drv.ModuleLoadData(&d.mod, unsafe.Pointer(&img[0]))); err != nil {
		return nil, fmt.Errorf("%w: GPU %s, compute capability %d.%d", err, d.name, d.ccMajor, d.ccMinor)
	}
	for _, k := range kernelNames {
		var f cuFunction
		if err := check("cuModuleGetFunction "+k, drv.ModuleGetFunction(&f, d.mod, cStr(k))); err != nil {
			return nil, err
		}
		d.fn[k] = f
	}
	d.dynSmem = map[string]int{}
	for k, n := range dynamicShared {
		if drv.FuncSetAttribute == nil {
			d.dynErr = errors.New("the driver lacks cuFuncSetAttribute")
			break
		}
		if err := check("cuFuncSetAttribute "+k, drv.FuncSetAttribute(d.fn[k], funcAttrMaxDynamicSharedBytes, int32(n))); err != nil {
			d.dynErr = err
			continue
		}
		d.dynSmem[k] = n
	}
	var free, total uint64
	drv.MemGetInfo(&free, &total)
	d.baseFree = free
	devices[ordinal] = d
	return d, nil
}

// enter pins the goroutine to its OS thread and makes the device's context
// current there; call the returned func when done. Every helper that calls
// the driver enters by itself (goroutines move between threads, the
// context is per thread); the engine's methods enter once around a batch.
func (d *device) enter() func() {
	runtime.LockOSThread()
	drv.CtxSetCurrent(d.ctx)
	return runtime.UnlockOSThread
}

// alloc allocates size bytes of device memory (at least 1).
func (d *device) alloc(size uint64) (devPtr, error) {
	defer d.enter()()
	if size == 0 {
		size = 1
	}
	var p devPtr
	if err := check(fmt.Sprintf("cuMemAlloc(%d bytes)", size), drv.MemAlloc(&p, size)); err != nil {
		return 0, err
	}
	d.mu.Lock()
	d.allocs[p] = size
	d.inUse += size
	d.peakUse = max(d.peakUse, d.inUse)
	d.mu.Unlock()
	return p, nil
}

func (d *device) free(p devPtr) {
	if p == 0 {
		return
	}
	d.mu.Lock()
	d.inUse -= d.allocs[p]
	delete(d.allocs, p)
	d.mu.Unlock()
	defer d.enter()()
	drv.MemFree(p)
}

// memInfo returns the device's free and total memory.
func (d *device) memInfo() (free, total uint64) {
	defer d.enter()()
	drv.MemGetInfo(&free, &total)
	return
}

// stream is a CUDA stream with its own kernel-parameter block (C memory,
// so no Go pointer is handed to the driver).
type stream struct {
	d      *device
	s      cuStream
	params unsafe.Pointer // maxParams pointers, maxParams 8-byte values, then a CUlaunchConfig and one CUlaunchAttribute
	prof   *profile       // when set, each launch is timed with events
	// pdl: the launches that ask for it (launchPDL) use programmatic
	// dependent launch (see pdlOK); the kernels wait for their predecessor
	// themselves (pdl_wait in kernels/gptoss.cu).
	pdl bool
}

// pdlOK says whether the device and driver support programmatic dependent
// launch (compute capability 9.0+, cuLaunchKernelEx).
func (d *device) pdlOK() bool { return d.ccMajor >= 9 && drv.LaunchKernelEx != nil }

// The launch configuration after the parameters in stream.params: a
// CUlaunchConfig (56 bytes: grid, block, shared memory, stream, attribute
// pointer and count) at cfgOff, one CUlaunchAttribute (id, 4 bytes of
// padding, a 64-byte value union) at attrOff.
const (
	cfgOff     = 16 * maxParams
	attrOff    = cfgOff + 64
	paramBytes = attrOff + 72
	// CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
	attrProgrammaticStreamSerialization = 6
)

// profile times kernel launches with events (a diagnostic: it serializes
// nothing, but records two events per launch).
type profile struct {
	names  []string
	events []cuEvent // start, end per launch
	used   int
}

// startProfile makes the stream time its launches until report.
func (s *stream) startProfile() { s.prof = &profile{} }

// report waits for the stream and returns the time per kernel name (ms) in
// launch order of first appearance, and the launches per name.
func (s *stream) report() (names []string, ms map[string]float64, count map[string]int, err error) {
	p := s.prof
	s.prof = nil
	if p == nil {
		return nil, nil, nil, nil
	}
	if err := s.sync(); err != nil {
		return nil, nil, nil, err
	}
	defer s.d.enter()()
	ms, count = map[string]float64{}, map[string]int{}
	for i := 0; i < p.used; i++ {
		var t float32
		drv.EventElapsedTime(&t, p.events[2*i], p.events[2*i+1])
		n := p.names[i]
		if _, ok := ms[n]; !ok {
			names = append(names, n)
		}
		ms[n] += float64(t)
		count[n]++
	}
	for _, e := range p.events {
		drv.EventDestroy(e)
	}
	return names, ms, count, nil
}

const maxParams = 32

func (d *device) newStream() (*stream, error) {
	defer d.enter()()
	s := &stream{d: d}
	if err := check("cuStreamCreate", drv.StreamCreate(&s.s, 1)); err != nil { // non-blocking
		return nil, err
	}
	if err := check("cuMemAllocHost", drv.MemAllocHost(&s.params, paramBytes)); err != nil {
		drv.StreamDestroy(s.s)
		return nil, err
	}
	return s, nil
}

func (s *stream) close() {
	if s == nil || s.s == 0 {
		return
	}
	defer s.d.enter()()
	drv.StreamDestroy(s.s)
	drv.MemFreeHost(s.params)
	s.s = 0
}

func (s *stream) sync() error {
	defer s.d.enter()()
	return check("cuStreamSynchronize", drv.StreamSynchronize(s.s))
}

// dim3 is a grid or block shape.
type dim3 struct{ x, y, z uint32 }

func grid(x, y, z int) dim3 { return dim3{uint32(x), uint32(y), uint32(z)} }

// launch runs kernel name on the stream. args are devPtr, int (as a C int),
// int32 or float32.
func (s *stream) launch(name string, g, b dim3, args ...any) error {
	return s.launchWith(false, name, g, b, args...)
}

// launchPDL is launch with programmatic dependent launch when the stream
// uses it: the kernel may start while the previous one finishes, so it must
// call pdl_wait before it touches anything but weights.
func (s *stream) launchPDL(name string, g, b dim3, args ...any) error {
	return s.launchWith(s.pdl, name, g, b, args...)
}

func (s *stream) launchWith(pdl bool, name string, g, b dim3, args ...any) error {
	f, ok := s.d.fn[name]
	if !ok {
		return fmt.Errorf("no kernel %q", name)
	}
	if len(args) > maxParams {
		return fmt.Errorf("kernel %s: %d arguments", name, len(args))
	}
	ptrs := unsafe.Slice((*uintptr)(s.params), maxParams)
	vals := unsafe.Slice((*uint64)(unsafe.Add(s.params, 8*maxParams)), maxParams)
	for i, a := range args {
		switch v := a.(type) {
		case devPtr:
			vals[i] = uint64(v)
		case int:
			vals[i] = uint64(uint32(int32(v)))
		case int32:
			vals[i] = uint64(uint32(v))
		case float32:
			vals[i] = uint64(math.Float32bits(v))
		default:
			return fmt.Errorf("kernel %s: argument %d has type %T", name, i, a)
		}
		ptrs[i] = uintptr(unsafe.Add(s.params, 8*maxParams+8*i))
	}
	if g.y == 0 {
		g.y = 1
	}
	if g.z == 0 {
		g.z = 1
	}
	if b.y == 0 {
		b.y = 1
	}
	if b.z == 0 {
		b.z = 1
	}
	if g.x == 0 {
		return nil // nothing to do
	}
	defer s.d.enter()()
	if p := s.prof; p != nil {
		var e0, e1 cuEvent
		drv.EventCreate(&e0, 0)
		drv.EventCreate(&e1, 0)
		p.events = append(p.events, e0, e1)
		p.names = append(p.names, name)
		p.used++
		drv.EventRecord(e0, s.s)
		defer drv.EventRecord(e1, s.s)
	}
	if pdl && drv.LaunchKernelEx != nil {
		cfg := unsafe.Slice((*uint32)(unsafe.Add(s.params, cfgOff)), 14)
		clear(cfg)
		cfg[0], cfg[1], cfg[2], cfg[3], cfg[4], cfg[5] = g.x, g.y, g.z, b.x, b.y, b.z
		*(*uintptr)(unsafe.Add(s.params, cfgOff+32)) = uintptr(s.s)
		*(*uintptr)(unsafe.Add(s.params, cfgOff+40)) = uintptr(unsafe.Add(s.params, attrOff))
		cfg[12] = 1 // numAttrs
		attr := unsafe.Slice((*uint32)(unsafe.Add(s.params, attrOff)), 18)
		clear(attr)
		attr[0] = attrProgrammaticStreamSerialization
		attr[2] = 1 // programmaticStreamSerializationAllowed
		cfg[6] = uint32(s.d.dynSmem[name])
		if r := drv.LaunchKernelEx(unsafe.Add(s.params, cfgOff), f, s.params, nil); r != 0 {
			return check("launch (programmatic dependent) "+name, r)
		}
		return nil
	}
	if r := drv.LaunchKernel(f, g.x, g.y, g.z, b.x, b.y, b.z, uint32(s.d.dynSmem[name]), s.s, s.params, nil); r != 0 {
		return check("launch "+name, r)
	}
	return nil
}

// upload copies host bytes to the device (through the driver's staging for
// pageable memory) and waits.
func (s *stream) upload(dst devPtr, src unsafe.Pointer, n int) error {
	if n == 0 {
		return nil
	}
	defer s.d.enter()()
	if err := check("cuMemcpyHtoDAsync", drv.MemcpyHtoDAsync(dst, src, uint64(n), s.s)); err != nil {
		return err
	}
	return s.sync()
}

// download copies device bytes to host memory and waits.
func (s *stream) download(dst unsafe.Pointer, src devPtr, n int) error {
	if n == 0 {
		return nil
	}
	defer s.d.enter()()
	if err := check("cuMemcpyDtoHAsync", drv.MemcpyDtoHAsync(dst, src, uint64(n), s.s)); err != nil {
		return err
	}
	return s.sync()
}
