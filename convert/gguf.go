package convert

// GGUF v3 export of a Hugging Face gpt-oss checkpoint, in the layout
// llama.cpp's own converter (convert_hf_to_gguf.py, GptOssModel) writes:
// architecture "gpt-oss", its hyper-parameter keys, the gpt2/BPE tokenizer
// keys, llama.cpp's tensor names, the MoE experts as ggml MXFP4 (type 39)
// and every other tensor as llama.cpp's type rules pick it (norms, biases,
// 1-D tensors and the router in F32; the large matrices in their source
// type, BF16 for gpt-oss).
//
// The writer streams: all tensor infos and offsets are computed from the
// shapes first, then every tensor is converted and written in bounded
// chunks straight from the memory-mapped shards, so memory stays flat
// whatever the model size.

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// GGML tensor types used by the export (ggml.h enum ggml_type).
const (
	GGMLTypeF32   uint32 = 0
	GGMLTypeF16   uint32 = 1
	GGMLTypeBF16  uint32 = 30
	GGMLTypeMXFP4 uint32 = 39
)

// ggufFileTypeMXFP4MoE is general.file_type (llama.cpp's llama_ftype
// LLAMA_FTYPE_MOSTLY_MXFP4_MOE): llama.cpp's converter labels a file whose
// experts are MXFP4 so, whatever the type of the other tensors.
const ggufFileTypeMXFP4MoE uint32 = 38

// GGUFAlignment is the data alignment the export uses (general.alignment).
const GGUFAlignment = 32

// GGUFArch is the llama.cpp architecture name of gpt-oss.
const GGUFArch = "gpt-oss"

// GGUF metadata value types.
const (
	ggufUint32  uint32 = 4
	ggufInt32   uint32 = 5
	ggufFloat32 uint32 = 6
	ggufBool    uint32 = 7
	ggufString  uint32 = 8
	ggufArray   uint32 = 9
)

// GGUFOptions tune the export.
type GGUFOptions struct {
	// Name is general.name (default: config.json's _name_or_path, else the
	// directory name).
	Name string
}

// ggufConfig is the part of the HF config.json the export needs.
type ggufConfig struct {
	NameOrPath      string  `json:"_name_or_path"`
	Layers          int     `json:"num_hidden_layers"`
	Experts         int     `json:"num_local_experts"`
	ExpertsPerTok   int     `json:"num_experts_per_tok"`
	ExpertsPerToken int     `json:"experts_per_token"`
	Vocab           int     `json:"vocab_size"`
	Hidden          int     `json:"hidden_size"`
	Intermediate    int     `json:"intermediate_size"`
	HeadDim         int     `json:"head_dim"`
	Heads           int     `json:"num_attention_heads"`
	KVHeads         int     `json:"num_key_value_heads"`
	SlidingWindow   int     `json:"sliding_window"`
	RopeTheta       float64 `json:"rope_theta"`
	MaxPositions    int     `json:"max_position_embeddings"`
	InitialContext  int     `json:"initial_context_length"`
	RMSNormEps      float64 `json:"rms_norm_eps"`
	RopeScaling     *struct {
		Type         string  `json:"rope_type"`
		Type2        string  `json:"type"`
		Factor       float64 `json:"factor"`
		OriginalMaxP int     `json:"original_max_position_embeddings"`
	} `json:"rope_scaling"`
	RopeParameters json.RawMessage `json:"rope_parameters"`
	BOS            json.RawMessage `json:"bos_token_id"`
	EOS            json.RawMessage `json:"eos_token_id"`
	PAD            json.RawMessage `json:"pad_token_id"`
}

func readGGUFConfig(dir string) (*ggufConfig, error) {
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	var c ggufConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s/config.json: %w", dir, err)
	}
	if c.RopeScaling == nil && len(c.RopeParameters) > 0 {
		_ = json.Unmarshal(c.RopeParameters, &c.RopeScaling)
	}
	if c.ExpertsPerTok == 0 {
		c.ExpertsPerTok = c.ExpertsPerToken
	}
	if c.HeadDim == 0 && c.Heads > 0 {
		c.HeadDim = c.Hidden / c.Heads
	}
	if c.MaxPositions == 0 {
		c.MaxPositions = c.InitialContext
	}
	if c.RMSNormEps == 0 {
		c.RMSNormEps = 1e-5
	}
	if c.Layers <= 0 || c.Experts <= 0 || c.Hidden <= 0 || c.Intermediate <= 0 || c.Heads <= 0 || c.KVHeads <= 0 || c.HeadDim <= 0 {
		return nil, fmt.Errorf("%s/config.json: missing gpt-oss dimensions (layers %d, experts %d, hidden %d, intermediate %d, heads %d/%d, head_dim %d)",
			dir, c.Layers, c.Experts, c.Hidden, c.Intermediate, c.Heads, c.KVHeads, c.HeadDim)
	}
	return &c, nil
}

// ggufKV is one metadata pair; value is uint32, int32 (arrays only),
// float32, bool, string, []string, []int32.
type ggufKV struct {
	key   string
	value any
}

// ggufTensor is one tensor of the output: its info and how to write its data.
type ggufTensor struct {
	name   string
	dims   []uint64 // innermost first (ggml ne[0] = the last PyTorch dim)
	typ    uint32
	size   int64
	offset int64 // relative to the data section
	write  func(w io.Writer, buf []byte) error
}

// WriteGGUF writes the checkpoint in dir (Hugging Face layout: config.json,
// safetensors shards, optionally tokenizer.json & co.) to w as a GGUF v3
// file llama.cpp loads as architecture "gpt-oss".
func WriteGGUF(w io.Writer, dir string, opts GGUFOptions) error {
	cfg, err := readGGUFConfig(dir)
	if err != nil {
		return err
	}
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		return err
	}
	defer ck.Close()

	tensors, err := planGGUFTensors(ck, cfg)
	if err != nil {
		return err
	}
	kvs, err := ggufMetadata(dir, cfg, opts, ggufFileTypeMXFP4MoE)
	if err != nil {
		return err
	}

	var off int64
	for i := range tensors {
		tensors[i].offset = off
		off = ggufAlignUp(off+tensors[i].size, GGUFAlignment)
	}

	cw := &ggufCounter{w: w}
	bw := bufio.NewWriterSize(cw, 1<<20)
	hw := &ggufEnc{w: bw}
	hw.raw([]byte("GGUF"))
	hw.u32(3)
	hw.u64(uint64(len(tensors)))
	hw.u64(uint64(len(kvs)))
	for _, kv := range kvs {
		hw.str(kv.key)
		hw.value(kv.value)
	}
	for _, t := range tensors {
		hw.str(t.name)
		hw.u32(uint32(len(t.dims)))
		for _, d := range t.dims {
			hw.u64(d)
		}
		hw.u32(t.typ)
		hw.u64(uint64(t.offset))
	}
	if hw.err != nil {
		return hw.err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := ggufPad(bw, cw.n, GGUFAlignment); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	base := cw.n
	buf := make([]byte, 1<<20)
	for _, t := range tensors {
		if err := bw.Flush(); err != nil {
			return err
		}
		if got := cw.n - base; got != t.offset {
			return fmt.Errorf("gguf: internal error: %s at data offset %d, planned %d", t.name, got, t.offset)
		}
		if err := t.write(bw, buf); err != nil {
			return fmt.Errorf("gguf: writing %s: %w", t.name, err)
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if got := cw.n - base - t.offset; got != t.size {
			return fmt.Errorf("gguf: internal error: %s wrote %d bytes, planned %d", t.name, got, t.size)
		}
		if err := ggufPad(bw, cw.n, GGUFAlignment); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func ggufAlignUp(n, a int64) int64 { return (n + a - 1) / a * a }

func ggufPad(w io.Writer, at int64, a int64) error {
	n := ggufAlignUp(at, a) - at
	if n == 0 {
		return nil
	}
	_, err := w.Write(make([]byte, n))
	return err
}

type ggufCounter struct {
	w io.Writer
	n int64
}

func (c *ggufCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// planGGUFTensors lists the output tensors in llama.cpp's naming, checking
// every source tensor's presence, dtype and shape against the config.
func planGGUFTensors(ck *Checkpoint, cfg *ggufConfig) ([]ggufTensor, error) {
	var out []ggufTensor
	used := map[string]bool{}
	var errs []error
	get := func(name string, dtypes []string, shape ...int64) (TensorInfo, bool) {
		t, ok := ck.Tensor(name)
		if !ok {
			errs = append(errs, fmt.Errorf("missing tensor %s", name))
			return t, false
		}
		used[name] = true
		okType := false
		for _, d := range dtypes {
			okType = okType || t.DType == d
		}
		if !okType {
			errs = append(errs, fmt.Errorf("tensor %s: dtype %s, want one of %v", name, t.DType, dtypes))
			return t, false
		}
		if shape != nil && !equalShape(t.Shape, shape) {
			errs = append(errs, fmt.Errorf("tensor %s: shape %v, want %v", name, t.Shape, shape))
			return t, false
		}
		return t, true
	}
	floats := []string{"BF16", "F16", "F32"}
	// plain adds a tensor converted by llama.cpp's type rules: F32 for 1-D
	// tensors, norms, the router and anything not named *.weight; the
	// source type otherwise.
	plain := func(hf, name string, shape ...int64) {
		t, ok := get(hf, floats, shape...)
		if !ok {
			return
		}
		f32 := len(t.Shape) <= 1 || strings.HasSuffix(name, "_norm.weight") ||
			strings.Contains(name, ".ffn_gate_inp.") || !strings.HasSuffix(name, ".weight")
		gt := ggufTensor{name: name, dims: revDims(t.Shape)}
		if f32 {
			gt.typ, gt.size = GGMLTypeF32, 4*t.Elements()
			gt.write = func(w io.Writer, buf []byte) error {
				return writeF32(w, buf, ck.Bytes(t), t.DType, 0, 1, t.Elements())
			}
		} else {
			gt.typ = map[string]uint32{"BF16": GGMLTypeBF16, "F16": GGMLTypeF16, "F32": GGMLTypeF32}[t.DType]
			gt.size = t.Size
			gt.write = func(w io.Writer, _ []byte) error {
				_, err := w.Write(ck.Bytes(t))
				return err
			}
		}
		out = append(out, gt)
	}

	H, I, E := int64(cfg.Hidden), int64(cfg.Intermediate), int64(cfg.Experts)
	nq, nkv := int64(cfg.Heads*cfg.HeadDim), int64(cfg.KVHeads*cfg.HeadDim)
	V := int64(cfg.Vocab)
	var vshape []int64
	if V > 0 {
		vshape = []int64{V, H}
	}
	plain("model.embed_tokens.weight", "token_embd.weight", vshape...)
	for l := 0; l < cfg.Layers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		b := fmt.Sprintf("blk.%d.", l)
		plain(p+"input_layernorm.weight", b+"attn_norm.weight", H)
		plain(p+"self_attn.q_proj.weight", b+"attn_q.weight", nq, H)
		plain(p+"self_attn.q_proj.bias", b+"attn_q.bias", nq)
		plain(p+"self_attn.k_proj.weight", b+"attn_k.weight", nkv, H)
		plain(p+"self_attn.k_proj.bias", b+"attn_k.bias", nkv)
		plain(p+"self_attn.v_proj.weight", b+"attn_v.weight", nkv, H)
		plain(p+"self_attn.v_proj.bias", b+"attn_v.bias", nkv)
		plain(p+"self_attn.o_proj.weight", b+"attn_output.weight", H, nq)
		plain(p+"self_attn.o_proj.bias", b+"attn_output.bias", H)
		plain(p+"self_attn.sinks", b+"attn_sinks.weight", int64(cfg.Heads))
		plain(p+"post_attention_layernorm.weight", b+"post_attention_norm.weight", H)
		plain(p+"mlp.router.weight", b+"ffn_gate_inp.weight", E, H)
		plain(p+"mlp.router.bias", b+"ffn_gate_inp.bias", E)

		// Experts: gate_up rows interleave gate (even) and up (odd).
		if H%32 != 0 || I%32 != 0 {
			errs = append(errs, fmt.Errorf("hidden %d and intermediate %d must be multiples of 32 for MXFP4", H, I))
			break
		}
		gub, ok1 := get(p+"mlp.experts.gate_up_proj_blocks", []string{"U8"}, E, 2*I, H/32, 16)
		gus, ok2 := get(p+"mlp.experts.gate_up_proj_scales", []string{"U8"}, E, 2*I, H/32)
		if ok1 && ok2 {
			out = append(out, mxfp4Tensor(ck, b+"ffn_gate_exps.weight", gub, gus, 0, 2, I, H))
			out = append(out, mxfp4Tensor(ck, b+"ffn_up_exps.weight", gub, gus, 1, 2, I, H))
		}
		if gbias, ok := get(p+"mlp.experts.gate_up_proj_bias", floats, E, 2*I); ok {
			for j, name := range []string{b + "ffn_gate_exps.bias", b + "ffn_up_exps.bias"} {
				j := int64(j)
				out = append(out, ggufTensor{name: name, dims: []uint64{uint64(I), uint64(E)}, typ: GGMLTypeF32, size: 4 * E * I,
					write: func(w io.Writer, buf []byte) error {
						return writeF32(w, buf, ck.Bytes(gbias), gbias.DType, j, 2, E*I)
					}})
			}
		}
		db, ok1 := get(p+"mlp.experts.down_proj_blocks", []string{"U8"}, E, H, I/32, 16)
		ds, ok2 := get(p+"mlp.experts.down_proj_scales", []string{"U8"}, E, H, I/32)
		if ok1 && ok2 {
			out = append(out, mxfp4Tensor(ck, b+"ffn_down_exps.weight", db, ds, 0, 1, H, I))
		}
		plain(p+"mlp.experts.down_proj_bias", b+"ffn_down_exps.bias", E, H)
	}
	plain("model.norm.weight", "output_norm.weight", H)
	plain("lm_head.weight", "output.weight", vshape...)
	for _, n := range ck.Names() {
		if !used[n] {
			errs = append(errs, fmt.Errorf("tensor %s has no GGUF counterpart", n))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("gguf: %s is not a gpt-oss MXFP4 checkpoint: %w", ck.Dir, errors.Join(errs...))
	}
	return out, nil
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func revDims(shape []int64) []uint64 {
	d := make([]uint64, len(shape))
	for i, s := range shape {
		d[len(shape)-1-i] = uint64(s)
	}
	if len(d) == 0 {
		d = []uint64{1}
	}
	return d
}

// mxfp4Tensor is the ggml MXFP4 tensor made of rows first, first+step, …
// (rows of them) of every expert of an HF blocks/scales pair: dims [in,
// rows, E], 17 bytes per 32 inputs (scale byte, then 16 re-packed bytes).
func mxfp4Tensor(ck *Checkpoint, name string, blocks, scales TensorInfo, first, step, rows, in int64) ggufTensor {
	E, srcRows, G := blocks.Shape[0], blocks.Shape[1], in/32
	return ggufTensor{
		name: name, dims: []uint64{uint64(in), uint64(rows), uint64(E)}, typ: GGMLTypeMXFP4,
		size: E * rows * G * 17,
		write: func(w io.Writer, buf []byte) error {
			bb, sb := ck.Bytes(blocks), ck.Bytes(scales)
			rowOut := G * 17
			buf = buf[:0]
			for e := int64(0); e < E; e++ {
				for r := int64(0); r < rows; r++ {
					src := e*srcRows + first + r*step
					for g := int64(0); g < G; g++ {
						var blk [17]byte
						blk[0] = sb[src*G+g]
						RepackMXFP4Block((*[16]byte)(blk[1:]), (*[16]byte)(bb[(src*G+g)*16:]))
						buf = append(buf, blk[:]...)
					}
					if int64(cap(buf)-len(buf)) < rowOut {
						if _, err := w.Write(buf); err != nil {
							return err
						}
						buf = buf[:0]
					}
				}
			}
			_, err := w.Write(buf)
			return err
		},
	}
}

// RepackMXFP4Block turns one checkpoint MXFP4 block (byte b: element 2b in
// the low nibble, 2b+1 in the high nibble) into ggml's block_mxfp4 qs
// (byte j: element j in the low nibble, element j+16 in the high nibble).
// The 4-bit codes themselves are unchanged: ggml's doubled value table with
// its half scale 2^(e-128) gives the same values as FP4 × 2^(e-127).
func RepackMXFP4Block(dst, src *[16]byte) {
	code := func(k int) byte {
		b := src[k/2]
		if k%2 == 0 {
			return b & 0x0F
		}
		return b >> 4
	}
	for j := 0; j < 16; j++ {
		dst[j] = code(j) | code(j+16)<<4
	}
}

// writeF32 writes n elements src[first], src[first+step], … converted to
// little-endian float32.
func writeF32(w io.Writer, buf []byte, src []byte, dtype string, first, step, n int64) error {
	buf = buf[:0]
	for i := int64(0); i < n; i++ {
		k := first + i*step
		var f float32
		switch dtype {
		case "BF16":
			f = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*k:])) << 16)
		case "F16":
			f = f16ToF32(binary.LittleEndian.Uint16(src[2*k:]))
		case "F32":
			f = math.Float32frombits(binary.LittleEndian.Uint32(src[4*k:]))
		default:
			return fmt.Errorf("dtype %s cannot be converted to F32", dtype)
		}
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(f))
		if len(buf)+4 > cap(buf) {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	_, err := w.Write(buf)
	return err
}

func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1F
	mant := uint32(h) & 0x3FF
	switch {
	case exp == 0x1F:
		return math.Float32frombits(sign | 0xFF<<23 | mant<<13)
	case exp == 0:
		f := float32(math.Ldexp(float64(mant), -24))
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

// ggufMetadata builds the KV section: general.*, the gpt-oss
// hyper-parameters under the keys llama.cpp's converter writes, and the
// tokenizer when the checkpoint has a tokenizer.json.
func ggufMetadata(dir string, cfg *ggufConfig, opts GGUFOptions, fileType uint32) ([]ggufKV, error) {
	name := opts.Name
	if name == "" {
		name = cfg.NameOrPath
	}
	if name == "" {
		name = filepath.Base(filepath.Clean(dir))
	}
	a := GGUFArch + "."
	kvs := []ggufKV{
		{"general.architecture", GGUFArch},
		{"general.type", "model"},
		{"general.name", name},
		{"general.alignment", uint32(GGUFAlignment)},
		{a + "block_count", uint32(cfg.Layers)},
		{a + "context_length", uint32(cfg.MaxPositions)},
		{a + "embedding_length", uint32(cfg.Hidden)},
		{a + "feed_forward_length", uint32(cfg.Intermediate)},
		{a + "attention.head_count", uint32(cfg.Heads)},
		{a + "attention.head_count_kv", uint32(cfg.KVHeads)},
		{a + "rope.freq_base", float32(cfg.RopeTheta)},
		{a + "attention.layer_norm_rms_epsilon", float32(cfg.RMSNormEps)},
		{a + "expert_count", uint32(cfg.Experts)},
		{a + "expert_used_count", uint32(cfg.ExpertsPerTok)},
		{a + "attention.key_length", uint32(cfg.HeadDim)},
		{a + "attention.value_length", uint32(cfg.HeadDim)},
		{a + "attention.sliding_window", uint32(cfg.SlidingWindow)},
		{a + "expert_feed_forward_length", uint32(cfg.Intermediate)},
	}
	if rs := cfg.RopeScaling; rs != nil {
		typ := rs.Type
		if typ == "" {
			typ = rs.Type2
		}
		if typ == "yarn" {
			kvs = append(kvs,
				ggufKV{a + "rope.scaling.type", "yarn"},
				ggufKV{a + "rope.scaling.factor", float32(rs.Factor)},
				ggufKV{a + "rope.scaling.original_context_length", uint32(rs.OriginalMaxP)})
		}
	}
	tok, err := ggufTokenizer(dir, cfg)
	if err != nil {
		return nil, err
	}
	kvs = append(kvs, tok...)
	kvs = append(kvs,
		ggufKV{"general.quantization_version", uint32(2)},
		ggufKV{"general.file_type", fileType})
	return kvs, nil
}

// Token types (llama.cpp / gguf-py TokenType).
const (
	tokNormal      int32 = 1
	tokControl     int32 = 3
	tokUserDefined int32 = 4
	tokUnused      int32 = 5
)

var specialLooking = regexp.MustCompile(`^<\|.*\|>$`)

// ggufTokenizer reads tokenizer.json (+ tokenizer_config.json,
// chat_template.jinja) into llama.cpp's gpt2 tokenizer keys; none when the
// checkpoint has no tokenizer.json.
func ggufTokenizer(dir string, cfg *ggufConfig) ([]ggufKV, error) {
	b, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var tj struct {
		Added []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens"`
		Model struct {
			Type   string          `json:"type"`
			Vocab  map[string]int  `json:"vocab"`
			Merges json.RawMessage `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(b, &tj); err != nil {
		return nil, fmt.Errorf("%s/tokenizer.json: %w", dir, err)
	}
	if tj.Model.Type != "BPE" {
		return nil, fmt.Errorf("%s/tokenizer.json: model type %q, want BPE", dir, tj.Model.Type)
	}
	byID := map[int]string{}
	ids := map[string]int{}
	maxID := -1
	for s, id := range tj.Model.Vocab {
		byID[id], ids[s] = s, id
		maxID = max(maxID, id)
	}
	added := map[int]bool{}
	special := map[int]bool{}
	for _, t := range tj.Added {
		byID[t.ID], ids[t.Content] = t.Content, t.ID
		added[t.ID], special[t.ID] = true, t.Special
		maxID = max(maxID, t.ID)
	}
	n := cfg.Vocab
	if n <= maxID {
		n = maxID + 1
	}
	tokens := make([]string, n)
	types := make([]int32, n)
	for i := 0; i < n; i++ {
		s, ok := byID[i]
		switch {
		case !ok:
			tokens[i], types[i] = fmt.Sprintf("[PAD%d]", i), tokUnused
		case added[i] && (special[i] || specialLooking.MatchString(s)):
			tokens[i], types[i] = s, tokControl
		case added[i]:
			tokens[i], types[i] = s, tokUserDefined
		default:
			tokens[i], types[i] = s, tokNormal
		}
	}
	var merges []string
	if len(tj.Model.Merges) > 0 {
		var flat []string
		if err := json.Unmarshal(tj.Model.Merges, &flat); err == nil {
			merges = flat
		} else {
			var pairs [][2]string
			if err := json.Unmarshal(tj.Model.Merges, &pairs); err != nil {
				return nil, fmt.Errorf("%s/tokenizer.json: merges: %w", dir, err)
			}
			for _, p := range pairs {
				merges = append(merges, p[0]+" "+p[1])
			}
		}
	}
	kvs := []ggufKV{
		{"tokenizer.ggml.model", "gpt2"},
		{"tokenizer.ggml.pre", "gpt-4o"},
		{"tokenizer.ggml.tokens", tokens},
		{"tokenizer.ggml.token_type", types},
		{"tokenizer.ggml.merges", merges},
	}

	// Special ids: tokenizer_config.json's token strings first, then
	// config.json's *_token_id (as gguf-py's SpecialVocab does).
	var tc map[string]json.RawMessage
	if b, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json")); err == nil {
		if err := json.Unmarshal(b, &tc); err != nil {
			return nil, fmt.Errorf("%s/tokenizer_config.json: %w", dir, err)
		}
	}
	tokenID := func(field string, fallback json.RawMessage) (uint32, bool) {
		if raw, ok := tc[field]; ok {
			var s string
			var obj struct {
				Content string `json:"content"`
			}
			if json.Unmarshal(raw, &s) != nil && json.Unmarshal(raw, &obj) == nil {
				s = obj.Content
			}
			if id, ok := ids[s]; ok && s != "" {
				return uint32(id), true
			}
		}
		var id int
		if json.Unmarshal(fallback, &id) == nil && id >= 0 {
			return uint32(id), true
		}
		var list []int
		if json.Unmarshal(fallback, &list) == nil && len(list) > 0 && list[0] >= 0 {
			return uint32(list[0]), true
		}
		return 0, false
	}
	for _, s := range []struct {
		field, key string
		cfg        json.RawMessage
	}{
		{"bos_token", "tokenizer.ggml.bos_token_id", cfg.BOS},
		{"eos_token", "tokenizer.ggml.eos_token_id", cfg.EOS},
		{"pad_token", "tokenizer.ggml.padding_token_id", cfg.PAD},
	} {
		if id, ok := tokenID(s.field, s.cfg); ok {
			kvs = append(kvs, ggufKV{s.key, id})
		}
	}
	for _, f := range []string{"add_bos_token", "add_eos_token"} {
		var v bool
		if raw, ok := tc[f]; ok && json.Unmarshal(raw, &v) == nil {
			kvs = append(kvs, ggufKV{"tokenizer.ggml." + f, v})
		}
	}
	var tmpl string
	if raw, ok := tc["chat_template"]; ok {
		_ = json.Unmarshal(raw, &tmpl)
	}
	if tmpl == "" {
		if b, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja")); err == nil {
			tmpl = string(b)
		}
	}
	if tmpl != "" {
		kvs = append(kvs, ggufKV{"tokenizer.chat_template", tmpl})
	}
	return kvs, nil
}

// ggufEnc writes GGUF primitives, keeping the first error.
type ggufEnc struct {
	w   io.Writer
	err error
	b   [8]byte
}

func (e *ggufEnc) raw(p []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(p)
	}
}
func (e *ggufEnc) u32(v uint32) { binary.LittleEndian.PutUint32(e.b[:4], v); e.raw(e.b[:4]) }
func (e *ggufEnc) u64(v uint64) { binary.LittleEndian.PutUint64(e.b[:8], v); e.raw(e.b[:8]) }
func (e *ggufEnc) str(s string) { e.u64(uint64(len(s))); e.raw([]byte(s)) }

func (e *ggufEnc) value(v any) {
	switch v := v.(type) {
	case uint32:
		e.u32(ggufUint32)
		e.u32(v)
	case float32:
		e.u32(ggufFloat32)
		e.u32(math.Float32bits(v))
	case bool:
		e.u32(ggufBool)
		if v {
			e.raw([]byte{1})
		} else {
			e.raw([]byte{0})
		}
	case string:
		e.u32(ggufString)
		e.str(v)
	case []string:
		e.u32(ggufArray)
		e.u32(ggufString)
		e.u64(uint64(len(v)))
		for _, s := range v {
			e.str(s)
		}
	case []int32:
		e.u32(ggufArray)
		e.u32(ggufInt32)
		e.u64(uint64(len(v)))
		for _, x := range v {
			e.u32(uint32(x))
		}
	default:
		if e.err == nil {
			e.err = fmt.Errorf("gguf: unsupported metadata value %T", v)
		}
	}
}
