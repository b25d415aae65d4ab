// Package synth writes synthetic gpt-oss models: GPU-ready layout files
// (the format convert.WriteLayout produces, opened by convert.OpenLayout)
// with random weights of a config's real shapes, for benchmarks and for
// engines to run without downloading 13 or 65 GB.
//
// Design decisions:
//
//   - The file format is convert's layout v1 (header, 2 MiB-aligned blocks
//     of 4096-aligned tensors in the original checkpoint's order, JSON
//     tensor table after the data). synth writes it itself from the
//     exported pieces of convert (constants, ModelConfig, LayoutTensor);
//     the tests open every file with convert.OpenLayout and Verify it, so
//     a format change in convert breaks them, not the engines.
//   - Values: BF16 tensors are drawn from a 65536-entry table of a normal
//     distribution's quantiles (one 16-bit random index per value):
//     weights N(0, 0.02), biases N(0, 0.01), norm scales N(1, 0.02), sinks
//     N(0, 0.1). MXFP4 blocks are uniform random bytes (E2M1 values of RMS
//     ≈ 3) with scales 2^-8…2^-6, so expert weights have RMS ≈ 0.02 too.
//     With these, activations stay finite through any depth (the RMSNorms
//     keep every sub-layer's input at unit scale).
//   - Speed: the file is created at its full (sparse) size and filled in
//     4 MiB pieces by GOMAXPROCS goroutines, each piece from its
//     own PRNG stream (PCG seeded by seed, tensor and piece), so the bytes
//     depend only on the config and seed. Each piece is written with
//     pwrite from a per-worker buffer (measured: a writable mapping spent
//     2.5 s of kernel time per GB in page faults) and its CRC-32C taken
//     from the buffer; a tensor's checksum chains its pieces' (the CRC
//     register is linear). It is written to PATH.tmp and renamed, so a
//     reader never sees half a file.
package synth

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/verify"
)

// Config returns a preset's config: "20b" and "120b" are the real models'
// dimensions (GPT-OSS.md §2); "tiny" is testdata/golden/tiny's. Override
// NumHiddenLayers or VocabSize on the result for smaller files.
func Config(name string) (convert.ModelConfig, error) {
	c := convert.ModelConfig{
		NumHiddenLayers: 24, NumExperts: 32, ExpertsPerToken: 4, VocabSize: 201088, HiddenSize: 2880,
		IntermediateSize: 2880, SwigluLimit: 7, HeadDim: 64, NumAttentionHeads: 64, NumKeyValueHeads: 8,
		SlidingWindow: 128, InitialContextLength: 4096, RopeTheta: 150000, RopeScalingFactor: 32,
		RopeNTKAlpha: 1, RopeNTKBeta: 32, RMSNormEps: 1e-5,
	}
	switch name {
	case "20b":
	case "120b":
		c.NumHiddenLayers, c.NumExperts = 36, 128
	case "tiny":
		c.NumHiddenLayers, c.NumExperts, c.VocabSize, c.HiddenSize, c.IntermediateSize = 4, 8, 1024, 128, 64
		c.HeadDim, c.NumAttentionHeads, c.NumKeyValueHeads, c.SlidingWindow = 16, 8, 2, 4
	default:
		return c, fmt.Errorf("synth: no preset %q (have 20b, 120b, tiny)", name)
	}
	return c, nil
}

// Tensor kinds: how the values are drawn.
const (
	kindWeight = iota // BF16 N(0, 0.02)
	kindBias          // BF16 N(0, 0.01)
	kindNorm          // BF16 N(1, 0.02)
	kindSink          // BF16 N(0, 0.1)
	kindBlocks        // U8 uniform
	kindScales        // U8 in 119…121
)

type tensor struct {
	convert.LayoutTensor
	kind int
}

// Plan lists the layout's tensors for c with their offsets (file order)
// and returns the end of the data.
func plan(c convert.ModelConfig) ([]tensor, int64, error) {
	H, I, E, V := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.NumExperts), int64(c.VocabSize)
	q, kv := int64(c.NumAttentionHeads*c.HeadDim), int64(c.NumKeyValueHeads*c.HeadDim)
	if c.NumHiddenLayers <= 0 || H <= 0 || I <= 0 || E <= 0 || V <= 0 || q <= 0 || kv <= 0 || H%32 != 0 || I%32 != 0 {
		return nil, 0, fmt.Errorf("synth: bad config: %d layers, hidden %d, intermediate %d (multiples of 32), %d experts, vocab %d, %d×%d heads",
			c.NumHiddenLayers, H, I, E, V, c.NumAttentionHeads, c.HeadDim)
	}
	// The tensor set is verify's (GPT-OSS.md §3.1, original names, in the
	// layout's order); the layout starts a 2 MiB block at the embedding,
	// at each layer and at the final norm.
	d := verify.Dims{Layers: int64(c.NumHiddenLayers), Experts: E, Hidden: H, Intermediate: I,
		Heads: int64(c.NumAttentionHeads), KVHeads: int64(c.NumKeyValueHeads), HeadDim: int64(c.HeadDim), Vocab: V}
	var out []tensor
	off, group := int64(0), ""
	for _, e := range d.Tensors(verify.LayoutOriginal) {
		if g := layoutBlock(e.Name); g != group || off == 0 {
			group, off = g, alignUp(max(off, convert.LayerAlign), convert.LayerAlign)
		}
		off = alignUp(off, convert.TensorAlign)
		size := convert.DTypeSize[e.DType]
		for _, n := range e.Shape {
			size *= n
		}
		out = append(out, tensor{convert.LayoutTensor{Name: e.Name, DType: e.DType, Shape: e.Shape, Offset: off, Size: size}, kindOf(e.Name)})
		off += size
	}
	return out, off, nil
}

func alignUp(x, a int64) int64 { return (x + a - 1) / a * a }

// layoutBlock is the 2 MiB-aligned block of the layout a tensor opens or
// joins: "embedding", "block.N." or "final".
func layoutBlock(name string) string {
	if name == "embedding.weight" {
		return "embedding"
	}
	if rest, ok := strings.CutPrefix(name, "block."); ok {
		n, _, _ := strings.Cut(rest, ".")
		return "block." + n + "."
	}
	return "final"
}

// kindOf is how a tensor's random values are drawn.
func kindOf(name string) int {
	switch {
	case strings.HasSuffix(name, ".blocks"):
		return kindBlocks
	case strings.HasSuffix(name, ".scales"):
		return kindScales
	case strings.HasSuffix(name, "norm.scale"):
		return kindNorm
	case strings.HasSuffix(name, ".sinks"):
		return kindSink
	case strings.HasSuffix(name, "bias"):
		return kindBias
	}
	return kindWeight
}

// FileSize is the size of the layout file WriteLayout makes for c.
func FileSize(c convert.ModelConfig) (int64, error) {
	ts, end, err := plan(c)
	if err != nil {
		return 0, err
	}
	js, err := metaJSON(c, ts)
	if err != nil {
		return 0, err
	}
	return alignUp(end, convert.TensorAlign) + int64(len(js)), nil
}

// layoutMeta mirrors convert's JSON block.
type layoutMeta struct {
	Format         string                 `json:"format"`
	Version        int                    `json:"version"`
	KernelABI      int                    `json:"kernel_abi"`
	Config         convert.ModelConfig    `json:"config"`
	SourceManifest string                 `json:"source_manifest"`
	Tensors        []convert.LayoutTensor `json:"tensors"`
}

// SourceManifest is what a synthetic layout records as its source.
const SourceManifest = "synthetic"

func metaJSON(c convert.ModelConfig, ts []tensor) ([]byte, error) {
	m := layoutMeta{Format: "gptoss-layout", Version: convert.LayoutVersion, KernelABI: convert.KernelABI, Config: c, SourceManifest: SourceManifest}
	for _, t := range ts {
		lt := t.LayoutTensor
		if lt.CRC32C == "" {
			lt.CRC32C = "00000000"
		}
		m.Tensors = append(m.Tensors, lt)
	}
	return json.Marshal(m)
}

const headerSize = 56

// pieceSize is the unit of parallel filling (a variable: tests make
// tensors span many pieces).
var pieceSize int64 = 4 << 20

var zeroPiece = make([]byte, 4<<20)

// normTable[i] is the (i+0.5)/65536 quantile of N(0,1).
var normTable = sync.OnceValue(func() *[65536]float32 {
	var t [65536]float32
	for i := range t {
		p := (float64(i) + 0.5) / 65536
		t[i] = float32(math.Sqrt2 * math.Erfinv(2*p-1))
	}
	return &t
})

// bf16Table returns the 65536 BF16 encodings of mean + sd·quantile.
func bf16Table(mean, sd float64) *[65536]uint16 {
	n := normTable()
	var t [65536]uint16
	for i := range t {
		f := float32(mean + sd*float64(n[i]))
		b := math.Float32bits(f)
		b += 0x7fff + (b>>16)&1 // round to nearest even
		t[i] = uint16(b >> 16)
	}
	return &t
}

// WriteLayout writes a layout file for c with random weights (the same
// bytes for the same c and seed) to path.
func WriteLayout(path string, c convert.ModelConfig, seed uint64) error {
	if c.RMSNormEps == 0 {
		c.RMSNormEps = 1e-5
	}
	ts, dataEnd, err := plan(c)
	if err != nil {
		return err
	}
	placeholder, err := metaJSON(c, ts)
	if err != nil {
		return err
	}
	jsonOff := alignUp(dataEnd, convert.TensorAlign)
	size := jsonOff + int64(len(placeholder))
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("synth: %s: %w", tmp, err)
	}
	tables := map[int]*[65536]uint16{
		kindWeight: bf16Table(0, 0.02), kindBias: bf16Table(0, 0.01), kindNorm: bf16Table(1, 0.02), kindSink: bf16Table(0, 0.1),
	}
	type job struct{ ti, pi int }
	var jobs []job
	first := make([]int, len(ts)) // each tensor's first job
	for ti, t := range ts {
		first[ti] = len(jobs)
		for p := int64(0); p*pieceSize < t.Size; p++ {
			jobs = append(jobs, job{ti, int(p)})
		}
	}
	// Fill and write the pieces; keep each piece's raw CRC register
	// (from state 0), to chain them per tensor afterwards.
	raw := make([]uint32, len(jobs))
	workers := runtime.GOMAXPROCS(0)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			buf := make([]byte, pieceSize)
			for {
				j := int(next.Add(1)) - 1
				if j >= len(jobs) || errs[w] != nil {
					return
				}
				t := ts[jobs[j].ti]
				lo := int64(jobs[j].pi) * pieceSize
				b := buf[:min(pieceSize, t.Size-lo)]
				fill(b, t.kind, tables[t.kind], rand.NewPCG(seed, uint64(jobs[j].ti)<<32|uint64(jobs[j].pi)))
				raw[j] = ^crc32.Update(0xffffffff, castagnoli, b)
				if _, err := f.WriteAt(b, t.Offset+lo); err != nil {
					errs[w] = fmt.Errorf("synth: %s: %w", tmp, err)
				}
			}
		}(w)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Chain: register after A‖B = (register after A, then len(B) zero
	// bytes) xor (register of B from 0) — the CRC register is linear.
	for ti := range ts {
		t := &ts[ti]
		reg := uint32(0xffffffff)
		for p := int64(0); p*pieceSize < t.Size; p++ {
			n := min(pieceSize, t.Size-p*pieceSize)
			reg = ^crc32.Update(^reg, castagnoli, zeroPiece[:n]) ^ raw[first[ti]+int(p)]
		}
		t.CRC32C = fmt.Sprintf("%08x", ^reg)
	}
	js, err := metaJSON(c, ts)
	if err != nil {
		return err
	}
	if len(js) != len(placeholder) {
		return fmt.Errorf("synth: internal error: JSON block changed length")
	}
	hdr := make([]byte, headerSize)
	copy(hdr, convert.LayoutMagic)
	le := binary.LittleEndian
	le.PutUint32(hdr[8:], convert.LayoutVersion)
	le.PutUint32(hdr[12:], convert.KernelABI)
	le.PutUint64(hdr[16:], convert.LayerAlign)
	le.PutUint64(hdr[24:], uint64(jsonOff-convert.LayerAlign))
	le.PutUint64(hdr[32:], uint64(jsonOff))
	le.PutUint64(hdr[40:], uint64(len(js)))
	le.PutUint64(hdr[48:], uint64(size))
	if _, err := f.WriteAt(js, jsonOff); err != nil {
		return fmt.Errorf("synth: %s: %w", tmp, err)
	}
	if _, err := f.WriteAt(hdr, 0); err != nil {
		return fmt.Errorf("synth: %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	ok = true
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func fill(b []byte, kind int, tab *[65536]uint16, rng *rand.PCG) {
	switch kind {
	case kindBlocks:
		i := 0
		for ; i+8 <= len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
		}
		for ; i < len(b); i++ {
			b[i] = byte(rng.Uint64())
		}
	case kindScales:
		for i := range b {
			b[i] = byte(119 + rng.Uint64()%3) // 2^-8…2^-6
		}
	default: // BF16 from the table, four values per random word
		n := len(b) / 2
		i := 0
		for ; i+4 <= n; i += 4 {
			r := rng.Uint64()
			binary.LittleEndian.PutUint64(b[2*i:], uint64(tab[uint16(r)])|uint64(tab[uint16(r>>16)])<<16|
				uint64(tab[uint16(r>>32)])<<32|uint64(tab[uint16(r>>48)])<<48)
		}
		for ; i < n; i++ {
			binary.LittleEndian.PutUint16(b[2*i:], tab[uint16(rng.Uint64())])
		}
	}
}
