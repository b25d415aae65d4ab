package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/runtime"
	_ "github.com/gptoss/gptoss/runtime/cpu" // the CPU engine
	"github.com/gptoss/gptoss/runtime/hw"
	"github.com/gptoss/gptoss/runtime/tokenizer"
)

// defaultContext is the sequence length run and serve allocate when
// --context is not given: the KV cache grows with it, and few chats need
// the model's full 131072 tokens.
const defaultContext = 8192

// engineFlags are the flags of the commands that load a model.
type engineFlags struct {
	engine  string
	format  string
	context int
	threads int
	// decodeWeights: bf16, or q8 (runtime.Options.DecodeQ8)
	decodeWeights string
}

func (f *engineFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.engine, "engine", "auto", "auto (the doctor plan: cuda when the model fits a GPU, else cpu), cpu or cuda")
	c.Flags().StringVar(&f.format, "format", "", "which cached format to run: hf or original (default: the newest)")
	c.Flags().IntVar(&f.context, "context", 0, fmt.Sprintf("the most tokens a sequence holds, prompt and answer (default %d, at most the model's)", defaultContext))
	c.Flags().IntVar(&f.threads, "threads", 0, "CPU engine worker threads (default: all cores)")
	addDecodeWeights(c, &f.decodeWeights)
}

// addDecodeWeights adds --decode-weights to a command that loads a model.
func addDecodeWeights(c *cobra.Command, v *string) {
	c.Flags().StringVar(v, "decode-weights", "bf16", "bf16, or q8: decode with the attention and unembedding weights quantized to 8 bits at load (faster decode, a little less exact; prefill stays bf16; the model holds both)")
}

// decodeQ8 parses --decode-weights.
func decodeQ8(v string) (bool, error) {
	switch v {
	case "", "bf16":
		return false, nil
	case "q8":
		return true, nil
	}
	return false, usageError{fmt.Errorf("--decode-weights %q: bf16 or q8", v)}
}

// q8Extra is the device memory the Q8 decode copies add: 8.5 bits a weight
// of the QKV, output and unembedding matrices (runtime.Q8Sizes).
func q8Extra(l *convert.Layout) int64 {
	var n int64
	for _, t := range l.Tensors {
		if runtime.Q8DecodeTensor(t.Name) {
			q, d := runtime.Q8Sizes(1, int(t.Size/2))
			n += int64(q + d)
		}
	}
	return n
}

// loadedModel is a cached model, its GPU-ready layout and a loaded engine
// model. Close releases all three.
type loadedModel struct {
	name     string // the manifest's name (openai/gpt-oss-20b)
	snapshot string // the snapshot directory with tokenizer.json (when any)
	layout   *convert.Layout
	model    runtime.Model
	plan     hw.Plan
	context  int // the sequence length to allocate
}

func (m *loadedModel) Close() error {
	err := m.model.Close()
	if cerr := m.layout.Close(); err == nil {
		err = cerr
	}
	return err
}

// maxContext is the model's own limit (initial context × rope scaling).
func maxContext(c convert.ModelConfig) int {
	n := c.InitialContextLength
	if c.RopeScalingFactor > 1 {
		n = int(float64(n) * c.RopeScalingFactor)
	}
	if n <= 0 {
		n = 131072
	}
	return n
}

// tokenizer loads the snapshot's tokenizer.json.
func (m *loadedModel) tokenizer() (*tokenizer.Tokenizer, error) {
	p := filepath.Join(m.snapshot, "tokenizer.json")
	if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("%s has no tokenizer.json in the cache (pull its hf format, or feed ids with --tokens)", m.name)
	}
	tok, err := tokenizer.Load(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.name, err)
	}
	return tok, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// loadModel resolves MODEL to a cached gpt-oss entry, converts it to the
// GPU-ready layout if that was not done yet, opens the layout and loads it
// on the engine --engine names (auto: the doctor plan's).
func loadModel(ctx context.Context, g *globalOptions, arg string, f engineFlags) (*loadedModel, error) {
	switch f.engine {
	case "", "auto", hw.EngineCPU, hw.EngineCUDA:
	default:
		return nil, usageError{fmt.Errorf("--engine %q: want auto, cpu or cuda", f.engine)}
	}
	if f.context < 0 {
		return nil, usageError{fmt.Errorf("--context %d: want > 0", f.context)}
	}
	if f.threads < 0 {
		return nil, usageError{fmt.Errorf("--threads %d: want ≥ 0", f.threads)}
	}
	store, es, err := g.cached(arg, f.format)
	if err != nil {
		return nil, err
	}
	// The newest entry that is a gpt-oss checkpoint.
	var e cache.Entry
	var cfg []byte
	var firstErr error
	for _, c := range es {
		_, b, err := convertSource(store, c)
		if err == nil {
			e, cfg = c, b
			break
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if cfg == nil {
		return nil, firstErr
	}
	res, err := convertEntry(ctx, store, e)
	if err != nil {
		return nil, err
	}
	l, err := convert.OpenLayout(res.path)
	if err != nil {
		return nil, err
	}
	lm := &loadedModel{name: e.Manifest.Name, snapshot: store.SnapshotDir(e.Manifest), layout: l}
	// The original format has no tokenizer.json: take the one of another
	// cached format of the same model.
	if _, err := os.Stat(filepath.Join(lm.snapshot, "tokenizer.json")); err != nil {
		all, _ := matchEntries(store, arg, "")
		for _, c := range all {
			if d := store.SnapshotDir(c.Manifest); fileExists(filepath.Join(d, "tokenizer.json")) {
				lm.snapshot = d
				break
			}
		}
	}
	limit := maxContext(l.Config)
	lm.context = f.context
	if lm.context == 0 {
		lm.context = min(defaultContext, limit)
	}
	if lm.context > limit {
		l.Close()
		return nil, usageError{fmt.Errorf("--context %d: %s holds at most %d tokens", f.context, lm.name, limit)}
	}
	q8, err := decodeQ8(f.decodeWeights)
	if err != nil {
		l.Close()
		return nil, err
	}
	opts := runtime.Options{Threads: f.threads, MaxContext: lm.context, TuneDir: g.tuneDir(), DecodeQ8: q8}
	preferred := ""
	if f.engine == "" || f.engine == "auto" || f.engine == hw.EngineCUDA {
		var weights int64
		for _, t := range l.Tensors {
			weights += t.Size
		}
		if q8 {
			weights += q8Extra(l)
		}
		if spec, err := hw.SpecFromConfig(lm.name, cfg, weights); err == nil {
			root, _ := g.cacheRoot()
			lm.plan = hw.PlanFit(spec, hw.Detect(hw.Options{DiskPath: root}), lm.context)
			preferred = lm.plan.Engine
			if lm.plan.Engine == hw.EngineCUDA {
				opts.Device = lm.plan.GPU
			}
		}
	}
	eng, err := runtime.Pick(f.engine, preferred)
	if err != nil {
		l.Close()
		return nil, &codeError{exitNoFit, err}
	}
	m, err := eng.Load(ctx, l, opts)
	if err != nil {
		l.Close()
		if errors.Is(err, runtime.ErrUnavailable) {
			return nil, &codeError{exitNoFit, err}
		}
		return nil, fmt.Errorf("loading %s on %s: %w", lm.name, eng.Name(), err)
	}
	lm.model = m
	return lm, nil
}

// parseTokens reads "1,2,3" (spaces allowed) as token ids.
func parseTokens(s string, vocab int) ([]int32, error) {
	var out []int32
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		var v int64
		if _, err := fmt.Sscan(f, &v); err != nil || fmt.Sprint(v) != f {
			return nil, usageError{fmt.Errorf("--tokens: %q is not a token id", f)}
		}
		if v < 0 || (vocab > 0 && v >= int64(vocab)) {
			return nil, usageError{fmt.Errorf("--tokens: %d out of range: the vocabulary has %d tokens", v, vocab)}
		}
		out = append(out, int32(v))
	}
	if len(out) == 0 {
		return nil, usageError{errors.New("--tokens: no token ids")}
	}
	return out, nil
}

// kernelsOf is the engine's account of the kernels it runs ("" for an
// engine without one): the CUDA engine's decode version and, when it was
// tuned, what each version measured.
func kernelsOf(m runtime.Model) string {
	if k, ok := m.(interface{ Kernels() string }); ok {
		return k.Kernels()
	}
	return ""
}
