package verify

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/convert"
	fx "github.com/gptoss/gptoss/internal/fixture"
)

func TestMain(m *testing.M) {
	code := m.Run()
	fx.RemoveCached()
	os.Exit(code)
}

func mustSchema(t *testing.T, dir, layout string) *SchemaReport {
	t.Helper()
	r, err := CheckSchema(dir, layout)
	if err != nil {
		t.Fatalf("%s (%s): %v", dir, layout, err)
	}
	return r
}

func wantOK(t *testing.T, r *SchemaReport, tensors int) {
	t.Helper()
	if !r.OK || len(r.Problems()) != 0 {
		t.Fatalf("%s (%s): problems %+v", r.Dir, r.Layout, r.Problems())
	}
	if r.Expected != tensors || r.Found != tensors {
		t.Errorf("%s (%s): expected %d, found %d, want %d", r.Dir, r.Layout, r.Expected, r.Found, tensors)
	}
}

func TestSchemaGolden(t *testing.T) {
	wantOK(t, mustSchema(t, "../testdata/golden/tiny", LayoutHF), 4*19+3)
	wantOK(t, mustSchema(t, "../testdata/golden/tiny/original", LayoutOriginal), 4*15+3)
	// The other layout's field names do not parse.
	if _, err := CheckSchema("../testdata/golden/tiny", LayoutOriginal); err == nil || !strings.Contains(err.Error(), "no num_experts") {
		t.Errorf("hf config read as original: %v", err)
	}
	if _, err := CheckSchema("../testdata/golden/tiny", "gguf"); err == nil || !strings.Contains(err.Error(), `unknown checkpoint layout "gguf"`) {
		t.Errorf("unknown layout: %v", err)
	}
}

func TestSchemaFixtures(t *testing.T) {
	tiny := fx.Tiny()
	big := fx.Tiny()
	big.TargetBytes = 6 << 20
	for _, o := range []fx.Options{tiny, big} {
		dir := fx.Cached(t, o)
		l, err := fx.Plan(o)
		if err != nil {
			t.Fatal(err)
		}
		hf := mustSchema(t, dir, LayoutHF)
		wantOK(t, hf, len(l.Tensors))
		wantOK(t, mustSchema(t, filepath.Join(dir, "original"), LayoutOriginal), len(l.Original))
		if hf.Dims.Experts != int64(l.Options.Experts) || hf.Dims.Vocab != int64(l.Options.Vocab) {
			t.Errorf("dims %+v, fixture %+v", hf.Dims, l.Options)
		}
	}
}

// realConfigs are the published 20b / 120b configs' dims (§2.1, §2.2).
func realConfig(layers, experts int, layout string) []byte {
	m := map[string]any{"num_hidden_layers": layers, "hidden_size": 2880, "intermediate_size": 2880,
		"head_dim": 64, "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 201088,
		"swiglu_limit": 7.0, "rope_theta": 150000}
	if layout == LayoutHF {
		m["num_local_experts"] = experts
	} else {
		m["num_experts"] = experts
	}
	b, _ := json.Marshal(m)
	return b
}

func totalBytes(es []Expected) int64 {
	var n int64
	for _, e := range es {
		s := convert.DTypeSize[e.DType]
		for _, d := range e.Shape {
			s *= d
		}
		n += s
	}
	return n
}

func TestExpectedTensorsRealSizes(t *testing.T) {
	// Counts and byte totals of shared/GPT-OSS.md §3 follow from the configs.
	for _, c := range []struct {
		layers, experts int
		layout          string
		tensors         int
		bytes           int64
	}{
		{24, 32, LayoutHF, 459, 13_761_264_768},
		{36, 128, LayoutHF, 687, 65_248_815_744},
		{24, 32, LayoutOriginal, 363, 13_761_264_768},
		{36, 128, LayoutOriginal, 543, 65_248_815_744},
	} {
		es, err := ExpectedTensors(realConfig(c.layers, c.experts, c.layout), c.layout)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != c.tensors || totalBytes(es) != c.bytes {
			t.Errorf("%d layers, %d experts, %s: %d tensors of %d bytes, want %d of %d", c.layers, c.experts, c.layout, len(es), totalBytes(es), c.tensors, c.bytes)
		}
	}
	es, _ := ExpectedTensors(realConfig(24, 32, LayoutHF), LayoutHF)
	want := map[string][]int64{
		"model.layers.0.mlp.experts.gate_up_proj_blocks": {32, 5760, 90, 16},
		"model.layers.0.mlp.experts.gate_up_proj_scales": {32, 5760, 90},
		"model.layers.23.mlp.experts.down_proj_blocks":   {32, 2880, 90, 16},
		"model.layers.5.self_attn.q_proj.weight":         {4096, 2880},
		"model.layers.5.self_attn.k_proj.weight":         {512, 2880},
		"model.layers.5.self_attn.o_proj.weight":         {2880, 4096},
		"model.layers.5.self_attn.sinks":                 {64},
		"model.embed_tokens.weight":                      {201088, 2880},
	}
	for _, e := range es {
		if w, ok := want[e.Name]; ok {
			if !slices.Equal(e.Shape, w) {
				t.Errorf("%s: %v, want %v", e.Name, e.Shape, w)
			}
			delete(want, e.Name)
		}
	}
	if len(want) != 0 {
		t.Errorf("not expected: %v", want)
	}
}

// smallConfig has dims where in/32 differs between gate_up and down.
func smallConfig(layout string, edit func(map[string]any)) []byte {
	m := map[string]any{"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 32,
		"head_dim": 8, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 16}
	if layout == LayoutHF {
		m["num_local_experts"] = 3
	} else {
		m["num_experts"] = 3
	}
	if edit != nil {
		edit(m)
	}
	b, _ := json.Marshal(m)
	return b
}

func TestExpectedTensorsFollowConfig(t *testing.T) {
	get := func(cfg []byte, layout string) map[string]Expected {
		t.Helper()
		es, err := ExpectedTensors(cfg, layout)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]Expected{}
		for _, e := range es {
			if _, dup := m[e.Name]; dup {
				t.Fatalf("%s listed twice", e.Name)
			}
			m[e.Name] = e
		}
		return m
	}
	hf := get(smallConfig(LayoutHF, nil), LayoutHF)
	orig := get(smallConfig(LayoutOriginal, nil), LayoutOriginal)
	if len(hf) != 2*19+3 || len(orig) != 2*15+3 {
		t.Fatalf("%d hf, %d original tensors", len(hf), len(orig))
	}
	check := func(m map[string]Expected, name, dtype string, shape ...int64) {
		t.Helper()
		e, ok := m[name]
		if !ok || e.DType != dtype || !slices.Equal(e.Shape, shape) {
			t.Errorf("%s: %+v (present %v), want %s %v", name, e, ok, dtype, shape)
		}
	}
	check(hf, "model.layers.1.mlp.experts.gate_up_proj_blocks", "U8", 3, 64, 2, 16)
	check(hf, "model.layers.1.mlp.experts.gate_up_proj_scales", "U8", 3, 64, 2)
	check(hf, "model.layers.1.mlp.experts.gate_up_proj_bias", "BF16", 3, 64)
	check(hf, "model.layers.1.mlp.experts.down_proj_blocks", "U8", 3, 64, 1, 16)
	check(hf, "model.layers.1.mlp.experts.down_proj_scales", "U8", 3, 64, 1)
	check(hf, "model.layers.0.self_attn.q_proj.weight", "BF16", 32, 64)
	check(hf, "model.layers.0.self_attn.v_proj.bias", "BF16", 16)
	check(hf, "model.layers.0.mlp.router.weight", "BF16", 3, 64)
	check(hf, "lm_head.weight", "BF16", 16, 64)
	check(orig, "block.1.attn.qkv.weight", "BF16", 32+16+16, 64)
	check(orig, "block.1.attn.out.weight", "BF16", 64, 32)
	check(orig, "block.0.mlp.mlp1_weight.blocks", "U8", 3, 64, 2, 16)
	check(orig, "block.0.mlp.mlp2_weight.scales", "U8", 3, 64, 1)
	check(orig, "unembedding.weight", "BF16", 16, 64)

	// Other dims, other tensors.
	more := get(smallConfig(LayoutHF, func(m map[string]any) {
		m["num_hidden_layers"], m["num_local_experts"], m["intermediate_size"] = 3, 5, 96
	}), LayoutHF)
	if len(more) != 3*19+3 {
		t.Errorf("3 layers: %d tensors", len(more))
	}
	check(more, "model.layers.2.mlp.experts.down_proj_blocks", "U8", 5, 64, 3, 16)
	check(more, "model.layers.2.mlp.experts.gate_up_proj_blocks", "U8", 5, 192, 2, 16)
	// HF: num_experts is an alias, head_dim defaults to hidden / heads.
	alias := get(smallConfig(LayoutHF, func(m map[string]any) {
		delete(m, "num_local_experts")
		delete(m, "head_dim")
		m["num_experts"] = 7
	}), LayoutHF)
	check(alias, "model.layers.0.mlp.router.bias", "BF16", 7)
	check(alias, "model.layers.0.self_attn.q_proj.weight", "BF16", 64, 64)
}

func TestExpectedTensorsBadConfig(t *testing.T) {
	for _, c := range []struct {
		layout string
		cfg    []byte
		want   string
	}{
		{LayoutHF, []byte("{"), "config:"},
		{LayoutHF, []byte("null"), "not a JSON object"},
		{LayoutHF, smallConfig(LayoutHF, func(m map[string]any) { delete(m, "vocab_size") }), "no vocab_size"},
		{LayoutOriginal, smallConfig(LayoutOriginal, func(m map[string]any) { delete(m, "head_dim") }), "no head_dim"},
		{LayoutOriginal, smallConfig(LayoutHF, nil), "no num_experts"},
		{LayoutHF, smallConfig(LayoutHF, func(m map[string]any) { m["hidden_size"] = 48 }), "hidden_size 48 is not a multiple of the MXFP4 block of 32"},
		{LayoutHF, smallConfig(LayoutHF, func(m map[string]any) { m["intermediate_size"] = 40 }), "intermediate_size 40 is not a multiple"},
		{LayoutHF, smallConfig(LayoutHF, func(m map[string]any) { m["num_hidden_layers"] = 2.5 }), "num_hidden_layers is 2.5"},
		{LayoutHF, smallConfig(LayoutHF, func(m map[string]any) { m["vocab_size"] = -1 }), "vocab_size is -1"},
		{LayoutHF, smallConfig(LayoutHF, func(m map[string]any) { m["vocab_size"] = 0 }), "vocab_size is 0"},
		{LayoutHF, smallConfig(LayoutHF, func(m map[string]any) { m["num_local_experts"] = 1e12 }), "num_local_experts is 1000000000000"},
		{LayoutHF, smallConfig(LayoutHF, func(m map[string]any) { m["num_attention_heads"] = "64" }), `num_attention_heads is "64"`},
		{"metal", smallConfig(LayoutHF, nil), `unknown checkpoint layout "metal"`},
	} {
		_, err := ExpectedTensors(c.cfg, c.layout)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: error %v, want %q", c.layout, c.cfg, err, c.want)
		}
	}
}

// writeST writes a safetensors file holding ts (zeros, except scales: 127,
// i.e. 2^0, or fill's byte when fill returns one).
func writeST(t *testing.T, path string, ts []Expected, fill func(name string, b []byte)) {
	t.Helper()
	hdr := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var data []byte
	for _, e := range ts {
		n := convert.DTypeSize[e.DType]
		for _, d := range e.Shape {
			n *= d
		}
		b := make([]byte, n)
		if strings.Contains(e.Name, "scales") {
			for i := range b {
				b[i] = 127
			}
		}
		if fill != nil {
			fill(e.Name, b)
		}
		hdr[e.Name] = map[string]any{"dtype": e.DType, "shape": e.Shape, "data_offsets": []int64{int64(len(data)), int64(len(data)) + n}}
		data = append(data, b...)
	}
	h, err := json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	out = append(append(out, h...), data...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeCheckpoint writes config.json and model.safetensors with the tensors
// the config calls for, after edit.
func writeCheckpoint(t *testing.T, layout string, edit func([]Expected) []Expected, fill func(string, []byte)) string {
	t.Helper()
	dir := t.TempDir()
	cfg := smallConfig(layout, nil)
	es, err := ExpectedTensors(cfg, layout)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		es = edit(es)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)
	writeST(t, filepath.Join(dir, "model.safetensors"), es, fill)
	return dir
}

func edit(name string, f func(e *Expected)) func([]Expected) []Expected {
	return func(es []Expected) []Expected {
		for i := range es {
			if es[i].Name == name {
				f(&es[i])
			}
		}
		return es
	}
}

func TestSchemaReportsProblems(t *testing.T) {
	const gu = "model.layers.1.mlp.experts.gate_up_proj"
	drop := func(name string) func([]Expected) []Expected {
		return func(es []Expected) []Expected {
			return slices.DeleteFunc(es, func(e Expected) bool { return e.Name == name })
		}
	}
	cases := []struct {
		name   string
		layout string
		edit   func([]Expected) []Expected
		fill   func(string, []byte)
		check  func(*SchemaReport) bool
		want   []string // lines of Problems(): "check subject: detail" substrings
	}{
		{"valid", LayoutHF, nil, nil, func(r *SchemaReport) bool { return r.OK }, nil},
		{"valid original", LayoutOriginal, nil, nil, func(r *SchemaReport) bool { return r.OK && r.Found == 2*15+3 }, nil},
		{"renamed", LayoutHF, edit("model.layers.0.self_attn.sinks", func(e *Expected) { e.Name = "model.layers.0.self_attn.sink" }), nil,
			func(r *SchemaReport) bool {
				return slices.Equal(r.Missing, []string{"model.layers.0.self_attn.sinks"}) && slices.Equal(r.Extra, []string{"model.layers.0.self_attn.sink"})
			},
			[]string{"schema model.layers.0.self_attn.sinks: missing", "schema model.layers.0.self_attn.sink: extra"}},
		{"missing", LayoutHF, drop("lm_head.weight"), nil,
			func(r *SchemaReport) bool {
				return slices.Equal(r.Missing, []string{"lm_head.weight"}) && r.Found == r.Expected-1
			},
			[]string{"schema lm_head.weight: missing: the config calls for it"}},
		{"extra", LayoutHF, func(es []Expected) []Expected {
			return append(es, Expected{"model.layers.2.input_layernorm.weight", "BF16", []int64{64}})
		}, nil,
			func(r *SchemaReport) bool {
				return slices.Equal(r.Extra, []string{"model.layers.2.input_layernorm.weight"})
			},
			[]string{"schema model.layers.2.input_layernorm.weight: extra: not a tensor of this config"}},
		{"wrong shape", LayoutHF, edit("model.layers.0.self_attn.k_proj.weight", func(e *Expected) { e.Shape = []int64{64, 16} }), nil,
			func(r *SchemaReport) bool {
				return len(r.Mismatched) == 1 && r.Mismatched[0].Name == "model.layers.0.self_attn.k_proj.weight"
			},
			[]string{"schema model.layers.0.self_attn.k_proj.weight: is BF16 [64 16], want BF16 [16 64]"}},
		{"wrong dtype", LayoutOriginal, edit("block.1.attn.sinks", func(e *Expected) { e.DType = "F32" }), nil,
			func(r *SchemaReport) bool { return len(r.Mismatched) == 1 },
			[]string{"schema block.1.attn.sinks: is F32 [4], want BF16 [4]"}},
		{"NaN scales", LayoutHF, nil, func(name string, b []byte) {
			if name == gu+"_scales" {
				b[0], b[5], b[len(b)-1] = 0xFF, 0xFF, 0xFF
			}
		},
			func(r *SchemaReport) bool {
				return len(r.MXFP4) == 1 && r.MXFP4[0].Tensor == gu+"_scales" && r.MXFP4[0].NaNScales == 3 && len(r.Mismatched) == 0
			},
			[]string{"mxfp4 " + gu + "_scales: 3 of 384 scales are 0xFF (NaN in E8M0)"}},
		{"blocks and scales disagree", LayoutOriginal, edit("block.0.mlp.mlp2_weight.scales", func(e *Expected) { e.Shape = []int64{3, 32, 2} }), nil,
			func(r *SchemaReport) bool { return len(r.MXFP4) == 1 && len(r.Mismatched) == 1 },
			[]string{"mxfp4 block.0.mlp.mlp2_weight.blocks: blocks [3 64 1 16] and scales [3 32 2] disagree",
				"schema block.0.mlp.mlp2_weight.scales: is U8 [3 32 2], want U8 [3 64 1]"}},
		{"blocks not 16 bytes", LayoutHF, edit(gu+"_blocks", func(e *Expected) { e.Shape = []int64{3, 64, 4, 8} }), nil,
			func(r *SchemaReport) bool { return len(r.MXFP4) == 1 && len(r.Mismatched) == 1 },
			[]string{"mxfp4 " + gu + "_blocks: blocks [3 64 4 8] and scales [3 64 2] disagree",
				"schema " + gu + "_blocks: is U8 [3 64 4 8], want U8 [3 64 2 16]"}},
		{"scales without blocks", LayoutHF, drop(gu + "_blocks"), nil,
			func(r *SchemaReport) bool { return len(r.MXFP4) == 1 && len(r.Missing) == 1 },
			[]string{"mxfp4 " + gu + "_scales: scales without blocks " + gu + "_blocks",
				"schema " + gu + "_blocks: missing"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeCheckpoint(t, c.layout, c.edit, c.fill)
			r := mustSchema(t, dir, c.layout)
			var lines []string
			for _, p := range r.Problems() {
				lines = append(lines, fmt.Sprintf("%s %s: %s", p.Check, p.Subject, p.Detail))
			}
			if !c.check(r) {
				t.Errorf("report %+v", r)
			}
			if r.OK != (len(c.want) == 0) || len(lines) != len(c.want) {
				t.Errorf("OK %v, problems:\n%s", r.OK, strings.Join(lines, "\n"))
			}
			all := strings.Join(lines, "\n")
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("problems do not say %q:\n%s", w, all)
				}
			}
		})
	}
}

func TestSchemaUnreadable(t *testing.T) {
	dir := writeCheckpoint(t, LayoutHF, nil, nil)
	// A hostile safetensors file is an error (convert.ErrFormat), not a report.
	os.WriteFile(filepath.Join(dir, "model.safetensors"), []byte("\x02\x00\x00\x00\x00\x00\x00\x00{}xx"), 0o644)
	if _, err := CheckSchema(dir, LayoutHF); !errors.Is(err, convert.ErrFormat) {
		t.Errorf("hostile file: %v", err)
	}
	os.Remove(filepath.Join(dir, "config.json"))
	if _, err := CheckSchema(dir, LayoutHF); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("no config: %v", err)
	}
}
