package convert

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const tinyHF, tinyOrig = "../testdata/golden/tiny", "../testdata/golden/tiny/original"

func writeTiny(t *testing.T, dir, digest string) (path, sum string) {
	t.Helper()
	c, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "layout.bin")
	sum, size, err := WriteLayoutFile(path, c, cfg, digest)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	b, _ := os.ReadFile(path)
	if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != sum || int64(len(b)) != size {
		t.Fatalf("returned sha256/size %s/%d, file %x/%d", sum, size, h, len(b))
	}
	return path, sum
}

func TestLayoutBothSourcesIdentical(t *testing.T) {
	const d = "sha256:0123"
	p1, s1 := writeTiny(t, tinyHF, d)
	p2, s2 := writeTiny(t, tinyOrig, d)
	_, s3 := writeTiny(t, tinyHF, d)
	if s1 != s2 {
		t.Errorf("HF and original sources give different layouts: %s vs %s", s1, s2)
	}
	if s1 != s3 {
		t.Errorf("re-conversion differs: %s vs %s", s1, s3)
	}
	b1, _ := os.ReadFile(p1)
	b2, _ := os.ReadFile(p2)
	if !bytes.Equal(b1, b2) {
		t.Error("layout bytes differ")
	}
	if _, s4 := writeTiny(t, tinyHF, "sha256:other"); s4 == s1 {
		t.Error("the source digest is not recorded")
	}
}

func TestLayoutOpenViewsAndAlignment(t *testing.T) {
	p, _ := writeTiny(t, tinyHF, "sha256:abc")
	l, err := OpenLayout(p)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Verify(); err != nil {
		t.Fatal(err)
	}
	if l.Config.NumHiddenLayers != 4 || l.Config.NumExperts != 8 || l.Config.RMSNormEps != 1e-5 || l.SourceManifest != "sha256:abc" {
		t.Errorf("config %+v source %s", l.Config, l.SourceManifest)
	}
	if len(l.Tensors) != 4*15+3 {
		t.Errorf("%d tensors", len(l.Tensors))
	}
	// File order is layer-major; layer blocks start on 2 MiB.
	if l.Tensors[0].Name != "embedding.weight" || l.Tensors[len(l.Tensors)-1].Name != "unembedding.weight" {
		t.Errorf("first %s, last %s", l.Tensors[0].Name, l.Tensors[len(l.Tensors)-1].Name)
	}
	var prev int64
	for _, tt := range l.Tensors {
		if tt.Offset%TensorAlign != 0 || tt.Offset < prev {
			t.Errorf("%s at %d", tt.Name, tt.Offset)
		}
		prev = tt.Offset + tt.Size
		if strings.HasSuffix(tt.Name, ".attn.norm.scale") || tt.Name == "embedding.weight" || tt.Name == "norm.scale" {
			if tt.Offset%LayerAlign != 0 {
				t.Errorf("block of %s starts at %d, not 2 MiB aligned", tt.Name, tt.Offset)
			}
		}
	}
	// Views equal the sources: original names one to one, and HF q‖k‖v.
	orig, err := OpenCheckpoint(tinyOrig)
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	for _, n := range orig.Names() {
		ti, _ := orig.Tensor(n)
		lt, ok := l.Tensor(n)
		if !ok {
			t.Fatalf("layout lacks %s", n)
		}
		if !bytes.Equal(l.Bytes(n), orig.Bytes(ti)) || fmt.Sprint(lt.Shape) != fmt.Sprint(ti.Shape) || lt.DType != ti.DType {
			t.Errorf("%s differs from the original checkpoint", n)
		}
	}
	hf, err := OpenCheckpoint(tinyHF)
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	for _, kind := range []string{"weight", "bias"} {
		var cat []byte
		for _, p := range []string{"q", "k", "v"} {
			ti, _ := hf.Tensor("model.layers.2.self_attn." + p + "_proj." + kind)
			cat = append(cat, hf.Bytes(ti)...)
		}
		if !bytes.Equal(l.Bytes("block.2.attn.qkv."+kind), cat) {
			t.Errorf("qkv %s is not q ‖ k ‖ v", kind)
		}
	}
	if l.Bytes("nope") != nil {
		t.Error("a missing tensor has bytes")
	}
}

func TestLayoutMXFP4Dequant(t *testing.T) {
	p, _ := writeTiny(t, tinyHF, "")
	l, err := OpenLayout(p)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	hf, err := OpenCheckpoint(tinyHF)
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	bt, _ := hf.Tensor("model.layers.1.mlp.experts.gate_up_proj_blocks")
	st, _ := hf.Tensor("model.layers.1.mlp.experts.gate_up_proj_scales")
	srcB, srcS := hf.Bytes(bt), hf.Bytes(st)
	lb, ls := l.Bytes("block.1.mlp.mlp1_weight.blocks"), l.Bytes("block.1.mlp.mlp1_weight.scales")
	const n = 8 // blocks compared
	for _, g := range []int{0, 1, len(srcS) / 2, len(srcS) - n} {
		want, got := make([]float32, 32*n), make([]float32, 32*n)
		if err := DequantMXFP4(srcB[16*g:16*(g+n)], srcS[g:g+n], want); err != nil {
			t.Fatal(err)
		}
		if err := DequantMXFP4(lb[16*g:16*(g+n)], ls[g:g+n], got); err != nil {
			t.Fatal(err)
		}
		nonzero := false
		for i := range want {
			if want[i] != got[i] {
				t.Fatalf("block %d value %d: layout %v, source %v", g, i, got[i], want[i])
			}
			nonzero = nonzero || want[i] != 0
		}
		if !nonzero {
			t.Errorf("blocks %d..%d dequantize to all zeros", g, g+n)
		}
	}
	// The helper itself, on a hand-made block: byte 0x71 = even 1 (+0.5), odd 7 (+6); scale 128 = ×2.
	blk := make([]byte, 16)
	blk[0], blk[15] = 0x71, 0xf8
	out := make([]float32, 32)
	DequantMXFP4(blk, []byte{128}, out)
	if out[0] != 1 || out[1] != 12 || out[30] != 0 || out[31] != -12 {
		t.Errorf("dequant: %v", out)
	}
}

func TestLayoutCorruptionAndVersion(t *testing.T) {
	p, _ := writeTiny(t, tinyHF, "")
	l, err := OpenLayout(p)
	if err != nil {
		t.Fatal(err)
	}
	off := l.Tensors[5].Offset + 3
	name := l.Tensors[5].Name
	l.Close()
	b, _ := os.ReadFile(p)
	b[off] ^= 0x40
	os.WriteFile(p, b, 0o644)
	l, err = OpenLayout(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Verify(); err == nil || !strings.Contains(err.Error(), name) {
		t.Errorf("corruption not caught: %v", err)
	}
	l.Close()
	b[off] ^= 0x40
	binary.LittleEndian.PutUint32(b[8:], 99)
	os.WriteFile(p, b, 0o644)
	if _, err := OpenLayout(p); !errors.Is(err, ErrLayoutVersion) || !strings.Contains(err.Error(), "gptoss convert") {
		t.Errorf("unknown version: %v", err)
	}
	binary.LittleEndian.PutUint32(b[8:], LayoutVersion)
	os.WriteFile(p, b[:len(b)-1], 0o644)
	if _, err := OpenLayout(p); err == nil {
		t.Error("a truncated layout opened")
	}
	copy(b, "NOTALAYO")
	os.WriteFile(p, b, 0o644)
	if _, err := OpenLayout(p); err == nil {
		t.Error("bad magic accepted")
	}
}

func TestParseModelConfigBothForms(t *testing.T) {
	a, _ := os.ReadFile(filepath.Join(tinyHF, "config.json"))
	b, _ := os.ReadFile(filepath.Join(tinyOrig, "config.json"))
	ca, err := ParseModelConfig(a)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := ParseModelConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if ca != cb {
		t.Errorf("HF %+v\noriginal %+v", ca, cb)
	}
	if _, err := ParseModelConfig([]byte(`{"model_type":"llama","num_hidden_layers":2}`)); err == nil {
		t.Error("a llama config accepted")
	}
}

func TestLayoutStreamEqualsFile(t *testing.T) {
	p, sum := writeTiny(t, tinyOrig, "sha256:x")
	c, err := OpenCheckpoint(tinyOrig)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg, _ := os.ReadFile(filepath.Join(tinyOrig, "config.json"))
	var buf bytes.Buffer // not a file: sequential writes, zeros written out
	got, err := WriteLayout(&buf, c, cfg, "sha256:x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if got != sum || !bytes.Equal(buf.Bytes(), b) {
		t.Errorf("streamed layout differs from the file: %s vs %s", got, sum)
	}
}
