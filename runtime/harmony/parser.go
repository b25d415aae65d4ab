package harmony

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// EventKind says what an Event reports.
type EventKind int

const (
	// EventHeader: a message's header is complete (Role, Name, Channel,
	// Recipient, ContentType set); its content follows.
	EventHeader EventKind = iota + 1
	// EventContent: Delta is the next piece of the message's text
	// (whole UTF-8 characters only).
	EventContent
	// EventDone: the message is complete (Message, Terminator set).
	EventDone
	// EventError: the stream is malformed (Err set); the parser stops.
	EventError
)

func (k EventKind) String() string {
	switch k {
	case EventHeader:
		return "header"
	case EventContent:
		return "content-delta"
	case EventDone:
		return "message-done"
	case EventError:
		return "error"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is what the parser reports for a token.
type Event struct {
	Kind        EventKind
	Role        string
	Name        string
	Channel     string
	Recipient   string
	ContentType string
	Delta       string
	// Message is the whole message (EventDone).
	Message Message
	// Terminator is the token that ended the message: <|end|>,
	// <|return|>, <|call|> or <|endoftext|>, or "" when Finish ended it
	// (EventDone).
	Terminator string
	Err        error
}

type parseState int

const (
	stateHeader parseState = iota
	stateContent
	stateExpectStart
	stateDone
	stateFailed
)

// Parser parses a completion token by token: what the model samples
// after a prompt that ends with "<|start|>assistant". It is not safe for
// concurrent use.
type Parser struct {
	tok      Tokenizer
	special  map[int32]string // formatting token ids
	state    parseState
	role     string // the role of the next header, when known
	header   strings.Builder
	cur      Message
	content  strings.Builder
	pending  []byte // bytes of an incomplete UTF-8 sequence
	messages []Message
	err      error
}

// NewParser returns a parser for a completion that starts after
// "<|start|>assistant" (so its first message's role is assistant).
func NewParser(tok Tokenizer) *Parser {
	p := &Parser{tok: tok, special: map[int32]string{}, role: RoleAssistant}
	for _, s := range []string{TokStart, TokEnd, TokMessage, TokChannel, TokConstrain, TokReturn, TokCall, TokEndOfText} {
		if id, ok := tok.SpecialID(s); ok {
			p.special[id] = s
		}
	}
	return p
}

// Messages are the messages completed so far.
func (p *Parser) Messages() []Message { return p.messages }

// Done says whether the completion is over: <|return|>, <|call|> or
// <|endoftext|> came (or Finish was called, or the stream failed).
func (p *Parser) Done() bool { return p.state >= stateDone }

// Err is the error that stopped a malformed stream, nil otherwise.
func (p *Parser) Err() error { return p.err }

// Add feeds the next sampled token.
func (p *Parser) Add(id int32) []Event {
	switch p.state {
	case stateDone:
		return p.fail(fmt.Errorf("harmony: token %d after the end of the completion", id))
	case stateFailed:
		return []Event{{Kind: EventError, Err: p.err}}
	}
	sp := p.special[id]
	switch p.state {
	case stateExpectStart:
		if sp == TokEndOfText {
			p.state = stateDone
			return nil
		}
		if sp != TokStart {
			return p.fail(fmt.Errorf("harmony: expected <|start|> after <|end|>, got %s", p.describe(id)))
		}
		p.state = stateHeader
		p.header.Reset()
		return nil
	case stateHeader:
		switch sp {
		case "", TokChannel, TokConstrain:
			if sp != "" {
				p.header.WriteString(sp)
			} else {
				p.header.WriteString(p.tok.Decode([]int32{id}))
			}
			return nil
		case TokMessage:
			m, err := parseHeader(p.header.String(), p.role)
			if err != nil {
				return p.fail(err)
			}
			p.role = ""
			p.cur = m
			p.content.Reset()
			p.pending = p.pending[:0]
			p.state = stateContent
			return []Event{{Kind: EventHeader, Role: m.Role, Name: m.Name, Channel: m.Channel, Recipient: m.Recipient, ContentType: m.ContentType}}
		default:
			return p.fail(fmt.Errorf("harmony: unexpected %s in a message header %q", sp, p.header.String()))
		}
	case stateContent:
		switch sp {
		case TokEnd, TokReturn, TokCall, TokEndOfText:
			evs := p.flush(sp == TokEndOfText)
			evs = append(evs, p.done(sp))
			switch sp {
			case TokEnd:
				p.state = stateExpectStart
			default:
				p.state = stateDone
			}
			return evs
		case TokStart, TokMessage, TokChannel, TokConstrain:
			return p.fail(fmt.Errorf("harmony: unexpected %s in the content of a message", sp))
		}
		p.pending = append(p.pending, p.tok.Decode([]int32{id})...)
		return p.flush(false)
	}
	return nil
}

// Finish ends the stream where it stands (the sampler stopped: a length
// limit, or a stop token the caller handled): an unfinished message is
// completed with what it has. A stream cut inside a header (after its
// first token) is an error.
func (p *Parser) Finish() []Event {
	switch p.state {
	case stateContent:
		evs := p.flush(true)
		evs = append(evs, p.done(""))
		p.state = stateDone
		return evs
	case stateHeader:
		if p.header.Len() == 0 { // nothing of a next message yet
			p.state = stateDone
			return nil
		}
		return p.fail(fmt.Errorf("harmony: the completion ended inside a message header %q", p.header.String()))
	case stateExpectStart:
		p.state = stateDone
	}
	return nil
}

func (p *Parser) done(term string) Event {
	m := p.cur
	m.Content = p.content.String()
	p.messages = append(p.messages, m)
	return Event{Kind: EventDone, Role: m.Role, Name: m.Name, Channel: m.Channel, Recipient: m.Recipient, ContentType: m.ContentType, Message: m, Terminator: term}
}

// flush emits the complete UTF-8 characters of pending; with all, the
// rest too (invalid bytes as U+FFFD).
func (p *Parser) flush(all bool) []Event {
	var out strings.Builder
	b := p.pending
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			if !all && !utf8.FullRune(b) {
				break // wait for the rest of the sequence
			}
			out.WriteRune(utf8.RuneError)
			b = b[1:]
			continue
		}
		out.Write(b[:n])
		b = b[n:]
	}
	p.pending = append(p.pending[:0], b...)
	if out.Len() == 0 {
		return nil
	}
	d := out.String()
	p.content.WriteString(d)
	return []Event{{Kind: EventContent, Role: p.cur.Role, Name: p.cur.Name, Channel: p.cur.Channel, Recipient: p.cur.Recipient, ContentType: p.cur.ContentType, Delta: d}}
}

func (p *Parser) fail(err error) []Event {
	p.err = err
	p.state = stateFailed
	return []Event{{Kind: EventError, Err: err}}
}

func (p *Parser) describe(id int32) string {
	if s, ok := p.special[id]; ok {
		return s
	}
	return fmt.Sprintf("token %d (%q)", id, p.tok.Decode([]int32{id}))
}

// parseHeader reads a header (the text between <|start|> and <|message|>,
// formatting tokens as their literal strings). role is the known role
// ("" when the header starts with it). The recipient may stand in the
// role part or after the channel; a content type comes last.
func parseHeader(h, role string) (Message, error) {
	var m Message
	orig := h
	if i := strings.Index(h, TokChannel); i >= 0 {
		after := h[i+len(TokChannel):]
		end := strings.IndexFunc(after, func(r rune) bool { return unicode.IsSpace(r) || r == '<' })
		if end < 0 {
			end = len(after)
		}
		if end == 0 {
			return m, fmt.Errorf("harmony: a message header %q has <|channel|> but no channel", orig)
		}
		m.Channel = after[:end]
		h = h[:i] + after[end:]
		if strings.Contains(h, TokChannel) {
			return m, fmt.Errorf("harmony: a message header %q has two channels", orig)
		}
	}
	h = strings.TrimSpace(h)
	h = strings.TrimSpace(strings.ReplaceAll(h, TokConstrain, " "+TokConstrain))
	parts := strings.Fields(h)
	if role == "" {
		if len(parts) == 0 {
			return m, fmt.Errorf("harmony: a message header %q has no role", orig)
		}
		first := parts[0]
		name, _, _ := strings.Cut(first, ":")
		switch {
		case validRole(name) && name != RoleTool:
			role = name
			if first != name {
				m.Name = first[len(name)+1:]
			}
			parts = parts[1:]
		case len(parts) > 1 || strings.HasPrefix(first, "to="):
			// A tool's message: the tool's name stands for the role.
			role = RoleTool
			m.Name = first
			parts = parts[1:]
		default:
			return m, fmt.Errorf("harmony: unknown role %q in a message header", first)
		}
	} else if len(parts) > 0 && parts[0] == role {
		parts = parts[1:]
	}
	m.Role = role
	if n := len(parts); n > 0 {
		last := parts[n-1]
		parts = parts[:n-1]
		switch {
		case strings.HasPrefix(last, "to="):
			m.Recipient = last[3:]
			if m.Recipient == "" {
				return m, fmt.Errorf("harmony: a message header %q has an empty recipient", orig)
			}
		case n == 1 && !strings.HasPrefix(last, TokConstrain):
			m.Recipient = last
		default:
			m.ContentType = last
			if k := len(parts); k > 0 {
				m.Recipient = strings.TrimPrefix(parts[k-1], "to=")
				parts = parts[:k-1]
				if m.Recipient == "" {
					return m, fmt.Errorf("harmony: a message header %q has an empty recipient", orig)
				}
			}
		}
	}
	if len(parts) > 0 {
		return m, fmt.Errorf("harmony: unexpected %q in a message header %q", strings.Join(parts, " "), orig)
	}
	return m, nil
}
