package runtime

import (
	"fmt"
	"math"
	"strings"
	"sync"
)

// Q8 decode weights (Options.DecodeQ8).
//
// At batch 1 a decode step reads every weight once, and the BF16 attention
// and unembedding matrices are two thirds of those bytes (RUNTIME-ANCHORS.md
// §2: 2.43 of 3.71 GB a token for 20b). With DecodeQ8 an engine quantizes
// the attention's QKV and output projections and the unembedding, once at
// load, to 8-bit values with one BF16 scale a block of 32 (what llama.cpp's
// Q8_0 stores, 8.5 bits a weight) and uses them for one-token forwards
// (decode). Forwards of several tokens (prefill) keep the BF16 weights, so
// the prompt is computed at full precision and the model holds both copies
// (+0.53 bytes a quantized weight). The router, the embedding and the
// MXFP4 experts are unchanged.
//
// Why at load and not in the converter: the quantization is a pure function
// of the BF16 weights that takes well under a second on the machines that
// run the CUDA engine, the layout stays one file format that every tool
// (verify, GGUF export, mirrors) already knows, and the choice stays the
// user's at every start rather than a second conversion of a 13–65 GB
// layout. Both engines call QuantizeQ8, so they use the same bytes.
//
// The format of a [rows][cols] BF16 matrix (cols a multiple of 32):
//
//   - Q: [rows][cols] int8, row-major;
//   - D: [rows][cols/32] BF16 (little-endian), one scale a block of 32
//     consecutive values of a row;
//   - weight ≈ Q·D.
//
// D is the smallest BF16 value ≥ max|w|/127 over the block (rounded up, so
// that no value needs clamping and the BF16 scale adds no error of its
// own), Q = round-to-nearest-even(w/D) in float32; an all-zero block has
// D = 0 and Q = 0. The error of a weight is at most D/2 ≈ max|w|/254.
const Q8Block = 32

// Q8DecodeTensor says whether the layout tensor name is one that
// DecodeQ8 quantizes (QKV, attention output, unembedding).
func Q8DecodeTensor(name string) bool {
	return name == "unembedding.weight" || strings.HasSuffix(name, ".attn.qkv.weight") || strings.HasSuffix(name, ".attn.out.weight")
}

// Q8Sizes returns the bytes of Q and D for a [rows][cols] matrix.
func Q8Sizes(rows, cols int) (q, d int) { return rows * cols, rows * cols / Q8Block * 2 }

// QuantizeQ8 quantizes the BF16 matrix w [rows][cols] into q and d (sizes
// from Q8Sizes), over up to workers goroutines (≤ 0: one).
func QuantizeQ8(q, d, w []byte, rows, cols, workers int) error {
	if cols%Q8Block != 0 || rows < 0 {
		return fmt.Errorf("q8: %d×%d: columns must be a multiple of %d", rows, cols, Q8Block)
	}
	nq, nd := Q8Sizes(rows, cols)
	if len(w) != 2*rows*cols || len(q) != nq || len(d) != nd {
		return fmt.Errorf("q8: %d×%d: %d weight bytes, %d value and %d scale bytes (want %d, %d, %d)",
			rows, cols, len(w), len(q), len(d), 2*rows*cols, nq, nd)
	}
	blocks := rows * cols / Q8Block
	workers = max(1, min(workers, blocks/4096+1))
	var wg sync.WaitGroup
	per := (blocks + workers - 1) / workers
	for i := 0; i < workers; i++ {
		lo, hi := i*per, min((i+1)*per, blocks)
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := lo; b < hi; b++ {
				quantizeBlock(q[b*Q8Block:(b+1)*Q8Block], d[2*b:2*b+2], w[2*b*Q8Block:2*(b+1)*Q8Block])
			}
		}()
	}
	wg.Wait()
	return nil
}

func bf16At(w []byte, i int) float32 {
	return math.Float32frombits(uint32(w[2*i])<<16 | uint32(w[2*i+1])<<24)
}

// quantizeBlock quantizes 32 BF16 values (64 bytes) into 32 int8 and one
// BF16 scale. (Array pointers, and the maximum of the magnitudes' bits as
// integers — the same order as the magnitudes for every non-NaN float, and
// above Inf's for NaN — keep the loops free of bounds checks and branches:
// ~2.5× the speed of the plain loops, same bytes, TestQuantizeBlockSame.)
func quantizeBlock(q, d, w []byte) {
	wb, qb := (*[2 * Q8Block]byte)(w), (*[Q8Block]byte)(q)
	var amax uint32
	for i := 0; i < Q8Block; i++ {
		amax = max(amax, (uint32(wb[2*i])|uint32(wb[2*i+1])<<8)&0x7fff)
	}
	if amax == 0 || amax >= 0x7f80 {
		// zero, NaN or Inf: a zero block (a model with NaN weights is
		// broken either way; the scale must stay finite)
		clear(qb[:])
		d[0], d[1] = 0, 0
		return
	}
	s := bf16Up(math.Float32frombits(amax<<16) / 127)
	sf := math.Float32frombits(uint32(s) << 16)
	// (r + 1.5·2^23) − 1.5·2^23 in float32 rounds |r| < 2^22 to an
	// integer, ties to even (the sum lies in [2^23, 2^24), where the ulp is 1)
	const magic = 3 << 22
	for i := 0; i < Q8Block; i++ {
		x := math.Float32frombits(uint32(wb[2*i])<<16 | uint32(wb[2*i+1])<<24)
		t := float32(x / sf) // the conversions keep each step rounded to float32
		t = float32(t + magic)
		r := int32(t - magic) // exact: an integer in [−127, 127] (sf ≥ amax/127); clamped all the same
		qb[i] = byte(int8(max(-127, min(127, r))))
	}
	d[0], d[1] = byte(s), byte(s>>8)
}

// bf16Up is the smallest BF16 value ≥ x (x finite and > 0), as its bits.
func bf16Up(x float32) uint16 {
	b := math.Float32bits(x)
	h := uint16(b >> 16)
	if b&0xffff != 0 {
		h++
	}
	return h
}

// Q8Scale returns D of block j of a row's scales (BF16 bytes) as float32.
func Q8Scale(d []byte, j int) float32 { return bf16At(d, j) }
