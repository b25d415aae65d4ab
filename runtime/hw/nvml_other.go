//go:build !(linux && (amd64 || arm64))

package hw

import "runtime"

// detectNVML records that NVIDIA GPU detection needs Linux on amd64 or
// arm64 (where NVIDIA ships drivers and purego loads them without cgo).
func detectNVML(lib string, m *Machine) {
	m.GPUError = "NVIDIA GPU detection is not supported on " + runtime.GOOS + "/" + runtime.GOARCH
}
