// Package runtime runs gpt-oss models: the engine interface shared by the
// CPU engine (runtime/cpu, the numerical reference) and the CUDA engine
// (runtime/cuda), and the engine registry the commands choose from.
//
// Sub-packages: hw (hardware detection and planning), tokenizer (o200k
// byte-level BPE from tokenizer.json), harmony (the chat format), cpu and
// cuda (engines), sample (sampling), server (the OpenAI-compatible API).
//
// An engine loads a GPU-ready layout (convert.Layout, memory-mapped) into a
// Model. A Model holds the weights; each Sequence holds one KV cache, so
// one loaded model can serve several conversations. Token ids are int32;
// logits are float32, vocab_size per position.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/runtime/sample"
)

// Options tune an engine; zero values pick defaults.
type Options struct {
	// Threads caps the CPU engine's worker goroutines (0: GOMAXPROCS).
	Threads int
	// Device is the CUDA device ordinal (the doctor plan's GPU).
	Device int
	// MaxContext bounds a sequence's length (0: the engine's default,
	// at most the model's context).
	MaxContext int
	// TuneDir is where an engine may keep what it measured on this machine
	// (the CUDA engine's kernel choices under GPTOSS_CUDA_DEC=auto); empty:
	// it measures at every load and keeps nothing.
	TuneDir string
	// DecodeQ8 runs one-token forwards (decode) with the attention's QKV
	// and output projections and the unembedding quantized to 8 bits at
	// load (q8.go); forwards of several tokens keep BF16.
	DecodeQ8 bool
}

// Engine loads models. Engines register themselves with Register.
type Engine interface {
	// Name is "cpu" or "cuda".
	Name() string
	// Available says whether the engine can run here (a driver, a device);
	// a nil error means yes, otherwise the reason.
	Available() error
	// Load makes a model from an opened layout. The layout must stay open
	// until the model is closed (the CPU engine reads weights from the
	// mapping in place).
	Load(ctx context.Context, l *convert.Layout, o Options) (Model, error)
}

// Model is a loaded model.
type Model interface {
	Config() convert.ModelConfig
	// NewSequence starts an empty sequence (KV cache) of at most maxLen
	// tokens (0: Options.MaxContext or the engine's default).
	NewSequence(maxLen int) (Sequence, error)
	// Engine names the engine that runs it ("cpu", "cuda").
	Engine() string
	Close() error
}

// DeviceMemoryReporter is an optional interface of a Model that holds
// accelerator memory (the CUDA engine): the most bytes of device memory it
// has held at once. bench-engine reports it.
type DeviceMemoryReporter interface {
	PeakDeviceBytes() int64
}

// Sequence is one sequence's state: the tokens fed so far and their KV
// cache. A Sequence is not safe for concurrent use.
type Sequence interface {
	// Len is the number of tokens in the cache (the next position).
	Len() int
	// Forward appends tokens at positions Len()…Len()+len(tokens)-1 and
	// returns logits: those of the last token (vocab_size floats), or with
	// all set those of every token (len(tokens)·vocab_size, row-major).
	// The returned slice is valid until the next call.
	Forward(ctx context.Context, tokens []int32, all bool) ([]float32, error)
	// Truncate drops every token from position n on (n ≤ Len()), so a
	// conversation can reuse a shared prefix.
	Truncate(n int) error
	Close() error
}

// ErrUnavailable is wrapped by Open when the asked-for engine cannot run here.
var ErrUnavailable = errors.New("engine unavailable")

var (
	mu      sync.Mutex
	engines = map[string]Engine{}
)

// Register makes an engine available by name; engines call it from init.
func Register(e Engine) {
	mu.Lock()
	defer mu.Unlock()
	engines[e.Name()] = e
}

// Lookup returns a registered engine.
func Lookup(name string) (Engine, bool) {
	mu.Lock()
	defer mu.Unlock()
	e, ok := engines[name]
	return e, ok
}

// Engines lists the registered engine names, sorted.
func Engines() []string {
	mu.Lock()
	defer mu.Unlock()
	var names []string
	for n := range engines {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Pick returns the engine called name; "auto" (or "") takes preferred (the
// doctor plan's engine) when it is available, else cuda when available,
// else cpu. A named engine that is not available is an error wrapping
// ErrUnavailable with the reason.
func Pick(name, preferred string) (Engine, error) {
	if name != "" && name != "auto" {
		e, ok := Lookup(name)
		if !ok {
			return nil, fmt.Errorf("%w: no engine %q in this build (have %v)", ErrUnavailable, name, Engines())
		}
		if err := e.Available(); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, name, err)
		}
		return e, nil
	}
	for _, n := range []string{preferred, "cuda", "cpu"} {
		if e, ok := Lookup(n); ok && e.Available() == nil {
			return e, nil
		}
	}
	return nil, fmt.Errorf("%w: no engine can run here (have %v)", ErrUnavailable, Engines())
}

// DeviceSampler is implemented by sequences that can draw the next token
// where the logits are (the CUDA engine), saving the copy of the logits and
// the host's pass over the vocabulary. u is the caller's uniform draw
// (sample.Sampler.Uniform), so a seeded generation gives the same tokens on
// either side. ok is false where the device declines (penalties, a very wide
// nucleus): the caller samples the logits Forward returned, with the same u.
type DeviceSampler interface {
	SampleDevice(p sample.Params, u float64) (tok int32, ok bool, err error)
}
