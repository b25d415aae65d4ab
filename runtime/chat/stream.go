package chat

import (
	"strings"
	"unicode/utf8"

	"github.com/gptoss/gptoss/runtime/harmony"
)

// Kind says what a stream Event carries.
type Kind int

const (
	// Reasoning is chain of thought (the analysis channel).
	Reasoning Kind = iota + 1
	// Content is text for the user (the final channel, and commentary
	// preambles without a recipient).
	Content
	// ToolCall starts a function call: Tool (the function's name, without
	// the "functions." namespace) and Index (0, 1, …) are set.
	ToolCall
	// ToolArgs is the next piece of the current call's JSON arguments.
	ToolArgs
)

// Event is a piece of a completion, in the shape chat clients show it.
type Event struct {
	Kind  Kind
	Text  string // Reasoning, Content, ToolArgs
	Tool  string // ToolCall
	Index int    // ToolCall, ToolArgs: which call of this completion
}

// maxHeaderBytes bounds a message header: a model that writes more than
// this without <|message|> is not speaking Harmony (an untrained or
// mismatched model) and its tokens are shown as plain text instead. Real
// headers ("assistant to=functions.NAME<|channel|>commentary
// <|constrain|>json") stay far below it even with 64-character names.
const maxHeaderBytes = 512

// Stream turns a sampled completion, token by token, into Events: it runs
// the Harmony parser and maps channels and recipients. A model that does
// not follow Harmony (the parser fails, or a header never ends) is not an
// error: from there on its tokens are decoded as plain Content, so even
// nonsense from an untrained model is shown.
//
// Stop strings (the OpenAI API's "stop") apply to Content: the text is cut
// before the first match and Stopped reports it; Content that could be the
// start of a stop string is held back until it is not.
type Stream struct {
	tok     harmony.Tokenizer
	p       *harmony.Parser
	ids     []int32 // every token added
	mark    int     // ids before mark are accounted for by events
	inHead  bool    // the parser is in a header
	head    int     // bytes in the current header
	raw     bool    // Harmony was abandoned: plain text
	pending []byte  // raw mode: an incomplete UTF-8 sequence
	rawText strings.Builder

	cur    harmony.Message // the message being read (from its header)
	tools  int             // calls started
	inCall bool

	stops   []string
	held    string // content held back for the stop strings
	stopped bool
	content strings.Builder // content emitted (for the stop-string search)
}

// NewStream starts reading a completion that follows a prompt ending in
// "<|start|>assistant".
func NewStream(tok harmony.Tokenizer, stops []string) *Stream {
	var ss []string
	for _, s := range stops {
		if s != "" {
			ss = append(ss, s)
		}
	}
	return &Stream{tok: tok, p: harmony.NewParser(tok), inHead: true, stops: ss}
}

// Stopped reports whether a stop string ended the content: the caller
// stops generating.
func (s *Stream) Stopped() bool { return s.stopped }

// Prefill feeds tokens the prompt already holds after "<|start|>assistant"
// (a forced header): the parser reads them as if sampled, and the events
// they complete (a tool call's start) are returned.
func (s *Stream) Prefill(ids []int32) []Event {
	var out []Event
	for _, id := range ids {
		out = append(out, s.Add(id)...)
	}
	s.mark = len(s.ids)
	return out
}

// Add feeds the next sampled token.
func (s *Stream) Add(id int32) []Event {
	s.ids = append(s.ids, id)
	if s.stopped {
		return nil
	}
	if s.raw {
		return s.rawAdd(id)
	}
	evs := s.p.Add(id)
	if s.inHead {
		s.head += len(s.tok.Decode([]int32{id}))
	}
	out := s.events(evs)
	if s.raw {
		return out
	}
	if s.inHead && s.head > maxHeaderBytes {
		return append(out, s.abandon()...)
	}
	return out
}

// Finish ends the completion (a stop token, a length limit): an unfinished
// message is completed, held-back content is released.
func (s *Stream) Finish() []Event {
	var out []Event
	if !s.raw && !s.stopped {
		out = s.events(s.p.Finish())
		if !s.raw && s.p.Err() != nil {
			out = append(out, s.abandon()...)
		}
	}
	if s.raw && len(s.pending) > 0 && !s.stopped {
		out = append(out, s.text(Content, strings.ToValidUTF8(string(s.pending), "\uFFFD"))...)
		s.pending = nil
	}
	if s.held != "" && !s.stopped {
		out = append(out, Event{Kind: Content, Text: s.held})
		s.content.WriteString(s.held)
		s.held = ""
	}
	return out
}

// Messages are the completion's messages, for the conversation history
// (harmony.AppendCompletion). A completion read as plain text is one final
// message.
func (s *Stream) Messages() []harmony.Message {
	msgs := append([]harmony.Message(nil), s.p.Messages()...)
	if s.raw {
		msgs = append(msgs, harmony.Message{Role: harmony.RoleAssistant, Channel: harmony.ChannelFinal, Content: s.rawText.String()})
	}
	return msgs
}

// Calls is the number of tool calls the completion made.
func (s *Stream) Calls() int { return s.tools }

func (s *Stream) events(evs []harmony.Event) []Event {
	var out []Event
	for _, e := range evs {
		switch e.Kind {
		case harmony.EventHeader:
			s.inHead, s.head = false, 0
			s.cur = harmony.Message{Role: e.Role, Name: e.Name, Channel: e.Channel, Recipient: e.Recipient, ContentType: e.ContentType}
			s.inCall = false
			if name, ok := callee(e.Recipient); ok && e.Role == harmony.RoleAssistant {
				out = append(out, Event{Kind: ToolCall, Tool: name, Index: s.tools})
				s.tools++
				s.inCall = true
			}
		case harmony.EventContent:
			switch {
			case s.inCall:
				out = append(out, Event{Kind: ToolArgs, Text: e.Delta, Index: s.tools - 1})
			case s.cur.Channel == harmony.ChannelAnalysis:
				out = append(out, Event{Kind: Reasoning, Text: e.Delta})
			default:
				out = append(out, s.text(Content, e.Delta)...)
			}
		case harmony.EventDone:
			s.inHead, s.head, s.inCall = true, 0, false
		case harmony.EventError:
			return append(out, s.abandon()...)
		}
	}
	if len(out) > 0 || !s.inHead {
		s.mark = len(s.ids)
	}
	return out
}

// callee is the function a recipient names ("functions.get_weather" →
// "get_weather"); other recipients (built-in tools) keep their full name.
func callee(recipient string) (string, bool) {
	if recipient == "" || recipient == "all" || recipient == harmony.RoleAssistant || recipient == harmony.RoleUser {
		return "", false
	}
	return strings.TrimPrefix(recipient, "functions."), true
}

// abandon switches to plain text: the tokens no event covered yet are
// decoded and shown as Content.
func (s *Stream) abandon() []Event {
	s.raw = true
	var out []Event
	for _, id := range s.ids[s.mark:] {
		out = append(out, s.rawAdd(id)...)
	}
	s.mark = len(s.ids)
	return mergeText(out)
}

func (s *Stream) rawAdd(id int32) []Event {
	s.pending = append(s.pending, s.tok.Decode([]int32{id})...)
	n := 0
	for n < len(s.pending) {
		r, size := utf8.DecodeRune(s.pending[n:])
		if r == utf8.RuneError && size <= 1 {
			if !utf8.FullRune(s.pending[n:]) {
				break // wait for the rest of the character
			}
			n++ // an invalid byte: replaced below
			continue
		}
		n += size
	}
	if n == 0 {
		return nil
	}
	txt := strings.ToValidUTF8(string(s.pending[:n]), "\uFFFD")
	s.pending = append(s.pending[:0], s.pending[n:]...)
	s.rawText.WriteString(txt)
	return s.text(Content, txt)
}

// text emits content through the stop-string filter.
func (s *Stream) text(k Kind, t string) []Event {
	if len(s.stops) == 0 {
		s.content.WriteString(t)
		return []Event{{Kind: k, Text: t}}
	}
	buf := s.held + t
	// The earliest complete match ends the content.
	cut := -1
	for _, st := range s.stops {
		if i := strings.Index(buf, st); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		s.stopped = true
		s.held = ""
		if cut == 0 {
			return nil
		}
		s.content.WriteString(buf[:cut])
		return []Event{{Kind: k, Text: buf[:cut]}}
	}
	// Hold back the longest tail that is a prefix of a stop string.
	keep := 0
	for _, st := range s.stops {
		for n := min(len(st)-1, len(buf)); n > keep; n-- {
			if strings.HasSuffix(buf, st[:n]) {
				keep = n
				break
			}
		}
	}
	// buf holds whole characters and so does every prefix of a stop
	// string that matches its tail: the cut is on a character boundary.
	emit := buf[:len(buf)-keep]
	s.held = buf[len(emit):]
	if emit == "" {
		return nil
	}
	s.content.WriteString(emit)
	return []Event{{Kind: k, Text: emit}}
}

// mergeText joins consecutive events of the same text kind.
func mergeText(evs []Event) []Event {
	var out []Event
	for _, e := range evs {
		if n := len(out); n > 0 && out[n-1].Kind == e.Kind && e.Kind != ToolCall && out[n-1].Index == e.Index {
			out[n-1].Text += e.Text
			continue
		}
		out = append(out, e)
	}
	return out
}
