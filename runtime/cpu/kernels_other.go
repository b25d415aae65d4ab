//go:build !amd64

package cpu

import "unsafe"

var useAsm = false

func dotBF16Asm(w unsafe.Pointer, x *float32, n int) float32            { panic("no asm") }
func dotF32Asm(a, b *float32, n int) float32                            { panic("no asm") }
func dotMXFP4Asm(blocks, scales *byte, nblocks int, x *float32) float32 { panic("no asm") }
func bf16RowAsm(out *float32, w unsafe.Pointer, n int)                  { panic("no asm") }
func dot4F32Asm(w, x *float32, strideBytes, n int, out *[4]float32)     { panic("no asm") }

func mxfp4RowAsm(out *float32, blocks, scales *byte, nblocks int) { panic("no asm") }
