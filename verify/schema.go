package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/gptoss/gptoss/convert"
)

// Checkpoint layouts CheckSchema knows (shared/GPT-OSS.md §3.1).
const (
	LayoutHF       = "hf"       // config.json + model-*.safetensors, HF names, split q/k/v
	LayoutOriginal = "original" // original/config.json + model.safetensors, OpenAI names, fused qkv
)

// Expected is one tensor a gpt-oss checkpoint must hold.
type Expected struct {
	Name  string  `json:"name"`
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
}

// Dims are the dimensions of a gpt-oss model that determine its tensors.
type Dims struct {
	Layers       int64 `json:"layers"`              // num_hidden_layers
	Experts      int64 `json:"experts"`             // num_local_experts / num_experts
	Hidden       int64 `json:"hidden_size"`         // hidden_size
	Intermediate int64 `json:"intermediate_size"`   // intermediate_size (per expert)
	Heads        int64 `json:"num_attention_heads"` // num_attention_heads
	KVHeads      int64 `json:"num_key_value_heads"` // num_key_value_heads
	HeadDim      int64 `json:"head_dim"`            // head_dim
	Vocab        int64 `json:"vocab_size"`          // vocab_size
}

// maxDim bounds every dimension so that no product of three of them can
// overflow (real gpt-oss values are below 2^18).
const maxDim = 1 << 20

// ParseDims reads the dimensions from a config.json (layout "hf": HF field
// names, num_experts accepted as an alias of num_local_experts) or an
// original/config.json (layout "original": OpenAI's field names).
func ParseDims(config []byte, layout string) (Dims, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(config, &raw); err != nil {
		return Dims{}, fmt.Errorf("config: %v", err)
	}
	if raw == nil {
		return Dims{}, fmt.Errorf("config: not a JSON object")
	}
	experts := []string{"num_local_experts", "num_experts"}
	switch layout {
	case LayoutHF:
	case LayoutOriginal:
		experts = []string{"num_experts"}
	default:
		return Dims{}, fmt.Errorf("unknown checkpoint layout %q (want %q or %q)", layout, LayoutHF, LayoutOriginal)
	}
	var errs []string
	get := func(keys ...string) int64 {
		for _, k := range keys {
			msg, ok := raw[k]
			if !ok {
				continue
			}
			var f float64
			if err := json.Unmarshal(msg, &f); err != nil || f != math.Trunc(f) || f < 1 || f > maxDim {
				errs = append(errs, fmt.Sprintf("%s is %s, not an integer in [1, %d]", k, msg, maxDim))
				return 0
			}
			return int64(f)
		}
		errs = append(errs, fmt.Sprintf("no %s", keys[0]))
		return 0
	}
	d := Dims{
		Layers:       get("num_hidden_layers"),
		Experts:      get(experts...),
		Hidden:       get("hidden_size"),
		Intermediate: get("intermediate_size"),
		Heads:        get("num_attention_heads"),
		KVHeads:      get("num_key_value_heads"),
		Vocab:        get("vocab_size"),
	}
	if _, ok := raw["head_dim"]; ok || layout == LayoutOriginal {
		d.HeadDim = get("head_dim")
	} else if d.Heads > 0 && d.Hidden%d.Heads == 0 {
		d.HeadDim = d.Hidden / d.Heads // the HF default
	} else {
		errs = append(errs, "no head_dim, and hidden_size is not a multiple of num_attention_heads")
	}
	if len(errs) == 0 {
		if d.Hidden%32 != 0 {
			errs = append(errs, fmt.Sprintf("hidden_size %d is not a multiple of the MXFP4 block of 32", d.Hidden))
		}
		if d.Intermediate%32 != 0 {
			errs = append(errs, fmt.Sprintf("intermediate_size %d is not a multiple of the MXFP4 block of 32", d.Intermediate))
		}
	}
	if len(errs) > 0 {
		return Dims{}, fmt.Errorf("config: %s", strings.Join(errs, "; "))
	}
	return d, nil
}

// ExpectedTensors derives the exact tensor set of a gpt-oss checkpoint from
// its config (shared/GPT-OSS.md §3.1), in state-dict order: layout "hf"
// reads config.json and gives the HF names, "original" reads
// original/config.json and gives OpenAI's. Linear weights are [out, in];
// the MXFP4 experts are U8 blocks [E, out, in/32, 16] and scales
// [E, out, in/32], where gate_up (mlp1) is out = 2·intermediate_size,
// in = hidden_size and down (mlp2) is out = hidden_size,
// in = intermediate_size; everything else is BF16.
func ExpectedTensors(config []byte, layout string) ([]Expected, error) {
	d, err := ParseDims(config, layout)
	if err != nil {
		return nil, err
	}
	return d.Tensors(layout), nil
}

// Tensors lists the tensors of a checkpoint with dims d in layout.
func (d Dims) Tensors(layout string) []Expected {
	var out []Expected
	add := func(name, dtype string, shape ...int64) {
		out = append(out, Expected{Name: name, DType: dtype, Shape: shape})
	}
	bf := func(name string, shape ...int64) { add(name, "BF16", shape...) }
	E, H, I, V := d.Experts, d.Hidden, d.Intermediate, d.Vocab
	q, kv := d.Heads*d.HeadDim, d.KVHeads*d.HeadDim
	if layout == LayoutOriginal {
		bf("embedding.weight", V, H)
		for n := int64(0); n < d.Layers; n++ {
			p := fmt.Sprintf("block.%d.", n)
			bf(p+"attn.norm.scale", H)
			bf(p+"attn.qkv.weight", q+2*kv, H)
			bf(p+"attn.qkv.bias", q+2*kv)
			bf(p+"attn.sinks", d.Heads)
			bf(p+"attn.out.weight", H, q)
			bf(p+"attn.out.bias", H)
			bf(p+"mlp.norm.scale", H)
			bf(p+"mlp.gate.weight", E, H)
			bf(p+"mlp.gate.bias", E)
			add(p+"mlp.mlp1_weight.blocks", "U8", E, 2*I, H/32, 16)
			add(p+"mlp.mlp1_weight.scales", "U8", E, 2*I, H/32)
			bf(p+"mlp.mlp1_bias", E, 2*I)
			add(p+"mlp.mlp2_weight.blocks", "U8", E, H, I/32, 16)
			add(p+"mlp.mlp2_weight.scales", "U8", E, H, I/32)
			bf(p+"mlp.mlp2_bias", E, H)
		}
		bf("norm.scale", H)
		bf("unembedding.weight", V, H)
		return out
	}
	bf("model.embed_tokens.weight", V, H)
	for n := int64(0); n < d.Layers; n++ {
		p := fmt.Sprintf("model.layers.%d.", n)
		bf(p+"input_layernorm.weight", H)
		bf(p+"self_attn.q_proj.weight", q, H)
		bf(p+"self_attn.q_proj.bias", q)
		bf(p+"self_attn.k_proj.weight", kv, H)
		bf(p+"self_attn.k_proj.bias", kv)
		bf(p+"self_attn.v_proj.weight", kv, H)
		bf(p+"self_attn.v_proj.bias", kv)
		bf(p+"self_attn.sinks", d.Heads)
		bf(p+"self_attn.o_proj.weight", H, q)
		bf(p+"self_attn.o_proj.bias", H)
		bf(p+"post_attention_layernorm.weight", H)
		bf(p+"mlp.router.weight", E, H)
		bf(p+"mlp.router.bias", E)
		add(p+"mlp.experts.gate_up_proj_blocks", "U8", E, 2*I, H/32, 16)
		add(p+"mlp.experts.gate_up_proj_scales", "U8", E, 2*I, H/32)
		bf(p+"mlp.experts.gate_up_proj_bias", E, 2*I)
		add(p+"mlp.experts.down_proj_blocks", "U8", E, H, I/32, 16)
		add(p+"mlp.experts.down_proj_scales", "U8", E, H, I/32)
		bf(p+"mlp.experts.down_proj_bias", E, H)
	}
	bf("model.norm.weight", H)
	bf("lm_head.weight", V, H)
	return out
}

// Mismatch is a tensor present under its expected name with the wrong
// dtype or shape.
type Mismatch struct {
	Name      string  `json:"name"`
	DType     string  `json:"dtype"`
	Shape     []int64 `json:"shape"`
	WantDType string  `json:"want_dtype"`
	WantShape []int64 `json:"want_shape"`
}

// MXFP4Problem is a fault of one MXFP4 blocks/scales pair.
type MXFP4Problem struct {
	Tensor string `json:"tensor"`
	// NaNScales is the number of 0xFF scale bytes (NaN in E8M0).
	NaNScales int64  `json:"nan_scales,omitempty"`
	Detail    string `json:"detail"`
}

// SchemaReport is the gpt-oss schema check of one checkpoint.
type SchemaReport struct {
	Dir        string         `json:"dir"`
	Layout     string         `json:"layout"`
	Dims       Dims           `json:"dims"`
	Expected   int            `json:"expected"` // tensors the config calls for
	Found      int            `json:"found"`    // tensors in the checkpoint
	Missing    []string       `json:"missing,omitempty"`
	Extra      []string       `json:"extra,omitempty"`
	Mismatched []Mismatch     `json:"mismatched,omitempty"`
	MXFP4      []MXFP4Problem `json:"mxfp4,omitempty"`
	OK         bool           `json:"ok"`
}

// Problem is one finding of a structure check, for tables.
type Problem struct {
	Check   string `json:"check"`   // "header", "schema", "mxfp4", …
	Subject string `json:"subject"` // a file or a tensor
	Detail  string `json:"detail"`
}

// Problems lists the report's findings one per tensor.
func (r *SchemaReport) Problems() []Problem {
	var out []Problem
	for _, n := range r.Missing {
		out = append(out, Problem{"schema", n, "missing: the config calls for it"})
	}
	for _, n := range r.Extra {
		out = append(out, Problem{"schema", n, "extra: not a tensor of this config"})
	}
	for _, m := range r.Mismatched {
		out = append(out, Problem{"schema", m.Name, fmt.Sprintf("is %s %v, want %s %v", m.DType, m.Shape, m.WantDType, m.WantShape)})
	}
	for _, m := range r.MXFP4 {
		out = append(out, Problem{"mxfp4", m.Tensor, m.Detail})
	}
	return out
}

// CheckSchema checks the checkpoint in dir against the tensor set its
// config calls for. dir holds config.json and the safetensors files: the
// snapshot directory for layout "hf", its original/ folder for "original".
// It reports missing, extra and mismatched (dtype or shape) tensors by name,
// and for every MXFP4 pair that the scales have the blocks' leading shape
// and that no scale byte is 0xFF (NaN in E8M0). The error is for a
// checkpoint that cannot be checked at all: an unreadable or invalid config,
// or safetensors files convert.OpenCheckpoint rejects (convert.ErrFormat).
func CheckSchema(dir, layout string) (*SchemaReport, error) {
	cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	d, err := ParseDims(cfg, layout)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "config.json"), err)
	}
	c, err := convert.OpenCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return checkTensors(c, d, layout), nil
}

func checkTensors(c *convert.Checkpoint, d Dims, layout string) *SchemaReport {
	want := d.Tensors(layout)
	r := &SchemaReport{Dir: c.Dir, Layout: layout, Dims: d, Expected: len(want), Found: len(c.Names())}
	wanted := map[string]bool{}
	for _, e := range want {
		wanted[e.Name] = true
		t, ok := c.Tensor(e.Name)
		if !ok {
			r.Missing = append(r.Missing, e.Name)
			continue
		}
		if t.DType != e.DType || !slices.Equal(t.Shape, e.Shape) {
			r.Mismatched = append(r.Mismatched, Mismatch{Name: e.Name, DType: t.DType, Shape: t.Shape, WantDType: e.DType, WantShape: e.Shape})
		}
	}
	for _, n := range c.Names() {
		if !wanted[n] {
			r.Extra = append(r.Extra, n)
		}
	}
	sort.Strings(r.Missing)
	r.MXFP4 = checkMXFP4(c, layout)
	r.OK = len(r.Missing)+len(r.Extra)+len(r.Mismatched)+len(r.MXFP4) == 0
	return r
}

// mxfp4Pairs lists the blocks/scales name pairs present in c.
func mxfp4Pairs(c *convert.Checkpoint, layout string) [][2]string {
	bsuf, ssuf := "_blocks", "_scales"
	if layout == LayoutOriginal {
		bsuf, ssuf = ".blocks", ".scales"
	}
	var out [][2]string
	seen := map[string]bool{}
	for _, n := range c.Names() {
		var stem string
		switch {
		case strings.HasSuffix(n, bsuf):
			stem = strings.TrimSuffix(n, bsuf)
		case strings.HasSuffix(n, ssuf):
			stem = strings.TrimSuffix(n, ssuf)
		default:
			continue
		}
		if !seen[stem] {
			seen[stem] = true
			out = append(out, [2]string{stem + bsuf, stem + ssuf})
		}
	}
	return out
}

var nanScale = []byte{0xFF}

func checkMXFP4(c *convert.Checkpoint, layout string) []MXFP4Problem {
	var out []MXFP4Problem
	for _, p := range mxfp4Pairs(c, layout) {
		b, bok := c.Tensor(p[0])
		s, sok := c.Tensor(p[1])
		switch {
		case !bok:
			out = append(out, MXFP4Problem{Tensor: p[1], Detail: "scales without blocks " + p[0]})
			continue
		case !sok:
			out = append(out, MXFP4Problem{Tensor: p[0], Detail: "blocks without scales " + p[1]})
			continue
		}
		if b.DType != "U8" || s.DType != "U8" {
			out = append(out, MXFP4Problem{Tensor: p[0], Detail: fmt.Sprintf("blocks are %s and scales %s, want U8 and U8", b.DType, s.DType)})
		}
		if len(b.Shape) != 4 || b.Shape[3] != 16 || !slices.Equal(b.Shape[:3], s.Shape) {
			out = append(out, MXFP4Problem{Tensor: p[0], Detail: fmt.Sprintf("blocks %v and scales %v disagree (want blocks [E, out, in/32, 16], scales [E, out, in/32])", b.Shape, s.Shape)})
		}
		if s.DType == "U8" {
			if n := int64(bytes.Count(c.Bytes(s), nanScale)); n > 0 {
				out = append(out, MXFP4Problem{Tensor: p[1], NaNScales: n,
					Detail: fmt.Sprintf("%d of %d scales are 0xFF (NaN in E8M0)", n, s.Size)})
			}
		}
	}
	return out
}
