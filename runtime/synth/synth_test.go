package synth

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/runtime"
	"github.com/gptoss/gptoss/runtime/cpu"
)

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func stats(b []byte) (mean, sd float64) {
	n := len(b) / 2
	var s, ss float64
	for i := 0; i < n; i++ {
		v := float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16))
		s += v
		ss += v * v
	}
	mean = s / float64(n)
	return mean, math.Sqrt(ss/float64(n) - mean*mean)
}

func TestWriteLayoutOpensAndVerifies(t *testing.T) {
	c, err := Config("tiny")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a, b, d := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "d")
	for _, w := range []struct {
		path string
		seed uint64
	}{{a, 1}, {b, 1}, {d, 2}} {
		if err := WriteLayout(w.path, c, w.seed); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(a + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind: %v", err)
	}
	if fileSum(t, a) != fileSum(t, b) {
		t.Fatal("same config and seed gave different files")
	}
	if fileSum(t, a) == fileSum(t, d) {
		t.Fatal("different seeds gave the same file")
	}
	l, err := convert.OpenLayout(a)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Verify(); err != nil {
		t.Fatal(err)
	}
	if l.Config != c {
		t.Fatalf("config %+v, want %+v", l.Config, c)
	}
	fi, _ := os.Stat(a)
	if want, _ := FileSize(c); fi.Size() != want {
		t.Fatalf("file is %d bytes, FileSize says %d", fi.Size(), want)
	}
	// The tensor table matches what convert makes of the real tiny checkpoint.
	ck, err := convert.OpenCheckpoint("../../testdata/golden/tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	cfg, _ := os.ReadFile("../../testdata/golden/tiny/config.json")
	ref := filepath.Join(dir, "ref")
	if _, _, err := convert.WriteLayoutFile(ref, ck, cfg, "sha256:x"); err != nil {
		t.Fatal(err)
	}
	rl, err := convert.OpenLayout(ref)
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	if len(rl.Tensors) != len(l.Tensors) {
		t.Fatalf("%d tensors, convert makes %d", len(l.Tensors), len(rl.Tensors))
	}
	for i, rt := range rl.Tensors {
		st := l.Tensors[i]
		if st.Name != rt.Name || st.DType != rt.DType || st.Offset != rt.Offset || st.Size != rt.Size || len(st.Shape) != len(rt.Shape) {
			t.Fatalf("tensor %d: %+v, convert makes %+v", i, st, rt)
		}
		for k := range st.Shape {
			if st.Shape[k] != rt.Shape[k] {
				t.Fatalf("tensor %s: shape %v, convert makes %v", st.Name, st.Shape, rt.Shape)
			}
		}
	}
	// Value distributions.
	for _, c := range []struct {
		name     string
		mean, sd float64
	}{{"embedding.weight", 0, 0.02}, {"block.0.attn.norm.scale", 1, 0.02}, {"block.1.attn.sinks", 0, 0.1}, {"block.2.mlp.mlp2_bias", 0, 0.01}} {
		m, sd := stats(l.Bytes(c.name))
		if math.Abs(m-c.mean) > 0.2*c.sd+0.01 || math.Abs(sd-c.sd) > 0.3*c.sd {
			t.Errorf("%s: mean %.4f sd %.4f, want about %.4f, %.4f", c.name, m, sd, c.mean, c.sd)
		}
	}
	for _, s := range l.Bytes("block.0.mlp.mlp1_weight.scales") {
		if s < 119 || s > 121 {
			t.Fatalf("MXFP4 scale %d outside 119…121", s)
		}
	}
}

func TestPresets(t *testing.T) {
	for _, c := range []struct {
		name         string
		layers, exps int
		size         int64
	}{{"20b", 24, 32, 13_761_264_768}, {"120b", 36, 128, 65_248_815_744}} {
		cfg, err := Config(c.name)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.NumHiddenLayers != c.layers || cfg.NumExperts != c.exps || cfg.VocabSize != 201088 {
			t.Fatalf("%s: %+v", c.name, cfg)
		}
		ts, _, err := plan(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for _, x := range ts {
			sum += x.Size
		}
		if sum != c.size { // GPT-OSS.md §3.4 totals
			t.Errorf("%s: tensors hold %d bytes, the real model %d", c.name, sum, c.size)
		}
	}
	if _, err := Config("7b"); err == nil {
		t.Error("unknown preset accepted")
	}
	bad, _ := Config("tiny")
	bad.HiddenSize = 100
	if err := WriteLayout(filepath.Join(t.TempDir(), "x"), bad, 1); err == nil {
		t.Error("hidden 100 (not a multiple of 32) accepted")
	}
}

// A full-width layer (20b's hidden, heads and expert shapes; fewer
// experts, a small vocabulary) runs on the CPU engine with finite,
// non-degenerate logits.
func TestFullWidthRunsFinite(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 MB")
	}
	c, _ := Config("20b")
	c.NumHiddenLayers, c.NumExperts, c.VocabSize = 2, 4, 512
	path := filepath.Join(t.TempDir(), "m")
	if err := WriteLayout(path, c, 7); err != nil {
		t.Fatal(err)
	}
	l, err := convert.OpenLayout(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m, err := cpu.Engine{}.Load(context.Background(), l, runtime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	seq, _ := m.NewSequence(0)
	toks := make([]int32, 40)
	for i := range toks {
		toks[i] = int32(i * 11 % c.VocabSize)
	}
	lg, err := seq.Forward(context.Background(), toks, false)
	if err != nil {
		t.Fatal(err)
	}
	var ss float64
	for _, v := range lg {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatal("non-finite logit")
		}
		ss += float64(v) * float64(v)
	}
	rms := math.Sqrt(ss / float64(len(lg)))
	if rms < 0.1 || rms > 100 {
		t.Fatalf("logit RMS %g: weights not sane", rms)
	}
	t.Logf("logit RMS %.3g", rms)
}

// Tensors spanning many pieces: the chained checksums match the bytes
// (convert's Verify recomputes them).
func TestChainedChecksums(t *testing.T) {
	saved := pieceSize
	defer func() { pieceSize = saved }()
	pieceSize = 4096 + 512 // not a divisor of any tensor size
	c, _ := Config("tiny")
	path := filepath.Join(t.TempDir(), "m")
	if err := WriteLayout(path, c, 3); err != nil {
		t.Fatal(err)
	}
	l, err := convert.OpenLayout(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Verify(); err != nil {
		t.Fatal(err)
	}
	if lt, _ := l.Tensor("embedding.weight"); lt.Size < 10*pieceSize {
		t.Fatalf("embedding is %d bytes: not many pieces", lt.Size)
	}
}
