//go:build linux && (amd64 || arm64)

package hw

import (
	"fmt"
	"unsafe"
)

// detectCUDA loads the CUDA driver library lib, initialises the driver
// (cuInit(0)) and sets m.CUDADriverVersion: only a driver that starts gets
// a version, so a nonzero version means CUDA is usable. It returns why the
// driver is not usable, or "" when it is or when lib is not there at all
// (CUDADriverVersion 0 says that).
func detectCUDA(lib string, m *Machine) string {
	l, missing, err := openLibrary(lib)
	if err != nil {
		if missing {
			return "" // CUDADriverVersion 0 says it
		}
		return "cannot load: " + err.Error()
	}
	var (
		cuInit             func(flags uint32) int32
		cuDriverGetVersion func(version *int32) int32
		cuGetErrorName     func(r int32, name **byte) int32
	)
	l.bind(map[string]any{
		"cuInit":             &cuInit,
		"cuDriverGetVersion": &cuDriverGetVersion,
		"cuGetErrorName":     &cuGetErrorName,
	})
	describe := func(r int32) string {
		var p *byte
		if cuGetErrorName != nil && cuGetErrorName(r, &p) == 0 && p != nil {
			return fmt.Sprintf("%s (%d)", goString(p), r)
		}
		return fmt.Sprintf("CUDA error %d", r)
	}

	if cuInit == nil {
		return "cuInit: not in " + lib
	}
	if r := cuInit(0); r != 0 {
		return "cuInit: " + describe(r)
	}
	if cuDriverGetVersion == nil {
		return "cuDriverGetVersion: not in " + lib
	}
	var v int32
	if r := cuDriverGetVersion(&v); r != 0 {
		return "cuDriverGetVersion: " + describe(r)
	}
	m.CUDADriverVersion = int(v)
	return ""
}

// goString copies the NUL-terminated C string at p, which C owns.
func goString(p *byte) string {
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}
