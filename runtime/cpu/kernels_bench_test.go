package cpu

import (
	"math/rand/v2"
	"testing"
)

// Kernel micro-benchmarks, assembly and pure Go, on L2-resident rows of
// 20b's width (go test -run '^$' -bench Kernel ./runtime/cpu/). The
// reported MB/s is weight bytes streamed.

func benchKernels(b *testing.B, f func(b *testing.B)) {
	savedAsm, saved512 := useAsm, useAVX512
	defer func() { useAsm, useAVX512 = savedAsm, saved512 }()
	if savedAsm {
		if saved512 {
			b.Run("avx512", f)
		}
		useAVX512 = false
		b.Run("asm", f)
	}
	useAsm = false
	b.Run("go", f)
}

const kCols, kRows = 2880, 32

func BenchmarkKernelDotBF16(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	w := randBF16(r, kRows*kCols, 1)
	x := randF32(r, kCols, 1)
	benchKernels(b, func(b *testing.B) {
		b.SetBytes(2 * kCols)
		var s float32
		for i := 0; i < b.N; i++ {
			row := i % kRows
			s += dotBF16(w[2*row*kCols:2*(row+1)*kCols], x)
		}
		_ = s
	})
}

func BenchmarkKernelDotMXFP4(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	blocks, scales := randMXFP4(r, kRows, kCols)
	x := randF32(r, kCols, 1)
	benchKernels(b, func(b *testing.B) {
		b.SetBytes(kCols * 17 / 32)
		var s float32
		for i := 0; i < b.N; i++ {
			row := i % kRows
			s += dotMXFP4(blocks[row*kCols/2:(row+1)*kCols/2], scales[row*kCols/32:(row+1)*kCols/32], x)
		}
		_ = s
	})
}

// One 16-row f32 tile against 64 tokens: 2·16·64·2880 flops per op.
func BenchmarkKernelGemmTile(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	n := 64
	buf := randF32(r, rowTile*kCols, 1)
	x := randF32(r, n*kCols, 1)
	out := make([]float32, n*rowTile)
	benchKernels(b, func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			gemmTile(out, buf, x, n, rowTile, kCols, 0, rowTile)
		}
		b.ReportMetric(float64(b.N)*2*rowTile*float64(n)*kCols/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
}
