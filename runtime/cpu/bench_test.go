package cpu

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/runtime"
	"github.com/gptoss/gptoss/runtime/synth"
)

// Benchmarks on one synthetic layer of 20b's shapes (go test -bench .
// -benchtime 3x ./runtime/cpu/): the per-layer cost of prefill and decode.

func benchModel(b *testing.B) *Model {
	b.Helper()
	c, _ := synth.Config("20b")
	c.NumHiddenLayers, c.VocabSize = 1, 1024
	path := filepath.Join(b.TempDir(), "m.layout")
	if err := synth.WriteLayout(path, c, 1); err != nil {
		b.Fatal(err)
	}
	l, err := convert.OpenLayout(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	m, err := Load(context.Background(), l, runtime.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

func BenchmarkLayer20bPrefill512(b *testing.B) {
	m := benchModel(b)
	toks := make([]int32, 512)
	for i := range toks {
		toks[i] = int32(i * 7 % 1024)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		seq, _ := m.NewSequence(1024)
		if _, err := seq.Forward(context.Background(), toks, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(toks))/b.Elapsed().Seconds(), "tok/s")
}

func BenchmarkLayer20bDecode(b *testing.B) {
	m := benchModel(b)
	seq, _ := m.NewSequence(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := seq.Forward(context.Background(), []int32{int32(i % 1024)}, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
}
