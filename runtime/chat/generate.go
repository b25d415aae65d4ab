package chat

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/gptoss/gptoss/runtime"
	"github.com/gptoss/gptoss/runtime/sample"
)

// Finish reasons, as the OpenAI API names them.
const (
	FinishStop   = "stop"   // a stop token (or the end of a forced script)
	FinishLength = "length" // max tokens, or the sequence is full
)

// errHalt, returned by an emit callback, ends a generation as if a stop
// token came (a stop string matched).
var errHalt = errors.New("halt")

// ErrContext means a prompt does not leave room for one generated token.
var ErrContext = errors.New("prompt too long for the context")

// Session is one KV cache and the tokens in it. Consecutive generations
// reuse the longest common prefix of their prompts (Sequence.Truncate), so
// a multi-turn chat only feeds each new turn. A Session is not safe for
// concurrent use.
type Session struct {
	model  runtime.Model
	seq    runtime.Sequence
	fed    []int32 // the tokens in seq, in order
	maxLen int
	// deviceSampling: draw tokens on the engine's device when its
	// sequences can (runtime.DeviceSampler); GPTOSS_DEVICE_SAMPLING=0 turns
	// it off (the host samples the returned logits).
	deviceSampling bool
}

// NewSession starts a sequence of at most maxLen tokens (> 0).
func NewSession(m runtime.Model, maxLen int) (*Session, error) {
	if maxLen <= 0 {
		return nil, fmt.Errorf("context %d: want > 0", maxLen)
	}
	seq, err := m.NewSequence(maxLen)
	if err != nil {
		return nil, err
	}
	return &Session{model: m, seq: seq, maxLen: maxLen, deviceSampling: os.Getenv("GPTOSS_DEVICE_SAMPLING") != "0"}, nil
}

// MaxLen is the most tokens the session holds (prompt + generated).
func (s *Session) MaxLen() int { return s.maxLen }

// Close frees the sequence.
func (s *Session) Close() error { return s.seq.Close() }

// Request is one generation.
type Request struct {
	Prompt []int32
	// MaxTokens caps the generated tokens (0: until the context is full).
	MaxTokens int
	// Sampler draws tokens; nil is greedy.
	Sampler *sample.Sampler
	// Stops end the generation; the stop token is returned (in Result.Tokens
	// and to emit) but not fed to the model.
	Stops sample.Stops
	// Forced, when not nil, replaces sampling: these tokens are produced in
	// order (the model still runs on them), then generation ends with
	// FinishStop. A test hook for deterministic completions.
	Forced []int32
}

// Result is what a generation produced.
type Result struct {
	Tokens       []int32 // generated tokens, the stop token included
	Finish       string  // FinishStop or FinishLength
	PromptTokens int
	Cached       int // prompt tokens that were already in the cache
}

// Generate feeds the prompt (after the part of it already cached) and
// generates until a stop token, MaxTokens, the context limit or ctx ends.
// emit, when not nil, sees each token as it is produced; an error from it
// ends the generation with that error. On error the cache stays consistent
// (what was fed is recorded), so the next Generate can reuse it.
func (s *Session) Generate(ctx context.Context, req Request, emit func(id int32) error) (Result, error) {
	res := Result{PromptTokens: len(req.Prompt)}
	if len(req.Prompt) == 0 {
		return res, errors.New("empty prompt")
	}
	if len(req.Prompt) >= s.maxLen {
		return res, fmt.Errorf("%w: %d prompt tokens, the context holds %d", ErrContext, len(req.Prompt), s.maxLen)
	}
	vocab := s.model.Config().VocabSize
	for _, id := range req.Prompt {
		if id < 0 || (vocab > 0 && int(id) >= vocab) {
			return res, fmt.Errorf("token %d out of range: the vocabulary has %d", id, vocab)
		}
	}
	// Reuse the common prefix, but always feed at least the last prompt
	// token: its logits are needed.
	var err error
	n := commonPrefix(s.fed, req.Prompt)
	if n == len(req.Prompt) {
		n--
	}
	if n, err = s.truncate(n); err != nil {
		return res, err
	}
	res.Cached = n
	logits, err := s.forward(ctx, req.Prompt[n:])
	if err != nil {
		return res, err
	}
	smp := req.Sampler
	if smp == nil {
		smp, _ = sample.New(sample.Params{})
	}
	if req.Forced != nil && len(req.Forced) == 0 {
		res.Finish = FinishStop
		return res, nil
	}
	for {
		var id int32
		if req.Forced != nil {
			id = req.Forced[len(res.Tokens)]
		} else if ds, ok := s.seq.(runtime.DeviceSampler); ok && s.deviceSampling {
			u := smp.Uniform()
			tok, ok, err := ds.SampleDevice(smp.Params(), u)
			if err != nil {
				s.reset()
				return res, err
			}
			if ok {
				id = tok
			} else {
				id = smp.SampleUniform(logits, u)
			}
		} else {
			id = smp.Sample(logits)
		}
		smp.Accept(id)
		res.Tokens = append(res.Tokens, id)
		if emit != nil {
			if err := emit(id); err == errHalt {
				res.Finish = FinishStop
				return res, nil
			} else if err != nil {
				return res, err
			}
		}
		// The last token is never fed: nothing would read its logits.
		if req.Stops.Has(id) || (req.Forced != nil && len(res.Tokens) == len(req.Forced)) {
			res.Finish = FinishStop
			return res, nil
		}
		if req.MaxTokens > 0 && len(res.Tokens) >= req.MaxTokens {
			res.Finish = FinishLength
			return res, nil
		}
		if len(s.fed) >= s.maxLen {
			res.Finish = FinishLength
			return res, nil
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if logits, err = s.forward(ctx, []int32{id}); err != nil {
			return res, err
		}
	}
}

// Logits feeds tokens from scratch and returns the logits of the last
// position, or of every position with all (len(tokens)·vocab floats).
func (s *Session) Logits(ctx context.Context, tokens []int32, all bool) ([]float32, error) {
	if len(tokens) > s.maxLen {
		return nil, fmt.Errorf("%w: %d tokens, the context holds %d", ErrContext, len(tokens), s.maxLen)
	}
	if _, err := s.truncate(0); err != nil {
		return nil, err
	}
	out, err := s.seq.Forward(ctx, tokens, all)
	if err != nil {
		s.reset()
		return nil, err
	}
	s.fed = append(s.fed, tokens...)
	return out, nil
}

func (s *Session) forward(ctx context.Context, toks []int32) ([]float32, error) {
	logits, err := s.seq.Forward(ctx, toks, false)
	if err != nil {
		// What the engine kept is unknown: start over next time.
		s.reset()
		return nil, err
	}
	s.fed = append(s.fed, toks...)
	return logits, nil
}

// truncate keeps the first n tokens (fewer if the engine refuses: then
// none) and returns how many it kept.
func (s *Session) truncate(n int) (int, error) {
	if n == len(s.fed) && s.seq.Len() == n {
		return n, nil
	}
	if err := s.seq.Truncate(n); err != nil {
		s.fed = s.fed[:0]
		return 0, s.seq.Truncate(0)
	}
	s.fed = s.fed[:n]
	return n, nil
}

// reset forgets the cache contents (after an engine error).
func (s *Session) reset() {
	s.fed = s.fed[:0]
	_ = s.seq.Truncate(0)
}

func commonPrefix(a, b []int32) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// CommonPrefix is how many leading tokens of prompt the cache already
// holds: a scheduler gives a request the session that saves the most.
func (s *Session) CommonPrefix(prompt []int32) int { return commonPrefix(s.fed, prompt) }
