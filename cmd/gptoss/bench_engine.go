package main

// gptoss bench-engine: times an engine on a synthetic model of the real
// shapes (runtime/synth), so engines can be measured without the weights.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/runtime"
	_ "github.com/gptoss/gptoss/runtime/cpu" // the CPU engine
	"github.com/gptoss/gptoss/runtime/synth"
)

type benchEngineOpts struct {
	synthetic      string
	layers, vocab  int
	engine         string
	prompt, decode int
	contexts       string
	dir            string
	threads        int
	seed           uint64
	tuneDir        string // the engines' tuning results (<cache>/tune)
	decodeWeights  string // --decode-weights
	q8             bool   // decodeWeights parsed
}

// benchDecode is one decode measurement.
type benchDecode struct {
	Context    int     `json:"context"`
	Tokens     int     `json:"tokens"`
	Seconds    float64 `json:"seconds"`
	TokS       float64 `json:"tok_s"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

type benchEngineReport struct {
	Engine string `json:"engine"`
	// Kernels is the engine's account of its kernels (the CUDA engine's
	// decode version, and what tuning measured).
	Kernels        string              `json:"kernels,omitempty"`
	Synthetic      string              `json:"synthetic"`
	Config         convert.ModelConfig `json:"config"`
	Layout         string              `json:"layout"`
	LayoutBytes    int64               `json:"layout_bytes"`
	Reused         bool                `json:"reused"`
	WriteSeconds   float64             `json:"write_seconds"`
	LoadSeconds    float64             `json:"load_seconds"`
	PrefillTokens  int                 `json:"prefill_tokens"`
	PrefillSeconds float64             `json:"prefill_seconds"`
	PrefillTokS    float64             `json:"prefill_tok_s"`
	// PrefillCPUSeconds is the process's CPU time (user+system) over the
	// prefill: on a shared machine, tokens per CPU-second still compare.
	PrefillCPUSeconds float64 `json:"prefill_cpu_seconds"`
	// PrefillFirstSeconds is the same prefill run first after load
	// (untouched weights and activation memory fault in); the prefill_*
	// figures are the second run.
	PrefillFirstSeconds float64       `json:"prefill_first_seconds"`
	Decode              []benchDecode `json:"decode"`
	PeakRSSBytes        int64         `json:"peak_rss_bytes"`
	PeakDeviceBytes     int64         `json:"peak_device_bytes,omitempty"`
	Threads             int           `json:"threads,omitempty"`
}

func newBenchEngineCmd(g *globalOptions) *cobra.Command {
	o := &benchEngineOpts{}
	c := &cobra.Command{
		Use:    "bench-engine --synthetic 20b|120b|tiny",
		Short:  "Time an inference engine on a synthetic model of the real shapes",
		Hidden: true,
		Long: `Write (or reuse, with --dir) a synthetic GPU-ready layout with random
weights of a preset's shapes, then report: load time (open → first token
ready), prefill tokens/s over --prompt tokens (the second prefill after
load; the first is reported apart), decode tokens/s at each
--context (the cache first filled to that many tokens), peak RSS (and peak
device memory for engines that report it).`,
		Example: `  gptoss bench-engine --synthetic 20b --layers 2 --vocab 8192 --engine cpu
  gptoss bench-engine --synthetic 120b --engine cuda --context 0,8192,32768 --dir /scratch --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctxs, err := parseContexts(o.contexts)
			if err != nil {
				return usageError{err}
			}
			if o.synthetic == "" {
				return usageError{fmt.Errorf("--synthetic 20b|120b|tiny is required")}
			}
			switch o.engine {
			case "auto", "cpu", "cuda":
			default:
				return usageError{fmt.Errorf("--engine %q: want auto, cpu or cuda", o.engine)}
			}
			if o.prompt < 1 || o.decode < 1 {
				return usageError{fmt.Errorf("--prompt and --decode must be at least 1")}
			}
			cfg, err := synth.Config(o.synthetic)
			if err != nil {
				return usageError{err}
			}
			if o.q8, err = decodeQ8(o.decodeWeights); err != nil {
				return err
			}
			if o.layers < 0 || o.vocab < 0 {
				return usageError{fmt.Errorf("--layers and --vocab must be positive")}
			}
			if o.layers > 0 {
				cfg.NumHiddenLayers = o.layers
			}
			if o.vocab > 0 {
				cfg.VocabSize = o.vocab
			}
			o.tuneDir = g.tuneDir()
			rep, err := benchEngine(cmd.Context(), cmd.ErrOrStderr(), g.quiet || g.json, o, cfg, ctxs)
			if err != nil {
				return err
			}
			if g.json {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(rep)
			}
			printBenchEngine(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&o.synthetic, "synthetic", "", "the preset: 20b, 120b or tiny")
	f.IntVar(&o.layers, "layers", 0, "override the preset's layer count")
	f.IntVar(&o.vocab, "vocab", 0, "override the preset's vocabulary size")
	f.StringVar(&o.engine, "engine", "auto", "auto, cpu or cuda")
	f.IntVar(&o.prompt, "prompt", 512, "prefill length in tokens")
	f.IntVar(&o.decode, "decode", 64, "tokens decoded at each context")
	f.StringVar(&o.contexts, "context", "0,8192", "comma-separated cache fills to measure decode at")
	f.StringVar(&o.dir, "dir", "", "keep the synthetic layout here and reuse it (default: a temporary directory, removed)")
	f.IntVar(&o.threads, "threads", 0, "CPU engine worker threads (default: all cores)")
	f.Uint64Var(&o.seed, "seed", 1, "the synthetic weights' seed")
	addDecodeWeights(c, &o.decodeWeights)
	return c
}

func parseContexts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("--context %q: want comma-separated token counts (0 or more)", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func benchEngine(ctx context.Context, log io.Writer, quiet bool, o *benchEngineOpts, cfg convert.ModelConfig, ctxs []int) (*benchEngineReport, error) {
	say := func(format string, a ...any) {
		if !quiet {
			fmt.Fprintf(log, format+"\n", a...)
		}
	}
	eng, err := runtime.Pick(o.engine, "")
	if err != nil {
		return nil, err
	}
	rep := &benchEngineReport{Engine: eng.Name(), Synthetic: o.synthetic, Config: cfg, Decode: []benchDecode{}}
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "gptoss-bench-engine"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, fmt.Sprintf("synthetic-%s-L%d-V%d-s%d.layout", o.synthetic, cfg.NumHiddenLayers, cfg.VocabSize, o.seed))
	rep.Layout = path
	if l, err := convert.OpenLayout(path); err == nil {
		rep.Reused = l.Config == cfg && l.SourceManifest == synth.SourceManifest
		l.Close()
	}
	if !rep.Reused {
		size, err := synth.FileSize(cfg)
		if err != nil {
			return nil, err
		}
		say("writing a synthetic %s layout (%d layers, vocab %d, %.2f GB) to %s", o.synthetic, cfg.NumHiddenLayers, cfg.VocabSize, float64(size)/1e9, path)
		start := time.Now()
		if err := synth.WriteLayout(path, cfg, o.seed); err != nil {
			return nil, err
		}
		rep.WriteSeconds = time.Since(start).Seconds()
	}
	if fi, err := os.Stat(path); err == nil {
		rep.LayoutBytes = fi.Size()
	}
	resetPeakRSS() // writing the file mapped it; measure the engine only

	maxCtx := 0
	for _, c := range ctxs {
		maxCtx = max(maxCtx, c)
	}
	seqLen := max(o.prompt, maxCtx+o.decode)
	rng := rand.New(rand.NewPCG(o.seed, 99))
	toks := func(n int) []int32 {
		t := make([]int32, n)
		for i := range t {
			t[i] = int32(rng.IntN(cfg.VocabSize))
		}
		return t
	}

	start := time.Now()
	l, err := convert.OpenLayout(path)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	m, err := eng.Load(ctx, l, runtime.Options{Threads: o.threads, MaxContext: seqLen, TuneDir: o.tuneDir, DecodeQ8: o.q8})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	seq, err := m.NewSequence(seqLen)
	if err != nil {
		return nil, err
	}
	if _, err := seq.Forward(ctx, toks(1), false); err != nil {
		return nil, err
	}
	rep.LoadSeconds = time.Since(start).Seconds()
	seq.Close()
	rep.Kernels = kernelsOf(m)
	say("loaded on %s in %.2fs", eng.Name(), rep.LoadSeconds)
	if rep.Kernels != "" {
		say("kernels: %s", rep.Kernels)
	}
	rep.Threads = o.threads

	// The first prefill after load also faults in the weights it had not
	// touched yet and the engine's activation memory; the second is the
	// steady state.
	prompt := toks(o.prompt)
	for run := 0; run < 2; run++ {
		seq, err = m.NewSequence(seqLen)
		if err != nil {
			return nil, err
		}
		cpu0 := cpuTime()
		start = time.Now()
		if _, err := seq.Forward(ctx, prompt, false); err != nil {
			return nil, err
		}
		seq.Close()
		if run == 0 {
			rep.PrefillFirstSeconds = time.Since(start).Seconds()
			continue
		}
		rep.PrefillTokens, rep.PrefillSeconds = o.prompt, time.Since(start).Seconds()
		rep.PrefillTokS = float64(o.prompt) / rep.PrefillSeconds
		rep.PrefillCPUSeconds = cpuTime() - cpu0
	}
	say("prefill: %d tokens in %.2fs, %.1f tok/s (the first after load: %.2fs)", o.prompt, rep.PrefillSeconds, rep.PrefillTokS, rep.PrefillFirstSeconds)

	for _, c := range ctxs {
		seq, err := m.NewSequence(seqLen)
		if err != nil {
			return nil, err
		}
		for done := 0; done < c; {
			n := min(c-done, 2048)
			if _, err := seq.Forward(ctx, toks(n), false); err != nil {
				return nil, err
			}
			done += n
		}
		next := toks(o.decode)
		cpu0 := cpuTime()
		start := time.Now()
		for i := 0; i < o.decode; i++ {
			if _, err := seq.Forward(ctx, next[i:i+1], false); err != nil {
				return nil, err
			}
		}
		d := benchDecode{Context: c, Tokens: o.decode, Seconds: time.Since(start).Seconds(), CPUSeconds: cpuTime() - cpu0}
		d.TokS = float64(o.decode) / d.Seconds
		rep.Decode = append(rep.Decode, d)
		say("decode at context %d: %d tokens in %.2fs, %.2f tok/s", c, o.decode, d.Seconds, d.TokS)
		seq.Close()
	}
	rep.PeakRSSBytes = peakRSS()
	switch r := m.(type) {
	case runtime.DeviceMemoryReporter:
		rep.PeakDeviceBytes = r.PeakDeviceBytes()
	case interface{ PeakDeviceBytes() uint64 }:
		rep.PeakDeviceBytes = int64(r.PeakDeviceBytes())
	}
	return rep, nil
}

func printBenchEngine(w io.Writer, r *benchEngineReport) {
	fmt.Fprintf(w, "engine %s, synthetic %s: %d layers, %d experts (top-%d), hidden %d, vocab %d\n",
		r.Engine, r.Synthetic, r.Config.NumHiddenLayers, r.Config.NumExperts, r.Config.ExpertsPerToken, r.Config.HiddenSize, r.Config.VocabSize)
	fmt.Fprintf(w, "layout   %.3f GB (%s)\n", float64(r.LayoutBytes)/1e9, r.Layout)
	fmt.Fprintf(w, "load     %.2f s (open → first token ready)\n", r.LoadSeconds)
	fmt.Fprintf(w, "prefill  %.1f tok/s (%d tokens in %.2f s, %.2f CPU-s; the first after load took %.2f s)\n",
		r.PrefillTokS, r.PrefillTokens, r.PrefillSeconds, r.PrefillCPUSeconds, r.PrefillFirstSeconds)
	for _, d := range r.Decode {
		fmt.Fprintf(w, "decode   %.2f tok/s at context %d (%d tokens in %.2f s, %.2f CPU-s)\n", d.TokS, d.Context, d.Tokens, d.Seconds, d.CPUSeconds)
	}
	fmt.Fprintf(w, "peak RSS %.3f GB (%.2f× the layout)\n", float64(r.PeakRSSBytes)/1e9, float64(r.PeakRSSBytes)/float64(max(r.LayoutBytes, 1)))
	if r.PeakDeviceBytes > 0 {
		fmt.Fprintf(w, "peak device memory %.3f GB\n", float64(r.PeakDeviceBytes)/1e9)
	}
}

// peakRSS is this process's peak resident set (VmHWM), in bytes; 0 where
// /proc is missing.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuTime is the process's user+system CPU time in seconds.
func cpuTime() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// resetPeakRSS resets VmHWM to the current RSS (Linux: clear_refs 5).
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }
