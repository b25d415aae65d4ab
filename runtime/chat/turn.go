package chat

import (
	"context"
	"fmt"
	"strings"

	"github.com/gptoss/gptoss/runtime/harmony"
	"github.com/gptoss/gptoss/runtime/sample"
)

// FinishToolCalls is the finish reason of a completion that ends in a tool
// call (<|call|>), as the OpenAI API names it.
const FinishToolCalls = "tool_calls"

// Tokenizer is what a chat turn needs: harmony's interface plus Encode
// with special tokens (for prefills and scripts).
type Tokenizer interface {
	harmony.Tokenizer
	Encode(s string, allowedSpecial ...string) []int32
}

// Turn is one assistant turn of a conversation.
type Turn struct {
	Conv harmony.Conversation
	// Prefill is Harmony text the assistant's message is forced to start
	// with, after "<|start|>assistant" (e.g. "<|channel|>commentary
	// to=functions." to force a tool call).
	Prefill string
	// MaxTokens caps the generated tokens (0: the context's room).
	MaxTokens int
	Sampler   *sample.Sampler
	// Stop are strings that end the answer (not included).
	Stop []string
	// Forced, when not empty, is a completion (Harmony text) replayed
	// instead of sampled: the Script test hook.
	Forced string
}

// Call is a function call the assistant made.
type Call struct {
	Name, Arguments string
}

// TurnResult is a finished turn.
type TurnResult struct {
	Reasoning, Content string
	Calls              []Call
	// Finish is FinishStop, FinishLength or FinishToolCalls.
	Finish           string
	PromptTokens     int
	CompletionTokens int
	CachedTokens     int
	// Messages are the assistant's messages, for the history
	// (harmony.AppendCompletion).
	Messages []harmony.Message
}

// PromptFor renders a turn's prompt: the conversation, "<|start|>assistant"
// and the prefill.
func PromptFor(tok Tokenizer, t Turn) (prompt, prefill []int32, err error) {
	prompt, err = harmony.Render(tok, t.Conv)
	if err != nil {
		return nil, nil, err
	}
	if t.Prefill != "" {
		prefill = tok.Encode(t.Prefill, "all")
		prompt = append(prompt, prefill...)
	}
	return prompt, prefill, nil
}

// Chat runs one assistant turn: it renders the prompt, generates until
// <|return|> or <|call|> (or a limit, or a stop string) and reports what
// the model says as Events to emit (nil: none). An error from emit ends
// the turn with that error.
func (s *Session) Chat(ctx context.Context, tok Tokenizer, t Turn, emit func(Event) error) (TurnResult, error) {
	var res TurnResult
	prompt, prefill, err := PromptFor(tok, t)
	if err != nil {
		return res, err
	}
	st := NewStream(tok, t.Stop)
	req := Request{Prompt: prompt, MaxTokens: t.MaxTokens, Sampler: t.Sampler, Stops: sample.NewStops(harmony.StopTokens(tok)...)}
	if t.Forced != "" {
		req.Forced = tok.Encode(t.Forced, "all")
	}
	var content, reasoning strings.Builder
	handle := func(evs []Event) error {
		for _, e := range evs {
			switch e.Kind {
			case Reasoning:
				reasoning.WriteString(e.Text)
			case Content:
				content.WriteString(e.Text)
			case ToolCall:
				res.Calls = append(res.Calls, Call{Name: e.Tool})
			case ToolArgs:
				res.Calls[e.Index].Arguments += e.Text
			}
			if emit != nil {
				if err := emit(e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := handle(st.Prefill(prefill)); err != nil {
		return res, err
	}
	gen, err := s.Generate(ctx, req, func(id int32) error {
		if err := handle(st.Add(id)); err != nil {
			return err
		}
		if st.Stopped() {
			return errHalt
		}
		return nil
	})
	res.PromptTokens, res.CompletionTokens, res.CachedTokens = gen.PromptTokens, len(gen.Tokens), gen.Cached
	if err != nil {
		return res, err
	}
	if err := handle(st.Finish()); err != nil {
		return res, err
	}
	res.Reasoning, res.Content, res.Messages = reasoning.String(), content.String(), st.Messages()
	res.Finish = gen.Finish
	if len(res.Calls) > 0 && gen.Finish == FinishStop && !st.Stopped() {
		res.Finish = FinishToolCalls
	}
	return res, nil
}

// Room is how many tokens a turn may generate after its prompt; an error
// when the prompt leaves none.
func (s *Session) Room(promptTokens int) (int, error) {
	if promptTokens >= s.maxLen {
		return 0, fmt.Errorf("%w: the prompt is %d tokens, the context holds %d", ErrContext, promptTokens, s.maxLen)
	}
	return s.maxLen - promptTokens, nil
}
