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
func dotQ8Asm(q, d *byte, nblocks int, x *float32) float32

//go:noescape
func dotMXFP4Asm(blocks, scales *byte, nblocks int, x *float32) float32

//go:noescape
func bf16RowAsm(out *float32, w unsafe.Pointer, n int)

//go:noescape
func dot4F32Asm(w, x *float32, strideBytes, n int, out *[4]float32)

//go:noescape
func mxfp4RowAsm(out *float32, blocks, scales *byte, nblocks int)

//go:noescape
func expSubAsm(x *float32, n int, m float32, c *float32) float32

//go:noescape
func axpyAsm(y, x *float32, n int, a float32)

//go:noescape
func wsum32Asm(out, v *float32, strideBytes int, p *float32, n int)

//go:noescape
func wsum8Asm(out, v *float32, strideBytes int, p *float32, n int)

//go:noescape
func scores4Asm(out *float32, outStrideBytes int, keys *float32, keyStrideBytes int, q *float32, d, n int)

//go:noescape
func maxAsm(x *float32, n int) float32

//go:noescape
func dot2x4Asm(w *float32, wStrideBytes int, x *float32, xStrideBytes, n int, out *[8]float32)

// useAVX512 (with useAsm) selects the 512-bit kernels.
var useAVX512 = useAsm && cpu.X86.HasAVX512F

//go:noescape
func dot2x4AVX512(w *float32, wStrideBytes int, x *float32, xStrideBytes, n int, out *[8]float32)

//go:noescape
func dotMXFP4AVX512(blocks, scales *byte, nblocks int, xs *float32, c *float32) float32

//go:noescape
func dotBF16AVX512(w unsafe.Pointer, x *float32, n int) float32

//go:noescape
func mxfp4RowSplitAVX512(out *float32, blocks, scales *byte, nblocks int, c *float32)
