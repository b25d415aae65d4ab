package convert

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Layout format constants: the GPU-ready layout, version 1.
//
// One file per model, written by WriteLayout in a single sequential pass and
// memory-mapped by OpenLayout. All integers are little-endian.
//
//	offset  size  field
//	0       8     magic "GPTOSSL1"
//	8       4     u32 layout version (LayoutVersion, 1)
//	12      4     u32 kernel ABI version (KernelABI, 1)
//	16      8     u64 data offset (2 MiB: LayerAlign)
//	24      8     u64 data length (ends at the JSON block)
//	32      8     u64 JSON block offset
//	40      8     u64 JSON block length
//	48      8     u64 file size
//	56      …     zero up to the data offset
//
// Tensor data, layer-major: a block holding embedding.weight; one block per
// layer n holding block.n.* in the order of the original checkpoint (attn
// norm, qkv weight and bias, sinks, out weight and bias, mlp norm, gate
// weight and bias, mlp1 blocks/scales/bias, mlp2 blocks/scales/bias); a last
// block holding norm.scale and unembedding.weight. Every block starts on a
// 2 MiB boundary (huge pages), every tensor on a 4096-byte boundary; the gaps
// are zero (holes in a file). Tensors are the source bytes unchanged: BF16
// stays BF16 and the MXFP4 blocks/scales stay 4-bit, byte for byte. A
// Hugging Face source is renamed to the original names and its q/k/v
// projections fused as in the original checkpoint (rows q ‖ k ‖ v, bias
// likewise), so both published formats of one model give the same tensor
// bytes (and, given the same source digest, the same file).
//
// The JSON block follows the data (so one streaming pass can record each
// tensor's checksum): {"format", "version", "kernel_abi", "config" (the model
// config normalised to the original/config.json names plus rms_norm_eps),
// "source_manifest" (digest of the cache manifest it was made from),
// "tensors": [{name, dtype, shape, offset (absolute), size, crc32c (hex of
// the CRC-32C of the tensor's bytes)}] in file order}. The file has no
// timestamps: the same checkpoint and source digest always give the same
// bytes and so the same SHA-256.
const (
	LayoutMagic   = "GPTOSSL1"
	LayoutVersion = 1
	// KernelABI is the version of the tensor arrangement the runtime's
	// kernels expect; it changes when convert rearranges bytes differently.
	KernelABI = 1
	// MediaTypeLayout is the OCI artifact type of a layout blob.
	MediaTypeLayout = "application/vnd.gptoss.layout.v1"

	TensorAlign = 4096
	LayerAlign  = 2 << 20
	headerSize  = 56
)

// ErrLayoutVersion means a layout file was written by another gptoss.
var ErrLayoutVersion = errors.New("unsupported layout version")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ModelConfig is the model configuration recorded in a layout, under the
// original/config.json names (HF configs are mapped, GPT-OSS.md §2.2).
type ModelConfig struct {
	NumHiddenLayers      int     `json:"num_hidden_layers"`
	NumExperts           int     `json:"num_experts"`
	ExpertsPerToken      int     `json:"experts_per_token"`
	VocabSize            int     `json:"vocab_size"`
	HiddenSize           int     `json:"hidden_size"`
	IntermediateSize     int     `json:"intermediate_size"`
	SwigluLimit          float64 `json:"swiglu_limit"`
	HeadDim              int     `json:"head_dim"`
	NumAttentionHeads    int     `json:"num_attention_heads"`
	NumKeyValueHeads     int     `json:"num_key_value_heads"`
	SlidingWindow        int     `json:"sliding_window"`
	InitialContextLength int     `json:"initial_context_length"`
	RopeTheta            float64 `json:"rope_theta"`
	RopeScalingFactor    float64 `json:"rope_scaling_factor"`
	RopeNTKAlpha         float64 `json:"rope_ntk_alpha"`
	RopeNTKBeta          float64 `json:"rope_ntk_beta"`
	RMSNormEps           float64 `json:"rms_norm_eps"`
}

// ParseModelConfig reads a gpt-oss config.json (HF, model_type gpt_oss) or
// original/config.json into the normalised form.
func ParseModelConfig(b []byte) (ModelConfig, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return ModelConfig{}, fmt.Errorf("model config: %w", err)
	}
	var c ModelConfig
	if _, hf := raw["model_type"]; hf {
		var h struct {
			ModelType            string  `json:"model_type"`
			NumHiddenLayers      int     `json:"num_hidden_layers"`
			NumLocalExperts      int     `json:"num_local_experts"`
			NumExpertsPerTok     int     `json:"num_experts_per_tok"`
			VocabSize            int     `json:"vocab_size"`
			HiddenSize           int     `json:"hidden_size"`
			IntermediateSize     int     `json:"intermediate_size"`
			SwigluLimit          float64 `json:"swiglu_limit"`
			HeadDim              int     `json:"head_dim"`
			NumAttentionHeads    int     `json:"num_attention_heads"`
			NumKeyValueHeads     int     `json:"num_key_value_heads"`
			SlidingWindow        int     `json:"sliding_window"`
			InitialContextLength int     `json:"initial_context_length"`
			RopeTheta            float64 `json:"rope_theta"`
			RMSNormEps           float64 `json:"rms_norm_eps"`
			RopeScaling          struct {
				Factor   float64 `json:"factor"`
				BetaFast float64 `json:"beta_fast"`
				BetaSlow float64 `json:"beta_slow"`
			} `json:"rope_scaling"`
		}
		if err := json.Unmarshal(b, &h); err != nil {
			return c, fmt.Errorf("model config: %w", err)
		}
		if h.ModelType != "gpt_oss" {
			return c, fmt.Errorf("model config: model_type %q is not gpt_oss", h.ModelType)
		}
		c = ModelConfig{h.NumHiddenLayers, h.NumLocalExperts, h.NumExpertsPerTok, h.VocabSize, h.HiddenSize,
			h.IntermediateSize, h.SwigluLimit, h.HeadDim, h.NumAttentionHeads, h.NumKeyValueHeads, h.SlidingWindow,
			h.InitialContextLength, h.RopeTheta, h.RopeScaling.Factor, h.RopeScaling.BetaSlow, h.RopeScaling.BetaFast, h.RMSNormEps}
	} else if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("model config: %w", err)
	}
	if c.RMSNormEps == 0 {
		c.RMSNormEps = 1e-5 // the original config has none; the reference hard-codes it
	}
	if c.NumHiddenLayers <= 0 || c.NumExperts <= 0 || c.HiddenSize <= 0 || c.VocabSize <= 0 {
		return c, fmt.Errorf("model config: not a gpt-oss config (layers %d, experts %d, hidden %d, vocab %d)",
			c.NumHiddenLayers, c.NumExperts, c.HiddenSize, c.VocabSize)
	}
	return c, nil
}

// LayoutTensor is one entry of a layout's tensor table.
type LayoutTensor struct {
	Name   string  `json:"name"`
	DType  string  `json:"dtype"`
	Shape  []int64 `json:"shape"`
	Offset int64   `json:"offset"`
	Size   int64   `json:"size"`
	CRC32C string  `json:"crc32c"`
}

type layoutJSON struct {
	Format         string         `json:"format"`
	Version        int            `json:"version"`
	KernelABI      int            `json:"kernel_abi"`
	Config         ModelConfig    `json:"config"`
	SourceManifest string         `json:"source_manifest"`
	Tensors        []LayoutTensor `json:"tensors"`
}

// plannedTensor is a layout tensor and the source tensors whose bytes,
// concatenated, make it.
type plannedTensor struct {
	LayoutTensor
	parts []TensorInfo
}

var layerSuffixes = []string{
	"attn.norm.scale", "attn.qkv.weight", "attn.qkv.bias", "attn.sinks", "attn.out.weight", "attn.out.bias",
	"mlp.norm.scale", "mlp.gate.weight", "mlp.gate.bias",
	"mlp.mlp1_weight.blocks", "mlp.mlp1_weight.scales", "mlp.mlp1_bias",
	"mlp.mlp2_weight.blocks", "mlp.mlp2_weight.scales", "mlp.mlp2_bias",
}

// hfNames maps an original-layout name (with {n} for the layer) to its HF
// source tensors.
var hfNames = map[string][]string{
	"embedding.weight":       {"model.embed_tokens.weight"},
	"norm.scale":             {"model.norm.weight"},
	"unembedding.weight":     {"lm_head.weight"},
	"attn.norm.scale":        {"input_layernorm.weight"},
	"attn.qkv.weight":        {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"},
	"attn.qkv.bias":          {"self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"},
	"attn.sinks":             {"self_attn.sinks"},
	"attn.out.weight":        {"self_attn.o_proj.weight"},
	"attn.out.bias":          {"self_attn.o_proj.bias"},
	"mlp.norm.scale":         {"post_attention_layernorm.weight"},
	"mlp.gate.weight":        {"mlp.router.weight"},
	"mlp.gate.bias":          {"mlp.router.bias"},
	"mlp.mlp1_weight.blocks": {"mlp.experts.gate_up_proj_blocks"},
	"mlp.mlp1_weight.scales": {"mlp.experts.gate_up_proj_scales"},
	"mlp.mlp1_bias":          {"mlp.experts.gate_up_proj_bias"},
	"mlp.mlp2_weight.blocks": {"mlp.experts.down_proj_blocks"},
	"mlp.mlp2_weight.scales": {"mlp.experts.down_proj_scales"},
	"mlp.mlp2_bias":          {"mlp.experts.down_proj_bias"},
}

var layerRE = regexp.MustCompile(`^(?:model\.layers|block)\.(\d+)\.`)

func alignUp(x, a int64) int64 { return (x + a - 1) / a * a }

// planLayout lists the layout's tensors with offsets, in file order.
func planLayout(c *Checkpoint, layers int) ([]plannedTensor, int64, error) {
	_, hf := c.Tensor("model.embed_tokens.weight")
	if _, orig := c.Tensor("embedding.weight"); !hf && !orig {
		return nil, 0, fmt.Errorf("convert: %s is not a gpt-oss checkpoint (no embedding tensor)", c.Dir)
	}
	// Count layers in the checkpoint and check the config agrees.
	maxLayer := -1
	for _, n := range c.Names() {
		if m := layerRE.FindStringSubmatch(n); m != nil {
			i, _ := strconv.Atoi(m[1])
			maxLayer = max(maxLayer, i)
		}
	}
	if maxLayer+1 != layers {
		return nil, 0, fmt.Errorf("convert: the config says %d layers, the checkpoint has %d", layers, maxLayer+1)
	}
	used := map[string]bool{}
	source := func(name string, layer int) ([]TensorInfo, error) {
		var names []string
		if hf {
			key := name
			prefix := ""
			if layer >= 0 {
				key = strings.TrimPrefix(name, fmt.Sprintf("block.%d.", layer))
				prefix = fmt.Sprintf("model.layers.%d.", layer)
			}
			for _, s := range hfNames[key] {
				names = append(names, prefix+s)
			}
		} else {
			names = []string{name}
		}
		var parts []TensorInfo
		for _, n := range names {
			t, ok := c.Tensor(n)
			if !ok {
				return nil, fmt.Errorf("convert: tensor %s missing from %s", n, c.Dir)
			}
			used[n] = true
			parts = append(parts, t)
		}
		return parts, nil
	}
	var blocks [][]string
	blocks = append(blocks, []string{"embedding.weight"})
	for n := 0; n < layers; n++ {
		var b []string
		for _, s := range layerSuffixes {
			b = append(b, fmt.Sprintf("block.%d.%s", n, s))
		}
		blocks = append(blocks, b)
	}
	blocks = append(blocks, []string{"norm.scale", "unembedding.weight"})
	var out []plannedTensor
	off := int64(LayerAlign)
	for bi, b := range blocks {
		off = alignUp(off, LayerAlign)
		for _, name := range b {
			layer := bi - 1
			if bi == 0 || bi == len(blocks)-1 {
				layer = -1
			}
			parts, err := source(name, layer)
			if err != nil {
				return nil, 0, err
			}
			t, err := fuse(name, parts)
			if err != nil {
				return nil, 0, err
			}
			off = alignUp(off, TensorAlign)
			t.Offset = off
			off += t.Size
			out = append(out, t)
		}
	}
	var extra []string
	for _, n := range c.Names() {
		if !used[n] {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		return nil, 0, fmt.Errorf("convert: %d tensors of %s have no place in the layout (first: %s)", len(extra), c.Dir, extra[0])
	}
	return out, off, nil
}

// fuse makes one layout tensor of source parts concatenated along the first
// dimension (q ‖ k ‖ v); one part is taken as is.
func fuse(name string, parts []TensorInfo) (plannedTensor, error) {
	p0 := parts[0]
	t := plannedTensor{LayoutTensor: LayoutTensor{Name: name, DType: p0.DType, Shape: append([]int64(nil), p0.Shape...)}, parts: parts}
	t.Size = p0.Size
	for _, p := range parts[1:] {
		if p.DType != p0.DType || len(p.Shape) != len(p0.Shape) || len(p.Shape) == 0 {
			return t, fmt.Errorf("convert: cannot fuse %s: %s %v and %s %v", name, p0.Name, p0.Shape, p.Name, p.Shape)
		}
		for i := 1; i < len(p.Shape); i++ {
			if p.Shape[i] != p0.Shape[i] {
				return t, fmt.Errorf("convert: cannot fuse %s: %s %v and %s %v", name, p0.Name, p0.Shape, p.Name, p.Shape)
			}
		}
		t.Shape[0] += p.Shape[0]
		t.Size += p.Size
	}
	return t, nil
}

// WriteLayout writes the layout of checkpoint c to w in one sequential pass,
// tensor by tensor straight from the checkpoint's mapping (memory does not
// grow with the model), and returns the SHA-256 hex of the bytes written.
// config is the model's config.json (HF) or original/config.json;
// sourceDigest is the cache manifest the checkpoint came from.
func WriteLayout(w io.Writer, c *Checkpoint, config []byte, sourceDigest string) (string, error) {
	cfg, err := ParseModelConfig(config)
	if err != nil {
		return "", err
	}
	plan, dataEnd, err := planLayout(c, cfg.NumHiddenLayers)
	if err != nil {
		return "", err
	}
	meta := layoutJSON{Format: "gptoss-layout", Version: LayoutVersion, KernelABI: KernelABI, Config: cfg, SourceManifest: sourceDigest}
	for _, t := range plan {
		lt := t.LayoutTensor
		lt.CRC32C = "00000000" // same length as the real value: fixes the JSON length up front
		meta.Tensors = append(meta.Tensors, lt)
	}
	placeholder, err := json.Marshal(meta)
	if err != nil {
		return "", err
	}
	jsonOff := alignUp(dataEnd, TensorAlign)
	fileSize := jsonOff + int64(len(placeholder))
	hdr := make([]byte, headerSize)
	copy(hdr, LayoutMagic)
	binary.LittleEndian.PutUint32(hdr[8:], LayoutVersion)
	binary.LittleEndian.PutUint32(hdr[12:], KernelABI)
	binary.LittleEndian.PutUint64(hdr[16:], LayerAlign)
	binary.LittleEndian.PutUint64(hdr[24:], uint64(jsonOff-LayerAlign))
	binary.LittleEndian.PutUint64(hdr[32:], uint64(jsonOff))
	binary.LittleEndian.PutUint64(hdr[40:], uint64(len(placeholder)))
	binary.LittleEndian.PutUint64(hdr[48:], uint64(fileSize))

	hw := newHashingWriter(w)
	defer hw.closeSources()
	if err := hw.write(hdr); err != nil {
		return "", err
	}
	for i, t := range plan {
		if err := hw.pad(t.Offset); err != nil {
			return "", err
		}
		crc := uint32(0)
		for _, p := range t.parts {
			b := c.Bytes(p)
			var src *os.File
			if hw.f != nil {
				if src, err = hw.source(c.Files[p.File].Path); err != nil {
					return "", err
				}
			}
			for at := int64(0); at < int64(len(b)); {
				n := min(int64(len(b))-at, 64<<20)
				chunk := b[at : at+n]
				if err := hw.copy(src, p.Start+at, chunk, func() { crc = crc32.Update(crc, crcTable, chunk) }); err != nil {
					return "", err
				}
				unmapPages(chunk)
				at += n
			}
		}
		meta.Tensors[i].CRC32C = fmt.Sprintf("%08x", crc)
	}
	js, err := json.Marshal(meta)
	if err != nil {
		return "", err
	}
	if len(js) != len(placeholder) {
		return "", fmt.Errorf("convert: internal error: JSON block changed length")
	}
	if err := hw.pad(jsonOff); err != nil {
		return "", err
	}
	if err := hw.write(js); err != nil {
		return "", err
	}
	if hw.f != nil { // leave the file offset at the end, as sequential writes would
		if _, err := hw.f.Seek(hw.off, io.SeekStart); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(hw.h.Sum(nil)), nil
}

// unmapPages drops the page-table entries of the whole pages inside b, a view
// of a read-only file mapping, so resident memory stays flat while a large
// checkpoint streams through (the pages stay in the page cache; a later
// access faults them back in).
func unmapPages(b []byte) {
	if len(b) == 0 {
		return
	}
	ps := uintptr(os.Getpagesize())
	p := uintptr(unsafe.Pointer(&b[0]))
	skip := (ps - p%ps) % ps
	if uintptr(len(b)) <= skip {
		return
	}
	n := (uintptr(len(b)) - skip) / ps * ps
	if n > 0 {
		unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(&b[0]), skip)), n), unix.MADV_DONTNEED)
	}
}

// hashingWriter writes to w and hashes the same bytes, the hash of a chunk
// running while the chunk is written. When w is a regular file at offset 0
// it writes by offset instead: gaps stay holes (read back as zeros) and
// tensor bytes are copied file to file in the kernel (copy_file_range, as
// cp does), so user space only hashes them from the source mapping.
type hashingWriter struct {
	w    io.Writer
	f    *os.File // w as a regular file, for the fast path; nil otherwise
	h    hash.Hash
	off  int64
	srcs map[string]*os.File
}

var zeros = make([]byte, 1<<20)

func newHashingWriter(w io.Writer) *hashingWriter {
	hw := &hashingWriter{w: w, h: sha256.New(), srcs: map[string]*os.File{}}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			if pos, err := f.Seek(0, io.SeekCurrent); err == nil && pos == 0 {
				hw.f = f
			}
		}
	}
	return hw
}

// hashing runs the hash of b beside fn.
func (hw *hashingWriter) hashing(b []byte, fn func() error) error {
	done := make(chan struct{})
	go func() { hw.h.Write(b); close(done) }()
	err := fn()
	<-done
	hw.off += int64(len(b))
	return err
}

func (hw *hashingWriter) write(b []byte) error {
	return hw.hashing(b, func() error {
		if hw.f != nil {
			_, err := hw.f.WriteAt(b, hw.off)
			return err
		}
		_, err := hw.w.Write(b)
		return err
	})
}

// copy writes b, which is the bytes of src at srcOff, and runs also (while
// the hash still runs).
func (hw *hashingWriter) copy(src *os.File, srcOff int64, b []byte, also func()) error {
	if hw.f == nil || src == nil {
		defer also()
		return hw.write(b)
	}
	return hw.hashing(b, func() error {
		defer also()
		roff, woff, left := srcOff, hw.off, len(b)
		for left > 0 {
			n, err := unix.CopyFileRange(int(src.Fd()), &roff, int(hw.f.Fd()), &woff, left, 0)
			if err != nil || n == 0 {
				// No in-kernel copy here (another filesystem, old kernel):
				// write the rest from the mapping.
				done := len(b) - left
				_, werr := hw.f.WriteAt(b[done:], hw.off+int64(done))
				return werr
			}
			left -= n
		}
		return nil
	})
}

// pad advances to offset to with zeros: holes in a file, else written.
func (hw *hashingWriter) pad(to int64) error {
	for hw.off < to {
		z := zeros[:min(int64(len(zeros)), to-hw.off)]
		if hw.f != nil {
			hw.h.Write(z)
			hw.off += int64(len(z))
			continue
		}
		if err := hw.write(z); err != nil {
			return err
		}
	}
	return nil
}

// source opens (once) a checkpoint file for copy_file_range.
func (hw *hashingWriter) source(path string) (*os.File, error) {
	if f, ok := hw.srcs[path]; ok {
		return f, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	hw.srcs[path] = f
	return f, nil
}

func (hw *hashingWriter) closeSources() {
	for _, f := range hw.srcs {
		f.Close()
	}
}

// WriteLayoutFile writes the layout to path (created or truncated) and
// returns its SHA-256 hex and size. It does not fsync.
func WriteLayoutFile(path string, c *Checkpoint, config []byte, sourceDigest string) (string, int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", 0, err
	}
	sum, err := WriteLayout(f, c, config, sourceDigest)
	var size int64
	if err == nil {
		var fi os.FileInfo
		if fi, err = f.Stat(); err == nil {
			size = fi.Size()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", 0, err
	}
	return sum, size, nil
}

// Layout is an opened (memory-mapped) layout file.
type Layout struct {
	Path           string
	Version        int
	KernelABI      int
	Config         ModelConfig
	SourceManifest string
	Tensors        []LayoutTensor // in file order
	byName         map[string]int
	data           []byte
}

// OpenLayout maps a layout file and checks its header and tensor table
// (magic, version, bounds, alignment); Verify checks the tensor bytes.
func OpenLayout(path string) (*Layout, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: not a valid gptoss layout: %s", path, fmt.Sprintf(format, a...))
	}
	data, err := mapFile(path, headerSize, func(size int64) error {
		return bad("%d bytes, shorter than the header", size)
	})
	if err != nil {
		return nil, err
	}
	l := &Layout{Path: path, data: data, byName: map[string]int{}}
	if err := l.parse(bad); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (l *Layout) parse(bad func(string, ...any) error) error {
	d := l.data
	if string(d[:8]) != LayoutMagic {
		return bad("bad magic %q", d[:8])
	}
	le := binary.LittleEndian
	l.Version, l.KernelABI = int(le.Uint32(d[8:])), int(le.Uint32(d[12:]))
	if l.Version != LayoutVersion {
		return fmt.Errorf("%s: %w %d (this gptoss reads version %d): re-convert it with `gptoss convert MODEL`",
			l.Path, ErrLayoutVersion, l.Version, LayoutVersion)
	}
	if l.KernelABI != KernelABI {
		return fmt.Errorf("%s: %w: kernel ABI %d (this gptoss expects %d): re-convert it with `gptoss convert MODEL`",
			l.Path, ErrLayoutVersion, l.KernelABI, KernelABI)
	}
	size := uint64(len(d))
	dataOff, dataLen, jsOff, jsLen, fsz := le.Uint64(d[16:]), le.Uint64(d[24:]), le.Uint64(d[32:]), le.Uint64(d[40:]), le.Uint64(d[48:])
	if fsz != size {
		return bad("header says %d bytes, the file has %d (truncated?)", fsz, size)
	}
	if dataOff < headerSize || dataOff > size || dataLen > size-dataOff || jsOff < dataOff+dataLen || jsOff > size || jsLen > size-jsOff {
		return bad("header offsets out of range")
	}
	var meta layoutJSON
	dec := json.NewDecoder(bytes.NewReader(d[jsOff : jsOff+jsLen]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&meta); err != nil {
		return bad("JSON block: %v", err)
	}
	if meta.Version != l.Version {
		return bad("JSON block says version %d, header %d", meta.Version, l.Version)
	}
	l.Config, l.SourceManifest, l.Tensors = meta.Config, meta.SourceManifest, meta.Tensors
	for i, t := range l.Tensors {
		if t.Offset%TensorAlign != 0 || t.Offset < int64(dataOff) || t.Size < 0 || t.Size > int64(dataOff+dataLen)-t.Offset {
			return bad("tensor %s: offset %d size %d outside the data region or unaligned", t.Name, t.Offset, t.Size)
		}
		if es, ok := DTypeSize[t.DType]; !ok || (TensorInfo{Shape: t.Shape}).Elements()*es != t.Size {
			return bad("tensor %s: shape %v × %s does not match size %d", t.Name, t.Shape, t.DType, t.Size)
		}
		if _, dup := l.byName[t.Name]; dup {
			return bad("tensor %s listed twice", t.Name)
		}
		l.byName[t.Name] = i
	}
	return nil
}

// Tensor returns a tensor's table entry.
func (l *Layout) Tensor(name string) (LayoutTensor, bool) {
	i, ok := l.byName[name]
	if !ok {
		return LayoutTensor{}, false
	}
	return l.Tensors[i], true
}

// Bytes returns a tensor's bytes, zero-copy from the mapping (valid until
// Close; never write to it), or nil when the layout has no such tensor.
func (l *Layout) Bytes(name string) []byte {
	t, ok := l.Tensor(name)
	if !ok {
		return nil
	}
	return l.data[t.Offset : t.Offset+t.Size]
}

// Verify checks every tensor's bytes against its CRC-32C.
func (l *Layout) Verify() error {
	var errs []error
	for _, t := range l.Tensors {
		got := fmt.Sprintf("%08x", crc32.Checksum(l.data[t.Offset:t.Offset+t.Size], crcTable))
		if got != t.CRC32C {
			errs = append(errs, fmt.Errorf("%s: tensor %s is corrupt (crc32c %s, want %s): re-convert with `gptoss convert MODEL`", l.Path, t.Name, got, t.CRC32C))
		}
	}
	return errors.Join(errs...)
}

// Close unmaps the file.
func (l *Layout) Close() error {
	if l.data == nil {
		return nil
	}
	err := unix.Munmap(l.data)
	l.data = nil
	return err
}

// fp4Values is the E2M1 code → value table (GPT-OSS.md §3.3).
// Code 8 is −0 (a Go constant -0 would be +0).
var fp4Values = [16]float32{0, 0.5, 1, 1.5, 2, 3, 4, 6, float32(math.Copysign(0, -1)), -0.5, -1, -1.5, -2, -3, -4, -6}

// DequantMXFP4 expands MXFP4 blocks (16 bytes = 32 values per block, even
// element in the low nibble) and their E8M0 scales (value × 2^(s−127)) into
// out, which must hold 32 × len(scales) values; len(blocks) must be 16 ×
// len(scales).
func DequantMXFP4(blocks, scales []byte, out []float32) error {
	if len(blocks) != 16*len(scales) || len(out) < 32*len(scales) {
		return fmt.Errorf("dequant: %d block bytes, %d scales, room for %d values", len(blocks), len(scales), len(out))
	}
	for g, s := range scales {
		f := float32(math.Ldexp(1, int(s)-127))
		for b := 0; b < 16; b++ {
			v := blocks[16*g+b]
			out[32*g+2*b] = fp4Values[v&0x0f] * f
			out[32*g+2*b+1] = fp4Values[v>>4] * f
		}
	}
	return nil
}
