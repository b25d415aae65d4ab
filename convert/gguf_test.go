package convert

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gguf "github.com/gpustack/gguf-parser-go"

	"github.com/gptoss/gptoss/internal/fixture"
)

// exportGGUF writes dir's GGUF to a temp file and parses it back.
func exportGGUF(t *testing.T, dir string) (string, *gguf.GGUFFile) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "model.gguf")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	if err := WriteGGUF(bw, dir, GGUFOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	gf, err := gguf.ParseGGUFFile(out)
	if err != nil {
		t.Fatalf("gguf-parser-go: %v", err)
	}
	return out, gf
}

// fp4 is the OCP E2M1 code → value table (GPT-OSS.md §3.3).
var fp4 = [16]float64{0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6}

// refDequant dequantizes one checkpoint block (§3.3 reference formula):
// element 2b in the low nibble of byte b, 2b+1 in the high nibble, times
// 2^(s−127).
func refDequant(blk []byte, s byte) [32]float64 {
	var out [32]float64
	for b := 0; b < 16; b++ {
		out[2*b] = math.Ldexp(fp4[blk[b]&0x0F], int(s)-127)
		out[2*b+1] = math.Ldexp(fp4[blk[b]>>4], int(s)-127)
	}
	return out
}

// ggmlMXFP4 is ggml's kvalues_mxfp4 (doubled E2M1 values).
var ggmlMXFP4 = [16]float64{0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12}

// ggmlDequant dequantizes one ggml block_mxfp4 {u8 e; u8 qs[16]}: element
// j in the low nibble of qs[j], j+16 in the high nibble, times the half
// scale 2^(e−128) (GGML_E8M0_TO_FP32_HALF, whose e < 2 encodings are the
// same powers of two).
func ggmlDequant(blk []byte) [32]float64 {
	var out [32]float64
	e, qs := blk[0], blk[1:17]
	for j := 0; j < 16; j++ {
		out[j] = math.Ldexp(ggmlMXFP4[qs[j]&0x0F], int(e)-128)
		out[j+16] = math.Ldexp(ggmlMXFP4[qs[j]>>4], int(e)-128)
	}
	return out
}

func TestRepackMXFP4BlockMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		var src, dst [16]byte
		for j := range src {
			src[j] = byte(r.IntN(256))
		}
		s := byte(r.IntN(256))
		if i == 0 {
			s = 0 // the special small encodings
		} else if i == 1 {
			s = 1
		}
		RepackMXFP4Block(&dst, &src)
		got := ggmlDequant(append([]byte{s}, dst[:]...))
		if want := refDequant(src[:], s); got != want {
			t.Fatalf("block %x scale %d: ggml %v, reference %v", src, s, got, want)
		}
	}
}

type wantTensor struct {
	dims []uint64
	typ  gguf.GGMLType
}

// expectedTensors is the llama.cpp gpt-oss tensor set for a config.
func expectedTensors(c *ggufConfig) map[string]wantTensor {
	H, I, E := uint64(c.Hidden), uint64(c.Intermediate), uint64(c.Experts)
	nq, nkv, V := uint64(c.Heads*c.HeadDim), uint64(c.KVHeads*c.HeadDim), uint64(c.Vocab)
	f32, bf16, mx := gguf.GGMLTypeF32, gguf.GGMLTypeBF16, gguf.GGMLTypeMXFP4
	w := map[string]wantTensor{
		"token_embd.weight":  {[]uint64{H, V}, bf16},
		"output_norm.weight": {[]uint64{H}, f32},
		"output.weight":      {[]uint64{H, V}, bf16},
	}
	for l := 0; l < c.Layers; l++ {
		b := fmt.Sprintf("blk.%d.", l)
		for k, v := range map[string]wantTensor{
			"attn_norm.weight":           {[]uint64{H}, f32},
			"post_attention_norm.weight": {[]uint64{H}, f32},
			"attn_q.weight":              {[]uint64{H, nq}, bf16},
			"attn_q.bias":                {[]uint64{nq}, f32},
			"attn_k.weight":              {[]uint64{H, nkv}, bf16},
			"attn_k.bias":                {[]uint64{nkv}, f32},
			"attn_v.weight":              {[]uint64{H, nkv}, bf16},
			"attn_v.bias":                {[]uint64{nkv}, f32},
			"attn_output.weight":         {[]uint64{nq, H}, bf16},
			"attn_output.bias":           {[]uint64{H}, f32},
			"attn_sinks.weight":          {[]uint64{uint64(c.Heads)}, f32},
			"ffn_gate_inp.weight":        {[]uint64{H, E}, f32},
			"ffn_gate_inp.bias":          {[]uint64{E}, f32},
			"ffn_gate_exps.weight":       {[]uint64{H, I, E}, mx},
			"ffn_up_exps.weight":         {[]uint64{H, I, E}, mx},
			"ffn_down_exps.weight":       {[]uint64{I, H, E}, mx},
			"ffn_gate_exps.bias":         {[]uint64{I, E}, f32},
			"ffn_up_exps.bias":           {[]uint64{I, E}, f32},
			"ffn_down_exps.bias":         {[]uint64{H, E}, f32},
		} {
			w[b+k] = v
		}
	}
	return w
}

func kv(t *testing.T, gf *gguf.GGUFFile, key string) gguf.GGUFMetadataKV {
	t.Helper()
	v, ok := gf.Header.MetadataKV.Get(key)
	if !ok {
		t.Fatalf("metadata %s missing", key)
	}
	return v
}

func TestWriteGGUFGoldenTiny(t *testing.T) {
	dir := "../testdata/golden/tiny"
	cfg, err := readGGUFConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	path, gf := exportGGUF(t, dir)

	if gf.Header.Version != 3 {
		t.Errorf("version %d, want 3", gf.Header.Version)
	}
	if a := gf.Architecture().Architecture; a != "gpt-oss" {
		t.Errorf("architecture %q, want gpt-oss", a)
	}
	u32 := map[string]uint32{
		"gpt-oss.block_count":                          4,
		"gpt-oss.context_length":                       131072,
		"gpt-oss.embedding_length":                     128,
		"gpt-oss.feed_forward_length":                  64,
		"gpt-oss.expert_feed_forward_length":           64,
		"gpt-oss.attention.head_count":                 8,
		"gpt-oss.attention.head_count_kv":              2,
		"gpt-oss.attention.key_length":                 16,
		"gpt-oss.attention.value_length":               16,
		"gpt-oss.attention.sliding_window":             4,
		"gpt-oss.expert_count":                         8,
		"gpt-oss.expert_used_count":                    4,
		"gpt-oss.rope.scaling.original_context_length": 4096,
		"general.alignment":                            32,
		"general.quantization_version":                 2,
		"general.file_type":                            38, // MOSTLY_MXFP4_MOE
	}
	for k, want := range u32 {
		if got := kv(t, gf, k).ValueUint32(); got != want {
			t.Errorf("%s = %d, want %d", k, got, want)
		}
	}
	f32 := map[string]float32{
		"gpt-oss.rope.freq_base":                   150000,
		"gpt-oss.rope.scaling.factor":              32,
		"gpt-oss.attention.layer_norm_rms_epsilon": 1e-5,
	}
	for k, want := range f32 {
		if got := kv(t, gf, k).ValueFloat32(); got != want {
			t.Errorf("%s = %g, want %g", k, got, want)
		}
	}
	if got := kv(t, gf, "gpt-oss.rope.scaling.type").ValueString(); got != "yarn" {
		t.Errorf("rope.scaling.type %q", got)
	}
	for _, k := range gf.Header.MetadataKV {
		if strings.HasPrefix(k.Key, "tokenizer.") {
			t.Errorf("golden/tiny has no tokenizer.json, but the GGUF has %s", k.Key)
		}
	}

	want := expectedTensors(cfg)
	if n := len(gf.TensorInfos); n != len(want) || n != 4*19+3 {
		t.Fatalf("%d tensors, want %d (= 4×19+3)", n, len(want))
	}
	infos := map[string]gguf.GGUFTensorInfo{}
	for _, ti := range gf.TensorInfos {
		infos[ti.Name] = ti
		w, ok := want[ti.Name]
		if !ok {
			t.Errorf("unexpected tensor %s", ti.Name)
			continue
		}
		if fmt.Sprint(ti.Dimensions) != fmt.Sprint(w.dims) || ti.Type != w.typ {
			t.Errorf("%s: dims %v type %v, want %v %v", ti.Name, ti.Dimensions, ti.Type, w.dims, w.typ)
		}
		if ti.Offset%32 != 0 {
			t.Errorf("%s: offset %d not 32-aligned", ti.Name, ti.Offset)
		}
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Tensors lie back to back (each padded to 32 bytes), in file order,
	// and the file ends with the last one's padding.
	if gf.TensorDataStartOffset%32 != 0 {
		t.Errorf("data section starts at %d, not 32-aligned", gf.TensorDataStartOffset)
	}
	var next uint64
	for _, ti := range gf.TensorInfos {
		n := uint64(1)
		for _, d := range ti.Dimensions {
			n *= d
		}
		size := map[gguf.GGMLType]uint64{gguf.GGMLTypeF32: 4 * n, gguf.GGMLTypeBF16: 2 * n, gguf.GGMLTypeMXFP4: n / 32 * 17}[ti.Type]
		if ti.Offset != next {
			t.Errorf("%s at %d, want %d", ti.Name, ti.Offset, next)
		}
		next = (ti.Offset + size + 31) / 32 * 32
	}
	if want := gf.TensorDataStartOffset + int64(next); int64(len(data)) != want {
		t.Errorf("file is %d bytes, want %d", len(data), want)
	}
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	tensorBytes := func(name string, n int64) []byte {
		ti, ok := infos[name]
		if !ok {
			t.Fatalf("no tensor %s", name)
		}
		at := gf.TensorDataStartOffset + int64(ti.Offset)
		return data[at : at+n]
	}
	src := func(name string) (TensorInfo, []byte) {
		ti, ok := ck.Tensor(name)
		if !ok {
			t.Fatalf("checkpoint has no %s", name)
		}
		return ti, ck.Bytes(ti)
	}

	// BF16 matrices are byte copies; small tensors are exact F32 widenings.
	for hf, name := range map[string]string{"model.embed_tokens.weight": "token_embd.weight", "lm_head.weight": "output.weight",
		"model.layers.2.self_attn.o_proj.weight": "blk.2.attn_output.weight"} {
		ti, b := src(hf)
		if string(tensorBytes(name, ti.Size)) != string(b) {
			t.Errorf("%s is not a byte copy of %s", name, hf)
		}
	}
	bf16 := func(b []byte, i int64) float32 {
		return math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
	}
	f32At := func(b []byte, i int64) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])) }
	{
		ti, b := src("model.layers.1.self_attn.sinks")
		g := tensorBytes("blk.1.attn_sinks.weight", 4*ti.Elements())
		for i := int64(0); i < ti.Elements(); i++ {
			if f32At(g, i) != bf16(b, i) {
				t.Fatalf("attn_sinks[%d] = %g, want %g", i, f32At(g, i), bf16(b, i))
			}
		}
	}
	{ // gate = even rows, up = odd rows of the interleaved gate_up bias
		ti, b := src("model.layers.3.mlp.experts.gate_up_proj_bias")
		E, I2 := ti.Shape[0], ti.Shape[1]
		gate := tensorBytes("blk.3.ffn_gate_exps.bias", 4*E*I2/2)
		up := tensorBytes("blk.3.ffn_up_exps.bias", 4*E*I2/2)
		for e := int64(0); e < E; e++ {
			for j := int64(0); j < I2/2; j++ {
				if f32At(gate, e*I2/2+j) != bf16(b, e*I2+2*j) || f32At(up, e*I2/2+j) != bf16(b, e*I2+2*j+1) {
					t.Fatalf("gate/up bias split wrong at expert %d channel %d", e, j)
				}
			}
		}
	}

	// MXFP4: every block of layers 0 and 3 dequantizes, from the GGUF bytes
	// with ggml's formula, to the values of the checkpoint's blocks/scales
	// under the reference formula.
	checked := 0
	for _, l := range []int{0, 3} {
		for _, c := range []struct {
			name, hf    string
			first, step int64
		}{
			{"ffn_gate_exps", "gate_up_proj", 0, 2},
			{"ffn_up_exps", "gate_up_proj", 1, 2},
			{"ffn_down_exps", "down_proj", 0, 1},
		} {
			bt, bb := src(fmt.Sprintf("model.layers.%d.mlp.experts.%s_blocks", l, c.hf))
			_, sb := src(fmt.Sprintf("model.layers.%d.mlp.experts.%s_scales", l, c.hf))
			E, srcRows, G := bt.Shape[0], bt.Shape[1], bt.Shape[2]
			rows := srcRows / c.step
			g := tensorBytes(fmt.Sprintf("blk.%d.%s.weight", l, c.name), E*rows*G*17)
			for e := int64(0); e < E; e++ {
				for r := int64(0); r < rows; r++ {
					sr := e*srcRows + c.first + r*c.step
					for k := int64(0); k < G; k++ {
						got := ggmlDequant(g[((e*rows+r)*G+k)*17:])
						want := refDequant(bb[(sr*G+k)*16:], sb[sr*G+k])
						if got != want {
							t.Fatalf("layer %d %s expert %d row %d block %d: %v, want %v", l, c.name, e, r, k, got, want)
						}
						checked++
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no MXFP4 block checked")
	}
	t.Logf("%d MXFP4 blocks equal, %d bytes", checked, len(data))
}

func TestWriteGGUFFixtureTokenizer(t *testing.T) {
	dir := t.TempDir()
	opts := fixture.Tiny()
	if err := fixture.Write(dir, opts); err != nil {
		t.Fatal(err)
	}
	_, gf := exportGGUF(t, dir)
	if got := kv(t, gf, "tokenizer.ggml.model").ValueString(); got != "gpt2" {
		t.Errorf("tokenizer.ggml.model %q", got)
	}
	if got := kv(t, gf, "tokenizer.ggml.pre").ValueString(); got != "gpt-4o" {
		t.Errorf("tokenizer.ggml.pre %q", got)
	}
	tokens := kv(t, gf, "tokenizer.ggml.tokens").ValueArray().ValuesString()
	types := kv(t, gf, "tokenizer.ggml.token_type").ValueArray().ValuesInt32()
	if len(tokens) != opts.Vocab || len(types) != opts.Vocab {
		t.Fatalf("%d tokens, %d types, want %d", len(tokens), len(types), opts.Vocab)
	}
	if _, ok := gf.Header.MetadataKV.Get("tokenizer.ggml.merges"); !ok {
		t.Error("no tokenizer.ggml.merges")
	}
	// 199998 mod 1024 = 318: <|startoftext|> 318, <|endoftext|> 319, <|return|> 322.
	for k, want := range map[string]uint32{"tokenizer.ggml.bos_token_id": 318, "tokenizer.ggml.eos_token_id": 322, "tokenizer.ggml.padding_token_id": 319} {
		if got := kv(t, gf, k).ValueUint32(); got != want {
			t.Errorf("%s = %d, want %d", k, got, want)
		}
	}
	if tokens[322] != "<|return|>" || types[322] != 3 {
		t.Errorf("token 322 = %q type %d, want <|return|> control (3)", tokens[322], types[322])
	}
	if tokens[0] != "Ā" || types[0] != 1 { // byte 0 in the byte-level alphabet
		t.Errorf("token 0 = %q type %d, want \"Ā\" normal (1)", tokens[0], types[0])
	}
	if tokens[300] != "[PAD300]" || types[300] != 5 {
		t.Errorf("token 300 = %q type %d, want [PAD300] unused (5)", tokens[300], types[300])
	}
	tmpl, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	// gguf-parser-go trims string values.
	if got := kv(t, gf, "tokenizer.chat_template").ValueString(); got != strings.TrimSpace(string(tmpl)) {
		t.Errorf("chat template differs from chat_template.jinja: %d vs %d bytes: %.80q", len(got), len(tmpl), got)
	}
	if a := gf.Architecture(); a.Architecture != "gpt-oss" || a.ExpertCount != uint32(opts.Experts) {
		t.Errorf("architecture %q experts %d", a.Architecture, a.ExpertCount)
	}
	if n := len(gf.TensorInfos); n != opts.Layers*19+3 {
		t.Errorf("%d tensors, want %d", n, opts.Layers*19+3)
	}
}

func TestWriteGGUFRejectsNonMXFP4(t *testing.T) {
	// original/ has OpenAI names: not an HF checkpoint.
	err := WriteGGUF(discard{}, "../testdata/golden/tiny/original", GGUFOptions{})
	if err == nil {
		t.Fatal("exporting original/ succeeded")
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
