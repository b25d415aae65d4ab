package chat

import (
	"context"
	"errors"
	"testing"

	"github.com/gptoss/gptoss/internal/layouttest"
	"github.com/gptoss/gptoss/runtime"
	"github.com/gptoss/gptoss/runtime/cpu"
	"github.com/gptoss/gptoss/runtime/sample"
)

// tinyModel is the fixture checkpoint on the CPU engine.
func tinyModel(t *testing.T) runtime.Model {
	t.Helper()
	l := layouttest.Tiny(t)
	m, err := cpu.Engine{}.Load(context.Background(), l, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func session(t *testing.T, m runtime.Model, n int) *Session {
	t.Helper()
	s, err := NewSession(m, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Greedy generation picks the argmax of the logits of the whole sequence
// fed at once, token after token; a second generation that extends the
// first reuses its cache and gives the same tokens as a fresh session.
func TestGenerateGreedyAndPrefixReuse(t *testing.T) {
	m := tinyModel(t)
	ctx := context.Background()
	prompt := []int32{5, 17, 300, 42, 7, 99}
	s := session(t, m, 64)
	res, err := s.Generate(ctx, Request{Prompt: prompt, MaxTokens: 6}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tokens) != 6 || res.Finish != FinishLength || res.Cached != 0 || res.PromptTokens != len(prompt) {
		t.Fatalf("result %+v", res)
	}
	ref := session(t, m, 64)
	seq := append([]int32{}, prompt...)
	for i, id := range res.Tokens {
		logits, err := ref.Logits(ctx, seq, false)
		if err != nil {
			t.Fatal(err)
		}
		if want := sample.Argmax(logits); id != want {
			t.Fatalf("token %d: generated %d, argmax of the full sequence %d", i, id, want)
		}
		seq = append(seq, id)
	}
	// Continue the conversation: prompt + answer + more.
	next := append(append(append([]int32{}, prompt...), res.Tokens...), 11, 12)
	again, err := s.Generate(ctx, Request{Prompt: next, MaxTokens: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// All but the last answer token (sampled, never fed) were cached.
	if again.Cached != len(prompt)+len(res.Tokens)-1 {
		t.Errorf("cached %d, want %d", again.Cached, len(prompt)+len(res.Tokens)-1)
	}
	fresh, err := session(t, m, 64).Generate(ctx, Request{Prompt: next, MaxTokens: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range fresh.Tokens {
		if fresh.Tokens[i] != again.Tokens[i] {
			t.Fatalf("with the cache %v, fresh %v", again.Tokens, fresh.Tokens)
		}
	}
	// A different prompt shares only its first token.
	other, err := s.Generate(ctx, Request{Prompt: []int32{5, 18, 1}, MaxTokens: 1}, nil)
	if err != nil || other.Cached != 1 {
		t.Errorf("other prompt: cached %d, %v", other.Cached, err)
	}
}

func TestGenerateStopsAndLimits(t *testing.T) {
	m := tinyModel(t)
	ctx := context.Background()
	prompt := []int32{1, 2, 3, 4}
	s := session(t, m, 64)
	res, err := s.Generate(ctx, Request{Prompt: prompt, MaxTokens: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The third token as a stop token: generation ends there, with it.
	stop := res.Tokens[2]
	first := -1
	for i, id := range res.Tokens {
		if id == stop {
			first = i
			break
		}
	}
	got, err := s.Generate(ctx, Request{Prompt: prompt, MaxTokens: 5, Stops: sample.NewStops(stop)}, nil)
	if err != nil || got.Finish != FinishStop || len(got.Tokens) != first+1 {
		t.Errorf("with stop %d: %+v %v", stop, got, err)
	}
	// The context bounds the answer: room for 3 more tokens in the cache,
	// a 4th sampled from the last logits.
	small := session(t, m, len(prompt)+3)
	got, err = small.Generate(ctx, Request{Prompt: prompt}, nil)
	if err != nil || got.Finish != FinishLength || len(got.Tokens) != 4 {
		t.Errorf("context-bound: %+v %v", got, err)
	}
	if _, err := small.Generate(ctx, Request{Prompt: make([]int32, len(prompt)+3)}, nil); !errors.Is(err, ErrContext) {
		t.Errorf("prompt filling the context: %v", err)
	}
	if _, err := s.Generate(ctx, Request{Prompt: []int32{1 << 20}}, nil); err == nil {
		t.Error("an out-of-vocabulary token was accepted")
	}
	// Forced tokens are produced as given; an emit error ends the run.
	forced := []int32{9, 8, 7}
	got, err = s.Generate(ctx, Request{Prompt: prompt, Forced: forced}, nil)
	if err != nil || got.Finish != FinishStop || len(got.Tokens) != 3 || got.Tokens[0] != 9 || got.Tokens[2] != 7 {
		t.Errorf("forced: %+v %v", got, err)
	}
	boom := errors.New("client gone")
	n := 0
	_, err = s.Generate(ctx, Request{Prompt: prompt, MaxTokens: 10}, func(int32) error {
		if n++; n == 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 2 {
		t.Errorf("emit error: %v after %d tokens", err, n)
	}
	// A cancelled context stops the generation.
	cctx, cancel := context.WithCancel(ctx)
	n = 0
	_, err = s.Generate(cctx, Request{Prompt: prompt, MaxTokens: 10}, func(int32) error {
		if n++; n == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 3 {
		t.Errorf("cancelled: %v after %d tokens", err, n)
	}
	// And the session still works afterwards.
	if got, err := s.Generate(ctx, Request{Prompt: prompt, MaxTokens: 2}, nil); err != nil || len(got.Tokens) != 2 {
		t.Errorf("after cancel: %+v %v", got, err)
	}
}
