package chat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/internal/fixture"
	"github.com/gptoss/gptoss/runtime/harmony"
	"github.com/gptoss/gptoss/runtime/tokenizer"
)

func TestMain(m *testing.M) {
	code := m.Run()
	fixture.RemoveCached()
	os.Exit(code)
}

// tinyTokenizer is the fixture checkpoint's tokenizer.json: byte tokens
// and the Harmony specials.
func tinyTokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Load(filepath.Join(fixture.Cached(t, fixture.Tiny()), "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// feed runs a completion's text (specials as tokens) through a Stream.
func feed(t *testing.T, tok *tokenizer.Tokenizer, completion string, stops ...string) (*Stream, []Event) {
	t.Helper()
	s := NewStream(tok, stops)
	var evs []Event
	for _, id := range tok.Encode(completion, "all") {
		evs = append(evs, s.Add(id)...)
		if s.Stopped() {
			break
		}
	}
	evs = append(evs, s.Finish()...)
	return s, evs
}

// collect joins the text of each kind; tool calls as name(args).
func collect(evs []Event) (reasoning, content string, calls []string) {
	for _, e := range evs {
		switch e.Kind {
		case Reasoning:
			reasoning += e.Text
		case Content:
			content += e.Text
		case ToolCall:
			if e.Index != len(calls) {
				panic("tool call index out of order")
			}
			calls = append(calls, e.Tool+"(")
		case ToolArgs:
			calls[e.Index] += e.Text
		}
	}
	for i := range calls {
		calls[i] += ")"
	}
	return
}

func TestStreamChannels(t *testing.T) {
	tok := tinyTokenizer(t)
	s, evs := feed(t, tok, "<|channel|>analysis<|message|>User greets. Reply.<|end|>"+
		"<|start|>assistant<|channel|>final<|message|>Héllo, wörld!<|return|>")
	r, c, calls := collect(evs)
	if r != "User greets. Reply." || c != "Héllo, wörld!" || len(calls) != 0 {
		t.Errorf("reasoning %q content %q calls %v", r, c, calls)
	}
	msgs := s.Messages()
	if len(msgs) != 2 || msgs[1].Channel != harmony.ChannelFinal || msgs[1].Content != "Héllo, wörld!" {
		t.Errorf("messages %+v", msgs)
	}
}

func TestStreamToolCall(t *testing.T) {
	tok := tinyTokenizer(t)
	s, evs := feed(t, tok, "<|channel|>analysis<|message|>Need weather.<|end|>"+
		"<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>")
	r, c, calls := collect(evs)
	if r != "Need weather." || c != "" || len(calls) != 1 || calls[0] != `get_weather({"city":"Paris"})` {
		t.Errorf("reasoning %q content %q calls %v", r, c, calls)
	}
	if s.Calls() != 1 {
		t.Errorf("Calls() = %d", s.Calls())
	}
	// The recipient may also sit in the role part.
	_, evs = feed(t, tok, " to=functions.lookup<|channel|>commentary <|constrain|>json<|message|>{}<|call|>")
	if _, _, calls := collect(evs); len(calls) != 1 || calls[0] != "lookup({})" {
		t.Errorf("calls %v", calls)
	}
}

// A model that does not speak Harmony still has its text shown.
func TestStreamNotHarmony(t *testing.T) {
	tok := tinyTokenizer(t)
	for _, text := range []string{
		"just words, no header at all, going on and on past any reasonable header length: " + strings.Repeat("blah ", 120),
		"<|message|>oops",                        // content before a header ends
		"<|channel|>final<|message|>ok<|start|>", // <|start|> inside content
		"short",                                  // ends inside the header
	} {
		s, evs := feed(t, tok, text)
		_, c, _ := collect(evs)
		if !strings.Contains(c, strings.TrimPrefix(strings.TrimPrefix(text, "<|message|>"), "<|channel|>final<|message|>")[:2]) {
			t.Errorf("%q: content %q", text, c)
		}
		if m := s.Messages(); len(m) == 0 || m[len(m)-1].Role != harmony.RoleAssistant || m[len(m)-1].Content == "" {
			t.Errorf("%q: history %+v", text, m)
		}
	}
	// Every byte of plain text comes through exactly once.
	for _, text := range []string{"no harmony here: " + strings.Repeat("ab", 40), "long: " + strings.Repeat("abcé", 300)} {
		_, evs := feed(t, tok, text)
		if _, c, _ := collect(evs); c != text {
			t.Errorf("content %q, want %q", c, text)
		}
	}
}

func TestStreamStopStrings(t *testing.T) {
	tok := tinyTokenizer(t)
	s, evs := feed(t, tok, "<|channel|>final<|message|>one two END three<|return|>", "END", "xyz")
	if _, c, _ := collect(evs); c != "one two " || !s.Stopped() {
		t.Errorf("content %q stopped %v", c, s.Stopped())
	}
	// A partial match is held back, then released when it is not a match.
	s, evs = feed(t, tok, "<|channel|>final<|message|>EN and EN<|return|>", "END")
	if _, c, _ := collect(evs); c != "EN and EN" || s.Stopped() {
		t.Errorf("content %q stopped %v", c, s.Stopped())
	}
	// Reasoning is not searched.
	_, evs = feed(t, tok, "<|channel|>analysis<|message|>END?<|end|><|start|>assistant<|channel|>final<|message|>fine<|return|>", "END")
	if r, c, _ := collect(evs); r != "END?" || c != "fine" {
		t.Errorf("reasoning %q content %q", r, c)
	}
}
