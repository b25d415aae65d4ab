package harmony

import (
	"reflect"
	"sync"
	"testing"

	"github.com/gptoss/gptoss/runtime/tokenizer"
	"github.com/gptoss/gptoss/runtime/tokenizer/tiktokentest"
)

// These tests use the real o200k_harmony tokenizer (built from
// js-tiktoken's ranks, see tiktokentest; they skip without node and
// js-tiktoken, and fail then under CI).

var (
	o200kOnce sync.Once
	o200kTok  *tokenizer.Tokenizer
	o200kErr  error
)

func o200k(t *testing.T) (*tokenizer.Tokenizer, *tiktokentest.Oracle) {
	t.Helper()
	o := tiktokentest.Load(t)
	o200kOnce.Do(func() {
		path := o.WriteTokenizerJSON(t, t.TempDir(), true)
		o200kTok, o200kErr = tokenizer.Load(path)
	})
	if o200kErr != nil {
		t.Fatal(o200kErr)
	}
	return o200kTok, o
}

// Render gives the ids tiktoken gives for the golden text with specials
// allowed — harmony's own check (test_simple_convo and friends): the
// pieces are cut where o200k's pre-tokenizer cuts anyway.
func TestO200kRenderMatchesGoldenEncoding(t *testing.T) {
	tok, o := o200k(t)
	convs := map[string]Conversation{"simple": simpleConvo(), "tool call": toolCallConvo(), "functions": functionsConvo()}
	var names, texts []string
	for name, c := range convs {
		names = append(names, name)
		texts = append(texts, RenderText(c, true))
	}
	want := o.Reference(t, texts).All
	for i, name := range names {
		got, err := Render(tok, convs[name])
		if err != nil {
			t.Fatal(err)
		}
		if !equalIDs(got, want[i]) {
			t.Errorf("%s: Render ids differ from tiktoken's encoding of the golden text\n got %v\nwant %v", name, got, want[i])
		}
	}
	// The special ids are o200k_harmony's.
	ids, _ := Render(tok, simpleConvo())
	if ids[0] != 200006 || ids[len(ids)-2] != 200006 {
		t.Errorf("<|start|> is not 200006: %v", ids)
	}
	if got := StopTokens(tok); !reflect.DeepEqual(got, []int32{200002, 200012}) {
		t.Errorf("StopTokens = %v, want [200002 200012]", got)
	}
}

// harmony's test_simple_tool_call: real sampled ids (recipient after the
// channel, a plain "code" content type) parse to harmony's messages.
func TestO200kHarmonySimpleToolCall(t *testing.T) {
	tok, _ := o200k(t)
	response := []int32{
		200005, 35644, 200008, 1844, 31064, 25, 392, 4827, 382, 290, 11122, 306, 40510, 16842,
		1416, 1309, 316, 1199, 37342, 170154, 4584, 13, 200007, 200006, 173781, 200005, 35644, 316,
		28, 29712, 170154, 3490, 200008, 10848, 7693, 1243, 392, 173844, 18583,
	}
	p := NewParser(tok)
	for _, id := range response {
		for _, e := range p.Add(id) {
			if e.Kind == EventError {
				t.Fatal(e.Err)
			}
		}
	}
	p.Finish()
	want := []Message{
		{Role: RoleAssistant, Channel: ChannelAnalysis, Content: `User asks: "What is the weather in Tokyo?" We need to use lookup_weather tool.`},
		{Role: RoleAssistant, Channel: ChannelAnalysis, Recipient: "lookup_weather", ContentType: "code", Content: `{"location": "Tokyo"}`},
	}
	if !reflect.DeepEqual(p.Messages(), want) {
		t.Fatalf("messages\n got %+v\nwant %+v", p.Messages(), want)
	}
}

// Render→Parse with real BPE ids, multi-byte text included.
func TestO200kRoundTrip(t *testing.T) {
	tok, _ := o200k(t)
	msgs := []Message{
		{Role: RoleAssistant, Channel: ChannelAnalysis, Content: "Tokyo — 東京 🙂; the user typed <|call|> as text."},
		{Role: RoleAssistant, Channel: ChannelCommentary, Recipient: "functions.get_weather", ContentType: ContentTypeJSON, Content: `{"location": "東京"}`},
	}
	ids, err := RenderMessages(tok, msgs)
	if err != nil {
		t.Fatal(err)
	}
	prefix := append([]int32{200006}, tok.EncodeOrdinary(RoleAssistant)...)
	if !equalIDs(ids[:len(prefix)], prefix) {
		t.Fatalf("no <|start|>assistant prefix: %v", ids[:len(prefix)])
	}
	p := NewParser(tok)
	var deltas string
	for _, id := range ids[len(prefix):] {
		for _, e := range p.Add(id) {
			switch e.Kind {
			case EventError:
				t.Fatal(e.Err)
			case EventContent:
				deltas += e.Delta
			}
		}
	}
	if !p.Done() || !reflect.DeepEqual(p.Messages(), msgs) {
		t.Fatalf("round trip (done %v)\n got %+v\nwant %+v", p.Done(), p.Messages(), msgs)
	}
	if deltas != msgs[0].Content+msgs[1].Content {
		t.Fatalf("deltas %q", deltas)
	}
}

func BenchmarkO200kRender(b *testing.B) {
	o := tiktokentest.Load(b)
	tok, err := tokenizer.Load(o.WriteTokenizerJSON(b, b.TempDir(), true))
	if err != nil {
		b.Fatal(err)
	}
	c := functionsConvo()
	ids, _ := Render(tok, c)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Render(tok, c); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(ids)), "tokens")
}
