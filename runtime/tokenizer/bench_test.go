package tokenizer

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/gptoss/gptoss/runtime/tokenizer/tiktokentest"
)

// benchText is about 2 MB of multilingual text: the hand-written texts
// (prose in ten scripts, code, emoji, whitespace runs) repeated, and
// random mixtures of words from every script.
func benchText() string {
	var b strings.Builder
	for b.Len() < 1<<20 {
		b.WriteString(strings.Join(handTexts, "\n"))
	}
	for _, t := range randomTexts(99, 20000) {
		b.WriteString(t)
		b.WriteByte('\n')
	}
	return b.String()
}

func benchEncode(b *testing.B, tok *Tokenizer) {
	text := benchText()
	tok.EncodeOrdinary(text) // warm the piece cache, as a server would be
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	cpu := cpuTime()
	n := 0
	for i := 0; i < b.N; i++ {
		n = len(tok.EncodeOrdinary(text))
	}
	reportCPU(b, cpu, len(text))
	b.ReportMetric(float64(n), "tokens/op")
}

// cpuTime is this process's user+system CPU time in seconds.
func cpuTime() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// reportCPU reports MB per CPU second: on a shared, loaded machine the
// wall-clock MB/s says more about the neighbours than about the code.
func reportCPU(b *testing.B, since float64, size int) {
	if d := cpuTime() - since; d > 0 {
		b.ReportMetric(float64(size)*float64(b.N)/1e6/d, "MB/cpu-s")
	}
}

// BenchmarkEncode: o200k_harmony from tokenizer.json (merges with the
// piece cache).
func BenchmarkEncode(b *testing.B) {
	tok, _ := o200k(b)
	benchEncode(b, tok)
}

// BenchmarkEncodeTiktoken: o200k from the ranks file (whole-token fast
// path, then the cache).
func BenchmarkEncodeTiktoken(b *testing.B) {
	o := tiktokentest.Load(b)
	dir, err := os.MkdirTemp("", "tokbench")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	tok, err := LoadTiktoken(o.WriteRanks(b, dir), HarmonySpecials())
	if err != nil {
		b.Fatal(err)
	}
	benchEncode(b, tok)
}

// BenchmarkPretokenize: the o200k splitter alone.
func BenchmarkPretokenize(b *testing.B) {
	initClasses()
	text := benchText()
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		for j := 0; j < len(text); {
			j = o200kNext(text, j)
		}
	}
	reportCPU(b, cpu, len(text))
}

// BenchmarkEncodeParallel: every CPU encoding its own copy of the text
// with one shared Tokenizer (the piece cache and the learnt bits are
// shared).
func BenchmarkEncodeParallel(b *testing.B) {
	tok, _ := o200k(b)
	text := benchText()
	tok.EncodeOrdinary(text)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tok.EncodeOrdinary(text)
		}
	})
}

// BenchmarkLoad: reading the o200k_harmony tokenizer.json.
func BenchmarkLoad(b *testing.B) {
	o := tiktokentest.Load(b)
	p := o.WriteTokenizerJSON(b, b.TempDir(), false)
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		if _, err := Load(p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((cpuTime()-cpu)/float64(b.N)*1e3, "cpu-ms/op")
}
