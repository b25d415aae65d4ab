package runtime

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	gort "runtime"
	"testing"
)

func bf16Bytes(v []float32) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		h := math.Float32bits(x) >> 16 // truncation: v is made of BF16 values
		b[2*i], b[2*i+1] = byte(h), byte(h>>8)
	}
	return b
}

func TestQuantizeQ8(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const rows, cols = 37, 96
	v := make([]float32, rows*cols)
	for i := range v {
		x := float32(rng.NormFloat64() * math.Pow(10, float64(i/cols%7-4))) // rows of scales 1e-4 … 1e2
		v[i] = math.Float32frombits(math.Float32bits(x) &^ 0xffff)
	}
	// an outlier, an all-zero block and a block with an exact tie (w/D = k + ½)
	v[5] = 3000
	for i := 2 * cols; i < 2*cols+32; i++ {
		v[i] = 0
	}
	for i := 3 * cols; i < 3*cols+32; i++ {
		v[i] = 0
	}
	v[3*cols], v[3*cols+1], v[3*cols+2] = 127, 2.5, -3.5 // D = 1: 2.5 → 2, −3.5 → −4
	w := bf16Bytes(v)
	nq, nd := Q8Sizes(rows, cols)
	q, d := make([]byte, nq), make([]byte, nd)
	if err := QuantizeQ8(q, d, w, rows, cols, 1); err != nil {
		t.Fatal(err)
	}
	for b := 0; b < rows*cols/Q8Block; b++ {
		var amax float32
		for i := b * Q8Block; i < (b+1)*Q8Block; i++ {
			amax = max(amax, float32(math.Abs(float64(v[i]))))
		}
		D := Q8Scale(d, b)
		if amax == 0 {
			if D != 0 {
				t.Fatalf("block %d: zero block has scale %g", b, D)
			}
		} else {
			// the smallest BF16 ≥ amax/127: D ≥ amax/127 and the BF16 below is not
			below := math.Float32frombits((math.Float32bits(D)>>16 - 1) << 16)
			if D < amax/127 || below >= amax/127 {
				t.Fatalf("block %d: scale %g for max %g (amax/127 = %g)", b, D, amax, amax/127)
			}
		}
		for i := b * Q8Block; i < (b+1)*Q8Block; i++ {
			got := float32(int8(q[i])) * D
			if e := math.Abs(float64(got - v[i])); e > float64(D)/2*(1+1e-6) {
				t.Fatalf("value %d: %g quantized to %g (scale %g): error %g > D/2", i, v[i], got, D, e)
			}
		}
	}
	if D := Q8Scale(d, 3*cols/Q8Block); D != 1 {
		t.Fatalf("tie block's scale %g, want 1", D)
	}
	if a, b := int8(q[3*cols+1]), int8(q[3*cols+2]); a != 2 || b != -4 {
		t.Fatalf("ties: 2.5 → %d, −3.5 → %d; want 2 and −4 (to even)", a, b)
	}
	if int8(q[3*cols]) != 127 {
		t.Fatalf("the block's max → %d, want 127", int8(q[3*cols]))
	}
	// any number of workers gives the same bytes
	q2, d2 := make([]byte, nq), make([]byte, nd)
	if err := QuantizeQ8(q2, d2, w, rows, cols, 7); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(q, q2) || !bytes.Equal(d, d2) {
		t.Fatal("7 workers quantized differently from 1")
	}
}

func TestQuantizeQ8Refuses(t *testing.T) {
	for _, c := range []struct {
		rows, cols, w, q, d int
	}{
		{2, 40, 160, 80, 4}, // columns not a multiple of 32
		{2, 32, 120, 64, 4}, // short weights
		{2, 32, 128, 63, 4}, // short values
		{2, 32, 128, 64, 2}, // short scales
		{-1, 32, 0, 0, 0},   // negative rows
	} {
		if err := QuantizeQ8(make([]byte, c.q), make([]byte, c.d), make([]byte, c.w), c.rows, c.cols, 2); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	// NaN and Inf blocks become zero blocks with a finite scale
	v := make([]float32, 64)
	v[3], v[40] = float32(math.NaN()), float32(math.Inf(-1))
	q, d := make([]byte, 64), make([]byte, 4)
	if err := QuantizeQ8(q, d, bf16Bytes(v), 1, 64, 1); err != nil {
		t.Fatal(err)
	}
	for j := 0; j < 2; j++ {
		if Q8Scale(d, j) != 0 {
			t.Errorf("block %d: scale %g", j, Q8Scale(d, j))
		}
	}
}

func TestBf16Up(t *testing.T) {
	for _, c := range []struct {
		x    float32
		want float32
	}{{1, 1}, {1.001, 1.0078125}, {127.0 / 127, 1}, {3e-38, 3.0000012e-38}} {
		got := math.Float32frombits(uint32(bf16Up(c.x)) << 16)
		if got < c.x || (c.x == 1 && got != 1) || (c.x == 1.001 && got != c.want) {
			t.Errorf("bf16Up(%g) = %g", c.x, got)
		}
	}
}

// BenchmarkQuantizeQ8: the load-time cost of --decode-weights q8 (bytes/s
// of BF16 weights quantized), one worker and all of them.
func BenchmarkQuantizeQ8(b *testing.B) {
	const rows, cols = 4096, 2880
	rng := rand.New(rand.NewPCG(5, 6))
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * 0.02)
	}
	w := bf16Bytes(v)
	nq, nd := Q8Sizes(rows, cols)
	q, d := make([]byte, nq), make([]byte, nd)
	for _, workers := range []int{1, gort.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			b.SetBytes(int64(len(w)))
			for b.Loop() {
				if err := QuantizeQ8(q, d, w, rows, cols, workers); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// quantizeBlockPlain is quantizeBlock as first written (float magnitudes,
// a copy of the block): the fast one must give the same bytes.
func quantizeBlockPlain(q, d, w []byte) {
	var v [Q8Block]float32
	var amax float32
	for i := range v {
		v[i] = bf16At(w, i)
		if a := math.Float32frombits(math.Float32bits(v[i]) &^ (1 << 31)); a > amax || a != a {
			amax = a
		}
	}
	if amax == 0 || amax != amax || math.IsInf(float64(amax), 0) {
		clear(q)
		d[0], d[1] = 0, 0
		return
	}
	s := bf16Up(amax / 127)
	sf := math.Float32frombits(uint32(s) << 16)
	const magic = 3 << 22
	for i, x := range v {
		t := float32(x / sf)
		t = float32(t + magic)
		r := t - magic
		q[i] = byte(int8(max(-127, min(127, r))))
	}
	d[0], d[1] = byte(s), byte(s>>8)
}

// TestQuantizeBlockSame: random BF16 bit patterns of every exponent (NaN,
// Inf, subnormals and zeros included) and blocks of one scale quantize to
// the same bytes as the plain loops.
func TestQuantizeBlockSame(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	w := make([]byte, 2*Q8Block)
	q1, q2 := make([]byte, Q8Block), make([]byte, Q8Block)
	d1, d2 := make([]byte, 2), make([]byte, 2)
	for n := range 200000 {
		exp := rng.IntN(256)
		for i := 0; i < Q8Block; i++ {
			h := uint16(rng.Uint32())
			switch n % 4 {
			case 0: // any pattern
			case 1: // one exponent, some smaller
				h = h&0x807f | uint16(max(0, exp-rng.IntN(4)))<<7
			case 2: // subnormals and zeros
				h &= 0x807f
				if rng.IntN(3) == 0 {
					h &= 0x8000
				}
			case 3: // ordinary weights
				h = h&0x807f | uint16(110+rng.IntN(20))<<7
			}
			w[2*i], w[2*i+1] = byte(h), byte(h>>8)
		}
		quantizeBlock(q1, d1, w)
		quantizeBlockPlain(q2, d2, w)
		if !bytes.Equal(q1, q2) || !bytes.Equal(d1, d2) {
			t.Fatalf("block %x: %x %x, plain %x %x", w, q1, d1, q2, d2)
		}
	}
}
