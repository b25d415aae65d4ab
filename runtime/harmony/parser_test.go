package harmony

import (
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// feed runs a stream through a new parser token by token.
func feed(t *testing.T, stream string) (*Parser, []Event) {
	t.Helper()
	tok := newTestTok()
	p := NewParser(tok)
	var evs []Event
	for _, id := range tok.encodeWithSpecials(stream) {
		evs = append(evs, p.Add(id)...)
	}
	return p, evs
}

func kinds(evs []Event) string {
	var b strings.Builder
	last := EventKind(0)
	for _, e := range evs {
		if e.Kind == EventContent && last == EventContent {
			continue // runs of deltas count once
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(e.Kind.String())
		last = e.Kind
	}
	return b.String()
}

func TestParserAnalysisThenFinal(t *testing.T) {
	p, evs := feed(t, "<|channel|>analysis<|message|>User asks: café 🙂?<|end|><|start|>assistant<|channel|>final<|message|>2 + 2 = 4.<|return|>")
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := kinds(evs), "header content-delta message-done header content-delta message-done"; got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	want := []Message{
		{Role: RoleAssistant, Channel: ChannelAnalysis, Content: "User asks: café 🙂?"},
		{Role: RoleAssistant, Channel: ChannelFinal, Content: "2 + 2 = 4."},
	}
	if !reflect.DeepEqual(p.Messages(), want) {
		t.Fatalf("messages %+v, want %+v", p.Messages(), want)
	}
	if !p.Done() {
		t.Fatal("not done after <|return|>")
	}
	// Deltas are whole characters and add up to the content, per message.
	var got [2]strings.Builder
	msg := 0
	for _, e := range evs {
		switch e.Kind {
		case EventContent:
			if !utf8.ValidString(e.Delta) {
				t.Errorf("delta %q is not valid UTF-8", e.Delta)
			}
			got[msg].WriteString(e.Delta)
		case EventDone:
			if e.Message.Content != got[msg].String() {
				t.Errorf("message %d: deltas %q, content %q", msg, got[msg].String(), e.Message.Content)
			}
			if wantTerm := []string{TokEnd, TokReturn}[msg]; e.Terminator != wantTerm {
				t.Errorf("message %d terminator %q, want %q", msg, e.Terminator, wantTerm)
			}
			msg++
		case EventHeader:
			if e.Channel != want[msg].Channel || e.Role != RoleAssistant {
				t.Errorf("header %+v, want channel %s", e, want[msg].Channel)
			}
		}
	}
	// The 4-byte emoji arrives as one delta, only with its last byte.
	found := false
	for _, e := range evs {
		if e.Delta == "🙂" {
			found = true
		}
	}
	if !found {
		t.Error("no single delta carries the emoji")
	}
}

func TestParserToolCalls(t *testing.T) {
	call := Message{Role: RoleAssistant, Channel: ChannelCommentary, Recipient: "functions.get_weather", ContentType: ContentTypeJSON, Content: `{"location":"San Francisco"}`}
	streams := map[string]string{
		"role part":                 ` to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"location":"San Francisco"}<|call|>`,
		"after channel":             `<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location":"San Francisco"}<|call|>`,
		"after channel, adjacent":   `<|channel|>commentary to=functions.get_weather<|constrain|>json<|message|>{"location":"San Francisco"}<|call|>`,
		"role part, adjacent":       ` to=functions.get_weather<|channel|>commentary<|constrain|>json<|message|>{"location":"San Francisco"}<|call|>`,
		"second message, role part": `<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"location":"San Francisco"}<|call|>`,
	}
	for name, s := range streams {
		p, evs := feed(t, s)
		if err := p.Err(); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		msgs := p.Messages()
		if len(msgs) == 0 || !reflect.DeepEqual(msgs[len(msgs)-1], call) {
			t.Errorf("%s: messages %+v, want the call last", name, msgs)
		}
		if !p.Done() {
			t.Errorf("%s: not done after <|call|>", name)
		}
		last := evs[len(evs)-1]
		if last.Kind != EventDone || last.Terminator != TokCall || last.Recipient != call.Recipient {
			t.Errorf("%s: last event %+v", name, last)
		}
		for _, e := range evs {
			if e.Kind == EventHeader && e.Channel == ChannelCommentary && (e.Recipient != call.Recipient || e.ContentType != ContentTypeJSON) {
				t.Errorf("%s: header event %+v", name, e)
			}
		}
	}
}

func TestParseHeader(t *testing.T) {
	cases := []struct {
		h, role string
		want    Message
	}{
		// harmony test_simple_tool_call: recipient and a plain content type.
		{"<|channel|>analysis to=lookup_weather code", RoleAssistant, Message{Role: RoleAssistant, Channel: "analysis", Recipient: "lookup_weather", ContentType: "code"}},
		// harmony test_tool_response_parsing: a tool's result.
		{"browser.search to=assistant<|channel|>commentary", "", Message{Role: RoleTool, Name: "browser.search", Channel: "commentary", Recipient: "assistant"}},
		{"functions.f to=assistant", "", Message{Role: RoleTool, Name: "functions.f", Recipient: "assistant"}},
		{"assistant<|channel|>final", "", Message{Role: RoleAssistant, Channel: "final"}},
		{"assistant<|channel|>commentary", RoleAssistant, Message{Role: RoleAssistant, Channel: "commentary"}},
		{"user:alice", "", Message{Role: RoleUser, Name: "alice"}},
		{"<|channel|>commentary python", RoleAssistant, Message{Role: RoleAssistant, Channel: "commentary", Recipient: "python"}},
		{"<|channel|>commentary <|constrain|>json", RoleAssistant, Message{Role: RoleAssistant, Channel: "commentary", ContentType: ContentTypeJSON}},
	}
	for _, tc := range cases {
		got, err := parseHeader(tc.h, tc.role)
		if err != nil {
			t.Errorf("%q: %v", tc.h, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.h, got, tc.want)
		}
	}
}

func TestParserMalformed(t *testing.T) {
	cases := map[string]string{
		"<|channel|><|message|>x<|end|>":                               "no channel",
		"<|channel|>final<|message|>x<|end|>oops":                      "expected <|start|> after <|end|>",
		"<|channel|>final<|end|>":                                      "unexpected <|end|> in a message header",
		"<|channel|>final<|message|>a<|start|>":                        "unexpected <|start|> in the content",
		"<|channel|>final<|message|>a<|channel|>":                      "unexpected <|channel|> in the content",
		"<|channel|>final three extra words<|message|>":                `unexpected "three"`,
		"<|channel|>final<|message|>x<|end|><|start|>robot<|message|>": `unknown role "robot"`,
		"<|channel|>final<|message|>x<|return|>y":                      "after the end of the completion",
		" to=<|channel|>commentary<|message|>":                         "empty recipient",
		"<|channel|>a<|channel|>b<|message|>":                          "two channels",
	}
	for stream, want := range cases {
		p, evs := feed(t, stream)
		if p.Err() == nil || !strings.Contains(p.Err().Error(), want) {
			t.Errorf("%q: Err() = %v, want one containing %q", stream, p.Err(), want)
			continue
		}
		last := evs[len(evs)-1]
		if last.Kind != EventError || last.Err == nil {
			t.Errorf("%q: last event %+v, want an error", stream, last)
		}
		if !p.Done() {
			t.Errorf("%q: a failed parser is not done", stream)
		}
		if evs := p.Add('x'); len(evs) != 1 || evs[0].Kind != EventError {
			t.Errorf("%q: Add after failure gave %+v", stream, evs)
		}
	}
}

// Random token streams never panic and either parse or fail with an error.
func TestParserRandomStreams(t *testing.T) {
	tok := newTestTok()
	alphabet := []int32{'a', ' ', '=', 't', 'o', 0xc3, 0xa9, 0xff}
	for _, s := range testSpecials {
		alphabet = append(alphabet, tok.ids[s])
	}
	rng := rand.New(rand.NewSource(7))
	for i := 0; i < 3000; i++ {
		p := NewParser(tok)
		n := rng.Intn(40)
		for j := 0; j < n; j++ {
			for _, e := range p.Add(alphabet[rng.Intn(len(alphabet))]) {
				if e.Kind == EventContent && !utf8.ValidString(e.Delta) {
					t.Fatalf("invalid UTF-8 delta %q", e.Delta)
				}
			}
		}
		p.Finish()
		for _, m := range p.Messages() {
			if !utf8.ValidString(m.Content) {
				t.Fatalf("invalid UTF-8 content %q", m.Content)
			}
		}
	}
}

func TestParserFinish(t *testing.T) {
	// Cut inside content: the message completes with what it has, a split
	// character becomes U+FFFD.
	p, _ := feed(t, "<|channel|>final<|message|>abc\xc3")
	evs := p.Finish()
	if len(evs) != 2 || evs[0].Delta != "\uFFFD" || evs[1].Kind != EventDone || evs[1].Terminator != "" {
		t.Fatalf("Finish events %+v", evs)
	}
	if got := p.Messages()[0].Content; got != "abc\uFFFD" {
		t.Fatalf("content %q", got)
	}
	if !p.Done() {
		t.Fatal("not done after Finish")
	}
	// Cut inside a header is an error.
	p, _ = feed(t, "<|channel|>fin")
	if evs := p.Finish(); len(evs) != 1 || evs[0].Kind != EventError || p.Err() == nil {
		t.Fatalf("Finish in a header: %+v", evs)
	}
	// An empty completion, and one cut right after <|end|><|start|>, end cleanly.
	p, _ = feed(t, "")
	if evs := p.Finish(); len(evs) != 0 || p.Err() != nil || !p.Done() {
		t.Fatalf("Finish of an empty completion: %+v, %v", evs, p.Err())
	}
	p, _ = feed(t, "<|channel|>analysis<|message|>x<|end|><|start|>")
	if evs := p.Finish(); len(evs) != 0 || p.Err() != nil || len(p.Messages()) != 1 {
		t.Fatalf("Finish after <|start|>: %+v, %v", evs, p.Err())
	}
	// <|endoftext|> (HF's EOS) ends the completion, in a message or
	// between messages; a split character is flushed as U+FFFD.
	p, _ = feed(t, "<|channel|>final<|message|>ok\xc3<|endoftext|>")
	if p.Err() != nil || !p.Done() || p.Messages()[0].Content != "ok\uFFFD" {
		t.Fatalf("<|endoftext|> in content: %v, done %v, %+v", p.Err(), p.Done(), p.Messages())
	}
	p, _ = feed(t, "<|channel|>analysis<|message|>x<|end|><|endoftext|>")
	if p.Err() != nil || !p.Done() || len(p.Messages()) != 1 {
		t.Fatalf("<|endoftext|> after <|end|>: %v, done %v", p.Err(), p.Done())
	}
	// An invalid byte mid-stream is U+FFFD at once.
	p, _ = feed(t, "<|channel|>final<|message|>a\xffb<|return|>")
	if got := p.Messages()[0].Content; got != "a\uFFFDb" {
		t.Fatalf("content %q", got)
	}
}

// Assistant messages rendered by RenderMessages parse back to themselves,
// one completion (up to its <|call|> or the end) at a time.
func TestRenderParseRoundTrip(t *testing.T) {
	tok := newTestTok()
	completions := [][]Message{
		{
			{Role: RoleAssistant, Channel: ChannelAnalysis, Content: "Think: <|start|> is text here; ünïcödé 🙂."},
			{Role: RoleAssistant, Channel: ChannelCommentary, Content: "Let me check that for you."},
			{Role: RoleAssistant, Channel: ChannelCommentary, Recipient: "functions.get_weather", ContentType: ContentTypeJSON, Content: `{"location":"Tōkyō"}`},
		},
		{{Role: RoleAssistant, Channel: ChannelAnalysis, Recipient: "python", ContentType: "code", Content: "print(1)\n"}},
		{
			{Role: RoleAssistant, Channel: ChannelAnalysis, Content: ""},
			{Role: RoleAssistant, Channel: ChannelFinal, Content: "Done.\n\nTwo paragraphs."},
		},
	}
	prefix := append([]int32{tok.ids[TokStart]}, tok.EncodeOrdinary(RoleAssistant)...)
	for i, msgs := range completions {
		ids, err := RenderMessages(tok, msgs)
		if err != nil {
			t.Fatal(err)
		}
		// The completion is what follows the prompt's <|start|>assistant.
		if !equalIDs(ids[:len(prefix)], prefix) {
			t.Fatalf("rendering does not start with <|start|>assistant")
		}
		p := NewParser(tok)
		for _, id := range ids[len(prefix):] {
			for _, e := range p.Add(id) {
				if e.Kind == EventError {
					t.Fatal(e.Err)
				}
			}
		}
		p.Finish()
		if p.Err() != nil {
			t.Fatal(p.Err())
		}
		if !reflect.DeepEqual(p.Messages(), msgs) {
			t.Fatalf("completion %d round trip\n got %+v\nwant %+v", i, p.Messages(), msgs)
		}
	}
}

func BenchmarkParser(b *testing.B) {
	tok := newTestTok()
	ids := tok.encodeWithSpecials("<|channel|>analysis<|message|>" + strings.Repeat("Let me think about café 🙂. ", 40) +
		"<|end|><|start|>assistant<|channel|>final<|message|>" + strings.Repeat("The answer is 4. ", 40) + "<|return|>")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := NewParser(tok)
		for _, id := range ids {
			p.Add(id)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ids)), "ns/token")
}
