//go:build !amd64

package cpu

import "unsafe"

var useAsm = false

func dotBF16Asm(w unsafe.Pointer, x *float32, n int) float32            { panic("no asm") }
func dotF32Asm(a, b *float32, n int) float32                            { panic("no asm") }
func dotQ8Asm(q, d *byte, nblocks int, x *float32) float32              { panic("no asm") }
func dotMXFP4Asm(blocks, scales *byte, nblocks int, x *float32) float32 { panic("no asm") }
func bf16RowAsm(out *float32, w unsafe.Pointer, n int)                  { panic("no asm") }
func dot4F32Asm(w, x *float32, strideBytes, n int, out *[4]float32)     { panic("no asm") }

func mxfp4RowAsm(out *float32, blocks, scales *byte, nblocks int) { panic("no asm") }

func expSubAsm(x *float32, n int, m float32, c *float32) float32 { panic("no asm") }
func axpyAsm(y, x *float32, n int, a float32)                    { panic("no asm") }

func wsum32Asm(out, v *float32, strideBytes int, p *float32, n int) { panic("no asm") }
func wsum8Asm(out, v *float32, strideBytes int, p *float32, n int)  { panic("no asm") }

func scores4Asm(out *float32, outStrideBytes int, keys *float32, keyStrideBytes int, q *float32, d, n int) {
	panic("no asm")
}

func maxAsm(x *float32, n int) float32 { panic("no asm") }

func dot2x4Asm(w *float32, wStrideBytes int, x *float32, xStrideBytes, n int, out *[8]float32) {
	panic("no asm")
}

var useAVX512 = false

func dot2x4AVX512(w *float32, wStrideBytes int, x *float32, xStrideBytes, n int, out *[8]float32) {
	panic("no asm")
}

func dotMXFP4AVX512(blocks, scales *byte, nblocks int, xs *float32, c *float32) float32 {
	panic("no asm")
}

func dotBF16AVX512(w unsafe.Pointer, x *float32, n int) float32 { panic("no asm") }

func mxfp4RowSplitAVX512(out *float32, blocks, scales *byte, nblocks int, c *float32) {
	panic("no asm")
}
