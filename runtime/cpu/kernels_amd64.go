package cpu

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// useAsm selects the AVX2+FMA kernels (kernels_amd64.s).
var useAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func dotBF16Asm(w unsafe.Pointer, x *float32, n int) float32

//go:noescape
func dotF32Asm(a, b *float32, n int) float32

//go:noescape
func dotMXFP4Asm(blocks, scales *byte, nblocks int, x *float32) float32

//go:noescape
func bf16RowAsm(out *float32, w unsafe.Pointer, n int)

//go:noescape
func dot4F32Asm(w, x *float32, strideBytes, n int, out *[4]float32)

//go:noescape
func mxfp4RowAsm(out *float32, blocks, scales *byte, nblocks int)
