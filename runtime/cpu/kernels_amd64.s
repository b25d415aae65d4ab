#include "textflag.h"

// Horizontal sum of Y0 into X0 (low lane).
#define HSUM \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS X1, X0, X0; \
	VHADDPS X0, X0, X0; \
	VHADDPS X0, X0, X0

// The horizontal sums of the Y registers a, b, c, d into the 4 floats of
// a's low lane xa (b, c and xt, the X register of a scratch, clobbered).
#define HSUM4(a, b, c, d, xa, xt) \
	VHADDPS b, a, a; \
	VHADDPS d, c, c; \
	VHADDPS c, a, a; \
	VEXTRACTF128 $1, a, xt; \
	VADDPS xt, xa, xa

// Fold the 512-bit accumulator z into y, its low 256 bits (Y8 clobbered).
#define FOLD512(z, y) \
	VEXTRACTF64X4 $1, z, Y8; \
	VADDPS Y8, y, y

// func dotBF16Asm(w unsafe.Pointer, x *float32, n int) float32
// n is a multiple of 8.
TEXT ·dotBF16Asm(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
bf32:
	CMPQ CX, $32
	JL   bf8
	VPMOVZXWD (SI), Y4
	VPMOVZXWD 16(SI), Y5
	VPMOVZXWD 32(SI), Y6
	VPMOVZXWD 48(SI), Y7
	VPSLLD $16, Y4, Y4
	VPSLLD $16, Y5, Y5
	VPSLLD $16, Y6, Y6
	VPSLLD $16, Y7, Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ $64, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP  bf32
bf8:
	CMPQ CX, $8
	JL   bfdone
	VPMOVZXWD (SI), Y4
	VPSLLD $16, Y4, Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ $16, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  bf8
bfdone:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	HSUM
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dotF32Asm(a, b *float32, n int) float32
TEXT ·dotF32Asm(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
f32:
	CMPQ CX, $32
	JL   f8
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP  f32
f8:
	CMPQ CX, $8
	JL   fdone
	VMOVUPS (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  f8
fdone:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	HSUM
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// One MXFP4 block: 16 bytes at off(SI), 32 floats at 4*off... into Y12
// (unscaled, doubled values · x). Uses X4-X11, Y12; X14 = LUT, X15 = 0x0F.
#define MXBLOCK(boff, xoff, acc) \
	VMOVDQU boff(SI), X4; \
	VPSRLW $4, X4, X5; \
	VPAND X15, X4, X4; \
	VPAND X15, X5, X5; \
	VPSHUFB X4, X14, X4; \
	VPSHUFB X5, X14, X5; \
	VPUNPCKLBW X5, X4, X6; \
	VPUNPCKHBW X5, X4, X7; \
	VPMOVSXBD X6, Y8; \
	VPSRLDQ $8, X6, X6; \
	VPMOVSXBD X6, Y9; \
	VPMOVSXBD X7, Y10; \
	VPSRLDQ $8, X7, X7; \
	VPMOVSXBD X7, Y11; \
	VCVTDQ2PS Y8, Y8; \
	VCVTDQ2PS Y9, Y9; \
	VCVTDQ2PS Y10, Y10; \
	VCVTDQ2PS Y11, Y11; \
	VMULPS xoff(DI), Y8, acc; \
	VFMADD231PS xoff+32(DI), Y9, acc; \
	VFMADD231PS xoff+64(DI), Y10, acc; \
	VFMADD231PS xoff+96(DI), Y11, acc

// func dotMXFP4Asm(blocks, scales *byte, nblocks int, x *float32) float32
TEXT ·dotMXFP4Asm(SB), NOSPLIT, $0-36
	MOVQ blocks+0(FP), SI
	MOVQ scales+8(FP), BX
	MOVQ nblocks+16(FP), CX
	MOVQ x+24(FP), DI
	LEAQ ·e8m0Half(SB), R8
	LEAQ ·fp4x2(SB), R9
	VMOVDQU (R9), X14
	MOVL $0x0F0F0F0F, AX
	VMOVD AX, X15
	VPBROADCASTD X15, X15
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
mx2:
	CMPQ CX, $2
	JL   mx1
	MXBLOCK(0, 0, Y12)
	MOVBLZX (BX), AX
	VBROADCASTSS (R8)(AX*4), Y13
	VFMADD231PS Y13, Y12, Y0
	MXBLOCK(16, 128, Y12)
	MOVBLZX 1(BX), AX
	VBROADCASTSS (R8)(AX*4), Y13
	VFMADD231PS Y13, Y12, Y1
	ADDQ $32, SI
	ADDQ $2, BX
	ADDQ $256, DI
	SUBQ $2, CX
	JMP  mx2
mx1:
	CMPQ CX, $1
	JL   mxdone
	MXBLOCK(0, 0, Y12)
	MOVBLZX (BX), AX
	VBROADCASTSS (R8)(AX*4), Y13
	VFMADD231PS Y13, Y12, Y0
mxdone:
	VADDPS Y1, Y0, Y0
	HSUM
	VZEROUPPER
	MOVSS X0, ret+32(FP)
	RET

// func bf16RowAsm(out *float32, w unsafe.Pointer, n int)
TEXT ·bf16RowAsm(SB), NOSPLIT, $0-24
	MOVQ out+0(FP), DI
	MOVQ w+8(FP), SI
	MOVQ n+16(FP), CX
r8:
	CMPQ CX, $8
	JL   rdone
	VPMOVZXWD (SI), Y4
	VPSLLD $16, Y4, Y4
	VMOVUPS Y4, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  r8
rdone:
	VZEROUPPER
	RET

// func dot4F32Asm(w, x *float32, strideBytes, n int, out *[4]float32)
TEXT ·dot4F32Asm(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ strideBytes+16(FP), DX
	MOVQ n+24(FP), CX
	LEAQ (DI)(DX*2), R10
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
d16:
	CMPQ CX, $16
	JL   d8
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y9
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS (DI)(DX*1), Y4, Y1
	VFMADD231PS (R10), Y4, Y2
	VFMADD231PS (R10)(DX*1), Y4, Y3
	VFMADD231PS 32(DI), Y9, Y5
	VFMADD231PS 32(DI)(DX*1), Y9, Y6
	VFMADD231PS 32(R10), Y9, Y7
	VFMADD231PS 32(R10)(DX*1), Y9, Y8
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $64, R10
	SUBQ $16, CX
	JMP  d16
d8:
	CMPQ CX, $8
	JL   ddone
	VMOVUPS (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS (DI)(DX*1), Y4, Y1
	VFMADD231PS (R10), Y4, Y2
	VFMADD231PS (R10)(DX*1), Y4, Y3
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, R10
	SUBQ $8, CX
	JMP  d8
ddone:
	MOVQ out+32(FP), AX
	VADDPS Y5, Y0, Y0
	VADDPS Y6, Y1, Y1
	VADDPS Y7, Y2, Y2
	VADDPS Y8, Y3, Y3
	// Reduce each of Y0..Y3 to one float: hadd tree.
	HSUM4(Y0, Y1, Y2, Y3, X0, X1)
	VMOVUPS X0, (AX)
	VZEROUPPER
	RET

// func mxfp4RowAsm(out *float32, blocks, scales *byte, nblocks int)
TEXT ·mxfp4RowAsm(SB), NOSPLIT, $0-32
	MOVQ out+0(FP), DI
	MOVQ blocks+8(FP), SI
	MOVQ scales+16(FP), BX
	MOVQ nblocks+24(FP), CX
	LEAQ ·e8m0Half(SB), R8
	LEAQ ·fp4x2(SB), R9
	VMOVDQU (R9), X14
	MOVL $0x0F0F0F0F, AX
	VMOVD AX, X15
	VPBROADCASTD X15, X15
dq1:
	CMPQ CX, $1
	JL   dqdone
	VMOVDQU (SI), X4
	VPSRLW $4, X4, X5
	VPAND X15, X4, X4
	VPAND X15, X5, X5
	VPSHUFB X4, X14, X4
	VPSHUFB X5, X14, X5
	VPUNPCKLBW X5, X4, X6
	VPUNPCKHBW X5, X4, X7
	VPMOVSXBD X6, Y8
	VPSRLDQ $8, X6, X6
	VPMOVSXBD X6, Y9
	VPMOVSXBD X7, Y10
	VPSRLDQ $8, X7, X7
	VPMOVSXBD X7, Y11
	VCVTDQ2PS Y8, Y8
	VCVTDQ2PS Y9, Y9
	VCVTDQ2PS Y10, Y10
	VCVTDQ2PS Y11, Y11
	MOVBLZX (BX), AX
	VBROADCASTSS (R8)(AX*4), Y13
	VMULPS Y13, Y8, Y8
	VMULPS Y13, Y9, Y9
	VMULPS Y13, Y10, Y10
	VMULPS Y13, Y11, Y11
	VMOVUPS Y8, (DI)
	VMOVUPS Y9, 32(DI)
	VMOVUPS Y10, 64(DI)
	VMOVUPS Y11, 96(DI)
	ADDQ $16, SI
	INCQ BX
	ADDQ $128, DI
	DECQ CX
	JMP  dq1
dqdone:
	VZEROUPPER
	RET

// func expSubAsm(x *float32, n int, m float32, c *float32) float32
// x[i] = exp(x[i] − m) for n (a multiple of 8) values; returns their sum.
// c: the constants of expConsts (kernels.go).
TEXT ·expSubAsm(SB), NOSPLIT, $0-36
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS m+16(FP), Y1
	MOVQ c+24(FP), R8
	VBROADCASTSS 0(R8), Y2   // lowest argument
	VBROADCASTSS 4(R8), Y5   // log2 e
	VBROADCASTSS 8(R8), Y6   // ln 2 hi
	VBROADCASTSS 12(R8), Y7  // ln 2 lo
	VBROADCASTSS 16(R8), Y8  // 1
	VBROADCASTSS 20(R8), Y9  // 1/2
	VBROADCASTSS 24(R8), Y10 // 1/6
	VBROADCASTSS 28(R8), Y11 // 1/24
	VBROADCASTSS 32(R8), Y12 // 1/120
	VBROADCASTSS 36(R8), Y13 // 1/720
	VBROADCASTSS 40(R8), Y15 // highest argument
	VXORPS Y14, Y14, Y14
ex8:
	CMPQ CX, $8
	JL   exdone
	VMOVUPS (SI), Y0
	VSUBPS Y1, Y0, Y0
	VMAXPS Y2, Y0, Y0
	VMINPS Y15, Y0, Y0
	VMULPS Y5, Y0, Y3
	VROUNDPS $0, Y3, Y3
	VFNMADD231PS Y3, Y6, Y0
	VFNMADD231PS Y3, Y7, Y0
	VMOVAPS Y13, Y4
	VFMADD213PS Y12, Y0, Y4
	VFMADD213PS Y11, Y0, Y4
	VFMADD213PS Y10, Y0, Y4
	VFMADD213PS Y9, Y0, Y4
	VFMADD213PS Y8, Y0, Y4
	VFMADD213PS Y8, Y0, Y4
	VCVTPS2DQ Y3, Y3
	VPSLLD $23, Y3, Y3
	VPADDD Y3, Y4, Y4
	VMOVUPS Y4, (SI)
	VADDPS Y4, Y14, Y14
	ADDQ $32, SI
	SUBQ $8, CX
	JMP  ex8
exdone:
	VMOVAPS Y14, Y0
	HSUM
	VZEROUPPER
	MOVSS X0, ret+32(FP)
	RET

// func axpyAsm(y, x *float32, n int, a float32)
// y[i] += a·x[i] for n (a multiple of 8) values.
TEXT ·axpyAsm(SB), NOSPLIT, $0-28
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS a+24(FP), Y0
ax32:
	CMPQ CX, $32
	JL   ax8
	VMOVUPS (DI), Y1
	VMOVUPS 32(DI), Y2
	VMOVUPS 64(DI), Y3
	VMOVUPS 96(DI), Y4
	VFMADD231PS (SI), Y0, Y1
	VFMADD231PS 32(SI), Y0, Y2
	VFMADD231PS 64(SI), Y0, Y3
	VFMADD231PS 96(SI), Y0, Y4
	VMOVUPS Y1, (DI)
	VMOVUPS Y2, 32(DI)
	VMOVUPS Y3, 64(DI)
	VMOVUPS Y4, 96(DI)
	ADDQ $128, DI
	ADDQ $128, SI
	SUBQ $32, CX
	JMP  ax32
ax8:
	CMPQ CX, $8
	JL   axdone
	VMOVUPS (DI), Y1
	VFMADD231PS (SI), Y0, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	SUBQ $8, CX
	JMP  ax8
axdone:
	VZEROUPPER
	RET

// func wsum32Asm(out, v *float32, strideBytes int, p *float32, n int)
// out[0:32] += Σ_j p[j]·v[j·stride + 0:32] over n rows.
TEXT ·wsum32Asm(SB), NOSPLIT, $0-40
	MOVQ out+0(FP), DI
	MOVQ v+8(FP), SI
	MOVQ strideBytes+16(FP), DX
	MOVQ p+24(FP), BX
	MOVQ n+32(FP), CX
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
ws32:
	CMPQ CX, $1
	JL   ws32done
	VBROADCASTSS (BX), Y4
	VFMADD231PS (SI), Y4, Y0
	VFMADD231PS 32(SI), Y4, Y1
	VFMADD231PS 64(SI), Y4, Y2
	VFMADD231PS 96(SI), Y4, Y3
	ADDQ DX, SI
	ADDQ $4, BX
	DECQ CX
	JMP  ws32
ws32done:
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VZEROUPPER
	RET

// func wsum8Asm(out, v *float32, strideBytes int, p *float32, n int)
TEXT ·wsum8Asm(SB), NOSPLIT, $0-40
	MOVQ out+0(FP), DI
	MOVQ v+8(FP), SI
	MOVQ strideBytes+16(FP), DX
	MOVQ p+24(FP), BX
	MOVQ n+32(FP), CX
	VMOVUPS (DI), Y0
	VXORPS Y1, Y1, Y1
ws8:
	CMPQ CX, $2
	JL   ws8one
	VBROADCASTSS (BX), Y4
	VBROADCASTSS 4(BX), Y5
	VFMADD231PS (SI), Y4, Y0
	VFMADD231PS (SI)(DX*1), Y5, Y1
	LEAQ (SI)(DX*2), SI
	ADDQ $8, BX
	SUBQ $2, CX
	JMP  ws8
ws8one:
	CMPQ CX, $1
	JL   ws8done
	VBROADCASTSS (BX), Y4
	VFMADD231PS (SI), Y4, Y0
ws8done:
	VADDPS Y1, Y0, Y0
	VMOVUPS Y0, (DI)
	VZEROUPPER
	RET

// func scores4Asm(out *float32, outStrideBytes int, keys *float32, keyStrideBytes int, q *float32, d, n int)
// For each of n key rows j: out[h·outStride + j] = Σ_c keys[j][c]·q[h·d + c],
// h < 4; d is a multiple of 8.
TEXT ·scores4Asm(SB), NOSPLIT, $0-56
	MOVQ out+0(FP), DI
	MOVQ outStrideBytes+8(FP), R11
	MOVQ keys+16(FP), SI
	MOVQ keyStrideBytes+24(FP), R12
	MOVQ q+32(FP), R8
	MOVQ d+40(FP), R13
	MOVQ n+48(FP), CX
	MOVQ R13, R14
	SHLQ $2, R14          // d in bytes: q row stride
	LEAQ (R8)(R14*2), R10 // q rows 2, 3
sc4key:
	CMPQ CX, $1
	JL   sc4done
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ AX, AX           // byte offset within the row
sc4col:
	CMPQ AX, R14
	JGE  sc4red
	VMOVUPS (SI)(AX*1), Y4
	LEAQ (R8)(AX*1), BX
	VFMADD231PS (BX), Y4, Y0
	VFMADD231PS (BX)(R14*1), Y4, Y1
	LEAQ (R10)(AX*1), BX
	VFMADD231PS (BX), Y4, Y2
	VFMADD231PS (BX)(R14*1), Y4, Y3
	ADDQ $32, AX
	JMP  sc4col
sc4red:
	HSUM4(Y0, Y1, Y2, Y3, X0, X1) // [s0 s1 s2 s3]
	MOVQ DI, BX
	VMOVSS X0, (BX)
	ADDQ R11, BX
	VEXTRACTPS $1, X0, (BX)
	ADDQ R11, BX
	VEXTRACTPS $2, X0, (BX)
	ADDQ R11, BX
	VEXTRACTPS $3, X0, (BX)
	ADDQ $4, DI
	ADDQ R12, SI
	DECQ CX
	JMP  sc4key
sc4done:
	VZEROUPPER
	RET

// func maxAsm(x *float32, n int) float32: n a multiple of 8, at least 8.
TEXT ·maxAsm(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS (SI), Y0
	ADDQ $32, SI
	SUBQ $8, CX
mx8:
	CMPQ CX, $8
	JL   mxd
	VMAXPS (SI), Y0, Y0
	ADDQ $32, SI
	SUBQ $8, CX
	JMP  mx8
mxd:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4E, X0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0xB1, X0, X1
	VMAXPS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+16(FP)
	RET

// func dot2x4Asm(w *float32, wStrideBytes int, x *float32, xStrideBytes, n int, out *[8]float32)
// out[4r + t] = Σ_c w[r][c]·x[t][c] for rows r < 2, tokens t < 4; n a
// multiple of 8.
TEXT ·dot2x4Asm(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), SI
	MOVQ wStrideBytes+8(FP), R8
	MOVQ x+16(FP), DI
	MOVQ xStrideBytes+24(FP), DX
	MOVQ n+32(FP), CX
	LEAQ (DI)(DX*2), R10
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
d24:
	CMPQ CX, $8
	JL   d24done
	VMOVUPS (SI), Y8
	VMOVUPS (SI)(R8*1), Y9
	VMOVUPS (DI), Y10
	VFMADD231PS Y10, Y8, Y0
	VFMADD231PS Y10, Y9, Y4
	VMOVUPS (DI)(DX*1), Y11
	VFMADD231PS Y11, Y8, Y1
	VFMADD231PS Y11, Y9, Y5
	VMOVUPS (R10), Y12
	VFMADD231PS Y12, Y8, Y2
	VFMADD231PS Y12, Y9, Y6
	VMOVUPS (R10)(DX*1), Y13
	VFMADD231PS Y13, Y8, Y3
	VFMADD231PS Y13, Y9, Y7
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, R10
	SUBQ $8, CX
	JMP  d24
d24done:
	MOVQ out+40(FP), AX
	HSUM4(Y0, Y1, Y2, Y3, X0, X1)
	VMOVUPS X0, (AX)
	HSUM4(Y4, Y5, Y6, Y7, X4, X5)
	VMOVUPS X4, 16(AX)
	VZEROUPPER
	RET

// func dot2x4AVX512(w *float32, wStrideBytes int, x *float32, xStrideBytes, n int, out *[8]float32)
// dot2x4Asm with 16-wide vectors; n a multiple of 16.
TEXT ·dot2x4AVX512(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), SI
	MOVQ wStrideBytes+8(FP), R8
	MOVQ x+16(FP), DI
	MOVQ xStrideBytes+24(FP), DX
	MOVQ n+32(FP), CX
	LEAQ (DI)(DX*2), R10
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	VXORPS Z4, Z4, Z4
	VXORPS Z5, Z5, Z5
	VXORPS Z6, Z6, Z6
	VXORPS Z7, Z7, Z7
z24:
	CMPQ CX, $16
	JL   z24done
	VMOVUPS (SI), Z8
	VMOVUPS (SI)(R8*1), Z9
	VMOVUPS (DI), Z10
	VFMADD231PS Z10, Z8, Z0
	VFMADD231PS Z10, Z9, Z4
	VMOVUPS (DI)(DX*1), Z11
	VFMADD231PS Z11, Z8, Z1
	VFMADD231PS Z11, Z9, Z5
	VMOVUPS (R10), Z12
	VFMADD231PS Z12, Z8, Z2
	VFMADD231PS Z12, Z9, Z6
	VMOVUPS (R10)(DX*1), Z13
	VFMADD231PS Z13, Z8, Z3
	VFMADD231PS Z13, Z9, Z7
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $64, R10
	SUBQ $16, CX
	JMP  z24
z24done:
	// fold each 512-bit accumulator to 256 bits, then as dot2x4Asm
	FOLD512(Z0, Y0)
	FOLD512(Z1, Y1)
	FOLD512(Z2, Y2)
	FOLD512(Z3, Y3)
	FOLD512(Z4, Y4)
	FOLD512(Z5, Y5)
	FOLD512(Z6, Y6)
	FOLD512(Z7, Y7)
	MOVQ out+40(FP), AX
	HSUM4(Y0, Y1, Y2, Y3, X0, X1)
	VMOVUPS X0, (AX)
	HSUM4(Y4, Y5, Y6, Y7, X4, X5)
	VMOVUPS X4, 16(AX)
	VZEROUPPER
	RET

// func dotMXFP4AVX512(blocks, scales *byte, nblocks int, xs *float32, c *float32) float32
// Σ W·x over nblocks MXFP4 blocks, with x split per block (splitBlocks):
// the 16 even elements, then the 16 odd. c: fp4F32 (16 floats) then
// e8m0F32 (256 floats).
TEXT ·dotMXFP4AVX512(SB), NOSPLIT, $0-44
	MOVQ blocks+0(FP), SI
	MOVQ scales+8(FP), BX
	MOVQ nblocks+16(FP), CX
	MOVQ xs+24(FP), DI
	MOVQ c+32(FP), R8
	VMOVUPS (R8), Z14
	LEAQ 64(R8), R8
	MOVL $15, AX
	VPBROADCASTD AX, Z15
	VXORPS Z6, Z6, Z6
	VXORPS Z7, Z7, Z7
zm2:
	CMPQ CX, $2
	JL   zm1
	VPMOVZXBD (SI), Z0
	VPMOVZXBD 16(SI), Z8
	VPSRLD $4, Z0, Z1
	VPSRLD $4, Z8, Z9
	VPANDD Z15, Z0, Z0
	VPANDD Z15, Z8, Z8
	VPERMPS Z14, Z0, Z2
	VPERMPS Z14, Z1, Z3
	VPERMPS Z14, Z8, Z10
	VPERMPS Z14, Z9, Z11
	VMULPS (DI), Z2, Z4
	VFMADD231PS 64(DI), Z3, Z4
	VMULPS 128(DI), Z10, Z12
	VFMADD231PS 192(DI), Z11, Z12
	MOVBLZX (BX), AX
	VBROADCASTSS (R8)(AX*4), Z5
	VFMADD231PS Z5, Z4, Z6
	MOVBLZX 1(BX), AX
	VBROADCASTSS (R8)(AX*4), Z13
	VFMADD231PS Z13, Z12, Z7
	ADDQ $32, SI
	ADDQ $2, BX
	ADDQ $256, DI
	SUBQ $2, CX
	JMP  zm2
zm1:
	CMPQ CX, $1
	JL   zmdone
	VPMOVZXBD (SI), Z0
	VPSRLD $4, Z0, Z1
	VPANDD Z15, Z0, Z0
	VPERMPS Z14, Z0, Z2
	VPERMPS Z14, Z1, Z3
	VMULPS (DI), Z2, Z4
	VFMADD231PS 64(DI), Z3, Z4
	MOVBLZX (BX), AX
	VBROADCASTSS (R8)(AX*4), Z5
	VFMADD231PS Z5, Z4, Z6
zmdone:
	VADDPS Z7, Z6, Z6
	VEXTRACTF64X4 $1, Z6, Y1
	VADDPS Y1, Y6, Y0
	HSUM
	VZEROUPPER
	MOVSS X0, ret+40(FP)
	RET

// func dotBF16AVX512(w unsafe.Pointer, x *float32, n int) float32
// n is a multiple of 16.
TEXT ·dotBF16AVX512(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
zb64:
	CMPQ CX, $64
	JL   zb16
	VPMOVZXWD (SI), Z4
	VPMOVZXWD 32(SI), Z5
	VPMOVZXWD 64(SI), Z6
	VPMOVZXWD 96(SI), Z7
	VPSLLD $16, Z4, Z4
	VPSLLD $16, Z5, Z5
	VPSLLD $16, Z6, Z6
	VPSLLD $16, Z7, Z7
	VFMADD231PS (DI), Z4, Z0
	VFMADD231PS 64(DI), Z5, Z1
	VFMADD231PS 128(DI), Z6, Z2
	VFMADD231PS 192(DI), Z7, Z3
	ADDQ $128, SI
	ADDQ $256, DI
	SUBQ $64, CX
	JMP  zb64
zb16:
	CMPQ CX, $16
	JL   zbdone
	VPMOVZXWD (SI), Z4
	VPSLLD $16, Z4, Z4
	VFMADD231PS (DI), Z4, Z0
	ADDQ $32, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  zb16
zbdone:
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	HSUM
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func mxfp4RowSplitAVX512(out *float32, blocks, scales *byte, nblocks int, c *float32)
// Dequantizes a row with each block's values in split order (splitBlocks):
// the 16 even elements, then the 16 odd. c as for dotMXFP4AVX512.
TEXT ·mxfp4RowSplitAVX512(SB), NOSPLIT, $0-40
	MOVQ out+0(FP), DI
	MOVQ blocks+8(FP), SI
	MOVQ scales+16(FP), BX
	MOVQ nblocks+24(FP), CX
	MOVQ c+32(FP), R8
	VMOVUPS (R8), Z14
	LEAQ 64(R8), R8
	MOVL $15, AX
	VPBROADCASTD AX, Z15
zr1:
	CMPQ CX, $1
	JL   zrdone
	VPMOVZXBD (SI), Z0
	VPSRLD $4, Z0, Z1
	VPANDD Z15, Z0, Z0
	VPERMPS Z14, Z0, Z2
	VPERMPS Z14, Z1, Z3
	MOVBLZX (BX), AX
	VBROADCASTSS (R8)(AX*4), Z5
	VMULPS Z5, Z2, Z2
	VMULPS Z5, Z3, Z3
	VMOVUPS Z2, (DI)
	VMOVUPS Z3, 64(DI)
	ADDQ $16, SI
	INCQ BX
	ADDQ $128, DI
	DECQ CX
	JMP  zr1
zrdone:
	VZEROUPPER
	RET

// One Q8 block into the accumulator acc: 32 int8 values at SI sign-extended
// to int32 and converted (exact), multiplied with x at DI in two chains,
// their sum times the BF16 scale at BX; SI, BX, DI advance, CX counts down.
#define Q8BLOCK(acc) \
	VPMOVSXBD (SI), Y4; \
	VPMOVSXBD 8(SI), Y5; \
	VPMOVSXBD 16(SI), Y6; \
	VPMOVSXBD 24(SI), Y7; \
	VCVTDQ2PS Y4, Y4; \
	VCVTDQ2PS Y5, Y5; \
	VCVTDQ2PS Y6, Y6; \
	VCVTDQ2PS Y7, Y7; \
	VMULPS (DI), Y4, Y1; \
	VMULPS 32(DI), Y5, Y2; \
	VFMADD231PS 64(DI), Y6, Y1; \
	VFMADD231PS 96(DI), Y7, Y2; \
	VADDPS Y2, Y1, Y1; \
	MOVWLZX (BX), AX; \
	SHLL $16, AX; \
	MOVL AX, X3; \
	VBROADCASTSS X3, Y3; \
	VFMADD231PS Y3, Y1, acc; \
	ADDQ $32, SI; \
	ADDQ $2, BX; \
	ADDQ $128, DI; \
	DECQ CX

// func dotQ8Asm(q, d *byte, nblocks int, x *float32) float32
// One Q8 row (runtime.QuantizeQ8: int8 values, a BF16 scale a block of
// 32) · x, two blocks in flight (two accumulators).
TEXT ·dotQ8Asm(SB), NOSPLIT, $0-36
	MOVQ q+0(FP), SI
	MOVQ d+8(FP), BX
	MOVQ nblocks+16(FP), CX
	MOVQ x+24(FP), DI
	VXORPS Y0, Y0, Y0
	VXORPS Y9, Y9, Y9
q8loop:
	CMPQ CX, $0
	JLE  q8done
	Q8BLOCK(Y0)
	CMPQ CX, $0
	JLE  q8done
	Q8BLOCK(Y9)
	JMP  q8loop
q8done:
	VADDPS Y9, Y0, Y0
	HSUM
	VZEROUPPER
	MOVSS X0, ret+32(FP)
	RET
