package harmony

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// The Harmony formatting tokens (single ids in o200k_harmony).
const (
	TokStart     = "<|start|>"
	TokEnd       = "<|end|>"
	TokMessage   = "<|message|>"
	TokChannel   = "<|channel|>"
	TokConstrain = "<|constrain|>"
	TokReturn    = "<|return|>"
	TokCall      = "<|call|>"
	// TokEndOfText is not a Harmony token, but in the HF configs' EOS
	// list; the parser takes it as the end of the completion.
	TokEndOfText = "<|endoftext|>"
)

// Roles.
const (
	RoleSystem    = "system"
	RoleDeveloper = "developer"
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleTool      = "tool"
)

// Channels.
const (
	ChannelAnalysis   = "analysis"
	ChannelCommentary = "commentary"
	ChannelFinal      = "final"
)

// Defaults of the system message (harmony's SystemContent::new()).
const (
	DefaultIdentity        = "You are ChatGPT, a large language model trained by OpenAI."
	DefaultKnowledgeCutoff = "2024-06"
	DefaultReasoning       = "medium"
)

// ContentTypeJSON is the content type of a function-tool call.
const ContentTypeJSON = TokConstrain + "json"

// Tokenizer is what harmony needs from a tokenizer
// (runtime/tokenizer.*Tokenizer satisfies it).
type Tokenizer interface {
	// EncodeOrdinary encodes text with no special tokens: "<|start|>" in
	// the text is ordinary text.
	EncodeOrdinary(string) []int32
	// SpecialID is the id of a special token such as "<|start|>".
	SpecialID(string) (int32, bool)
	// Decode turns ids back into text (bytes; a lone token may hold part
	// of a UTF-8 sequence).
	Decode([]int32) string
}

// Message is one Harmony message.
type Message struct {
	// Role is system, developer, user, assistant or tool.
	Role string `json:"role"`
	// Name is the tool's name for role tool (e.g. functions.get_weather),
	// rendered in place of the role; for other roles an author name,
	// rendered as role:name.
	Name string `json:"name,omitempty"`
	// Recipient is the addressee: functions.x for a tool call, assistant
	// for a tool result. Empty (or "all") means everyone.
	Recipient string `json:"recipient,omitempty"`
	// Channel is analysis, commentary or final (empty: none).
	Channel string `json:"channel,omitempty"`
	// ContentType is e.g. "<|constrain|>json" (ContentTypeJSON) for a
	// function call; a leading <|constrain|> renders as the special token.
	ContentType string `json:"content_type,omitempty"`
	// Content is the message text.
	Content string `json:"content"`
}

// Tool is one function tool.
type Tool struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Parameters is a JSON Schema (an object); nil: the tool takes none.
	Parameters json.RawMessage `json:"parameters,omitempty"`
}

// Namespace is a tool namespace of the system message (the built-in tools,
// browser and python).
type Namespace struct {
	Name        string
	Description string
	Tools       []Tool
}

// SystemContent is the system message. Zero fields take the defaults.
type SystemContent struct {
	// Identity is the first line (default DefaultIdentity).
	Identity string
	// KnowledgeCutoff (default DefaultKnowledgeCutoff).
	KnowledgeCutoff string
	// CurrentDate, YYYY-MM-DD; omitted when empty.
	CurrentDate string
	// Reasoning is low, medium or high (default medium).
	Reasoning string
	// Tools are built-in tool namespaces (rendered in name order).
	Tools []Namespace
}

// DeveloperContent is the developer message.
type DeveloperContent struct {
	// Instructions, rendered under "# Instructions" (omitted when empty).
	Instructions string
	// Tools are the function tools (the functions namespace).
	Tools []Tool
	// ResponseFormat asks for structured output (rendered last, under
	// "# Response Formats"); it only guides the model, a grammar must
	// enforce it.
	ResponseFormat *ResponseFormat
}

// ResponseFormat is a named JSON Schema the answer should follow.
type ResponseFormat struct {
	Name        string
	Description string
	Schema      json.RawMessage
}

// Conversation is what the model is prompted with.
type Conversation struct {
	System SystemContent
	// NoSystem leaves the system message out (the model expects one;
	// this exists to reproduce harmony's own test renderings).
	NoSystem  bool
	Developer *DeveloperContent
	Messages  []Message
}

// piece is a run of the rendering: a special token or text encoded alone.
type piece struct {
	special string
	text    string
}

type pieces []piece

func (p *pieces) tok(s string)  { *p = append(*p, piece{special: s}) }
func (p *pieces) text(s string) { *p = append(*p, piece{text: s}) }

// RenderText renders c as text, special tokens as their literal strings.
// With forCompletion it ends with "<|start|>assistant". Invalid input
// renders as well as it can; Render reports it.
func RenderText(c Conversation, forCompletion bool) string {
	ps, _ := render(c, forCompletion)
	var b strings.Builder
	for _, p := range ps {
		if p.special != "" {
			b.WriteString(p.special)
		} else {
			b.WriteString(p.text)
		}
	}
	return b.String()
}

// Render renders c as the prompt for the assistant's next message: the
// conversation then <|start|>assistant. Special tokens are single ids;
// text (including every message's content) goes through EncodeOrdinary,
// so "<|start|>" typed by a user stays text.
func Render(tok Tokenizer, c Conversation) ([]int32, error) {
	ps, err := render(c, true)
	if err != nil {
		return nil, err
	}
	return encodePieces(tok, ps)
}

// RenderMessages renders msgs alone (no system, no developer message, no
// trailing <|start|>assistant): the ids to append to a sequence that
// already holds the rest of the conversation.
func RenderMessages(tok Tokenizer, msgs []Message) ([]int32, error) {
	var ps pieces
	for i := range msgs {
		if err := renderMessage(&ps, &msgs[i]); err != nil {
			return nil, err
		}
	}
	return encodePieces(tok, ps)
}

func encodePieces(tok Tokenizer, ps pieces) ([]int32, error) {
	out := make([]int32, 0, 256)
	for _, p := range ps {
		if p.special != "" {
			id, ok := tok.SpecialID(p.special)
			if !ok {
				return nil, fmt.Errorf("harmony: the tokenizer has no special token %s", p.special)
			}
			out = append(out, id)
			continue
		}
		if p.text != "" {
			out = append(out, tok.EncodeOrdinary(p.text)...)
		}
	}
	return out, nil
}

// FunctionCall is the assistant's call of function tool name with its
// JSON arguments, as the model emits it.
func FunctionCall(name, args string) Message {
	return Message{Role: RoleAssistant, Channel: ChannelCommentary, Recipient: "functions." + name, ContentType: ContentTypeJSON, Content: args}
}

// FunctionResult is the result of function tool name, for the history.
func FunctionResult(name, output string) Message {
	return Message{Role: RoleTool, Name: "functions." + name, Recipient: RoleAssistant, Channel: ChannelCommentary, Content: output}
}

// Function is the name of the function tool m calls ("get_weather" for
// recipient functions.get_weather), and whether m is such a call.
func (m Message) Function() (string, bool) {
	name, ok := strings.CutPrefix(m.Recipient, "functions.")
	return name, ok && name != "" && m.Role == RoleAssistant
}

// StopTokens are the ids that end an assistant action: <|return|> (the
// answer is done) and <|call|> (a tool call waits for its result).
func StopTokens(tok Tokenizer) []int32 {
	var ids []int32
	for _, s := range []string{TokReturn, TokCall} {
		if id, ok := tok.SpecialID(s); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

// AppendCompletion adds the assistant's parsed messages to the history.
// A final answer ends with <|return|> when sampled and is stored as an
// ordinary message (it renders with <|end|>). When msgs end with a final
// answer, the turn is over and its chain of thought (the analysis messages
// since the last user message) is dropped; a turn that ends with a tool
// call keeps it, so the model sees its reasoning when the result comes.
func AppendCompletion(c *Conversation, msgs []Message) {
	c.Messages = append(c.Messages, msgs...)
	if len(msgs) == 0 {
		return
	}
	last := msgs[len(msgs)-1]
	if last.Role != RoleAssistant || last.Channel != ChannelFinal {
		return
	}
	turn := 0
	for i := len(c.Messages) - 1; i >= 0; i-- {
		if c.Messages[i].Role == RoleUser {
			turn = i + 1
			break
		}
	}
	kept := c.Messages[:turn]
	for _, m := range c.Messages[turn:] {
		if m.Role == RoleAssistant && m.Channel == ChannelAnalysis {
			continue
		}
		kept = append(kept, m)
	}
	c.Messages = kept
}

func render(c Conversation, forCompletion bool) (pieces, error) {
	var ps pieces
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	hasFunctions := c.Developer != nil && len(c.Developer.Tools) > 0
	if !c.NoSystem {
		text, err := systemText(c.System, hasFunctions)
		keep(err)
		ps.tok(TokStart)
		ps.text(RoleSystem)
		ps.tok(TokMessage)
		ps.text(text)
		ps.tok(TokEnd)
	}
	if c.Developer != nil {
		text, err := developerText(*c.Developer)
		keep(err)
		ps.tok(TokStart)
		ps.text(RoleDeveloper)
		ps.tok(TokMessage)
		ps.text(text)
		ps.tok(TokEnd)
	}
	drop := dropped(c.Messages)
	for i := range c.Messages {
		if drop[i] {
			continue
		}
		keep(renderMessage(&ps, &c.Messages[i]))
	}
	if forCompletion {
		ps.tok(TokStart)
		ps.text(RoleAssistant)
	}
	return ps, firstErr
}

// dropped applies harmony's auto_drop_analysis at render time: when the
// last assistant message is on final, analysis messages before the first
// final message are left out.
func dropped(msgs []Message) []bool {
	drop := make([]bool, len(msgs))
	lastFinal := false
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == RoleAssistant {
			lastFinal = msgs[i].Channel == ChannelFinal
			break
		}
	}
	if !lastFinal {
		return drop
	}
	first := -1
	for i, m := range msgs {
		if m.Channel == ChannelFinal {
			first = i
			break
		}
	}
	for i := 0; i < first; i++ {
		drop[i] = msgs[i].Channel == ChannelAnalysis
	}
	return drop
}

func renderMessage(ps *pieces, m *Message) error {
	var err error
	ps.tok(TokStart)
	switch {
	case m.Role == RoleTool:
		if m.Name == "" {
			err = fmt.Errorf("harmony: a tool message needs the tool's name (e.g. functions.get_weather)")
		}
		ps.text(m.Name)
	case m.Role == "":
		err = fmt.Errorf("harmony: a message has no role")
	default:
		if !validRole(m.Role) {
			err = fmt.Errorf("harmony: unknown role %q (want system, developer, user, assistant or tool)", m.Role)
		}
		ps.text(m.Role)
		if m.Name != "" {
			ps.text(":" + m.Name)
		}
	}
	if m.Recipient != "" && m.Recipient != "all" {
		ps.text(" to=" + m.Recipient)
	}
	if m.Channel != "" {
		ps.tok(TokChannel)
		ps.text(m.Channel)
	}
	if m.ContentType != "" {
		if rest, ok := strings.CutPrefix(m.ContentType, TokConstrain); ok {
			ps.text(" ")
			ps.tok(TokConstrain)
			if rest != "" {
				ps.text(rest)
			}
		} else {
			ps.text(" " + m.ContentType)
		}
	}
	ps.tok(TokMessage)
	ps.text(m.Content)
	if m.Role == RoleAssistant && m.Recipient != "" {
		ps.tok(TokCall)
	} else {
		ps.tok(TokEnd)
	}
	return err
}

func validRole(r string) bool {
	switch r {
	case RoleSystem, RoleDeveloper, RoleUser, RoleAssistant, RoleTool:
		return true
	}
	return false
}

func systemText(s SystemContent, hasFunctions bool) (string, error) {
	var err error
	identity := s.Identity
	if identity == "" {
		identity = DefaultIdentity
	}
	cutoff := s.KnowledgeCutoff
	if cutoff == "" {
		cutoff = DefaultKnowledgeCutoff
	}
	reasoning := s.Reasoning
	switch reasoning {
	case "":
		reasoning = DefaultReasoning
	case "low", "medium", "high":
	default:
		err = fmt.Errorf("harmony: reasoning effort %q is not low, medium or high", reasoning)
	}
	top := identity + "\nKnowledge cutoff: " + cutoff
	if s.CurrentDate != "" {
		top += "\nCurrent date: " + s.CurrentDate
	}
	sections := []string{top, "Reasoning: " + reasoning}
	if len(s.Tools) > 0 {
		ns := append([]Namespace(nil), s.Tools...)
		sort.SliceStable(ns, func(i, j int) bool { return ns[i].Name < ns[j].Name })
		text, terr := toolsSection(ns)
		if err == nil {
			err = terr
		}
		sections = append(sections, text)
	}
	channels := "# Valid channels: analysis, commentary, final. Channel must be included for every message."
	if hasFunctions {
		channels += "\nCalls to these tools must go to the commentary channel: 'functions'."
	}
	sections = append(sections, channels)
	return strings.Join(sections, "\n\n"), err
}

func developerText(d DeveloperContent) (string, error) {
	var sections []string
	if d.Instructions != "" {
		sections = append(sections, "# Instructions", d.Instructions)
	}
	var err error
	if len(d.Tools) > 0 {
		var text string
		text, err = toolsSection([]Namespace{{Name: "functions", Tools: d.Tools}})
		sections = append(sections, text)
	}
	if rf := d.ResponseFormat; rf != nil {
		var schema bytes.Buffer
		if cerr := json.Compact(&schema, rf.Schema); cerr != nil && err == nil {
			err = fmt.Errorf("harmony: response format %s: the schema is not valid JSON: %v", rf.Name, cerr)
		}
		if rf.Name == "" && err == nil {
			err = fmt.Errorf("harmony: a response format needs a name")
		}
		body := schema.String()
		if rf.Description != "" {
			body = "// " + strings.Join(textLines(rf.Description), "\n// ") + "\n" + body
		}
		sections = append(sections, "# Response Formats", "## "+rf.Name, body)
	}
	return strings.Join(sections, "\n\n"), err
}

// toolsSection renders "# Tools" and each namespace as TypeScript-like
// declarations.
func toolsSection(nss []Namespace) (string, error) {
	var err error
	sections := []string{"# Tools"}
	for _, ns := range nss {
		lines := []string{"## " + ns.Name + "\n"}
		for _, l := range textLines(ns.Description) {
			if len(ns.Tools) > 0 {
				lines = append(lines, "// "+l)
			} else {
				lines = append(lines, l)
			}
		}
		if len(ns.Tools) > 0 {
			lines = append(lines, "namespace "+ns.Name+" {\n")
			for _, t := range ns.Tools {
				if t.Name == "" && err == nil {
					err = fmt.Errorf("harmony: a tool in namespace %s has no name", ns.Name)
				}
				for _, l := range textLines(t.Description) {
					lines = append(lines, "// "+l)
				}
				params := strings.TrimSpace(string(t.Parameters))
				if params == "" || params == "null" {
					lines = append(lines, "type "+t.Name+" = () => any;\n")
					continue
				}
				schema, perr := parseJSON(t.Parameters)
				if perr != nil {
					if err == nil {
						err = fmt.Errorf("harmony: tool %s: parameters are not valid JSON: %v", t.Name, perr)
					}
					lines = append(lines, "type "+t.Name+" = (_: any) => any;\n")
					continue
				}
				lines = append(lines, "type "+t.Name+" = (_: "+schemaToTS(schema, "")+") => any;\n")
			}
			lines = append(lines, "} // namespace "+ns.Name)
		}
		sections = append(sections, strings.Join(lines, "\n"))
	}
	return strings.Join(sections, "\n\n"), err
}

// textLines splits like Rust's str::lines: on "\n", a trailing "\r"
// dropped, no final empty line.
func textLines(s string) []string {
	if s == "" {
		return nil
	}
	ls := strings.Split(s, "\n")
	if ls[len(ls)-1] == "" {
		ls = ls[:len(ls)-1]
	}
	for i, l := range ls {
		ls[i] = strings.TrimSuffix(l, "\r")
	}
	return ls
}
