package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gptoss/gptoss/internal/fixture"
	"github.com/gptoss/gptoss/internal/layouttest"
	"github.com/gptoss/gptoss/runtime"
	"github.com/gptoss/gptoss/runtime/chat"
	"github.com/gptoss/gptoss/runtime/cpu"
	"github.com/gptoss/gptoss/runtime/tokenizer"
)

func TestMain(m *testing.M) {
	code := m.Run()
	fixture.RemoveCached()
	os.Exit(code)
}

// tinyModel loads the fixture checkpoint (random weights, Tiny dims) on
// the CPU engine, with its stand-in tokenizer.
func tinyModel(t *testing.T) (runtime.Model, *tokenizer.Tokenizer) {
	t.Helper()
	dir := fixture.Cached(t, fixture.Tiny())
	l := layouttest.Open(t, dir)
	m, err := cpu.Engine{}.Load(context.Background(), l, runtime.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	return m, tok
}

// gatedModel wraps the real model: every Forward first takes a ticket from
// gate (or gives up when its context ends), so a test decides when a
// generation moves. forwards counts the calls that ran.
type gatedModel struct {
	runtime.Model
	gate     chan struct{}
	entered  chan struct{} // a Forward is waiting for a ticket
	forwards atomic.Int64

	decode  func([]int32) string // set: record the prompts fed
	mu      sync.Mutex
	prompts []string
}

func newGated(m runtime.Model) *gatedModel {
	return &gatedModel{Model: m, gate: make(chan struct{}), entered: make(chan struct{}, 1024)}
}

func (g *gatedModel) NewSequence(n int) (runtime.Sequence, error) {
	s, err := g.Model.NewSequence(n)
	return &gatedSeq{Sequence: s, g: g}, err
}

// open lets every Forward through from now on.
func (g *gatedModel) open() { close(g.gate) }

type gatedSeq struct {
	runtime.Sequence
	g *gatedModel
}

func (s *gatedSeq) Forward(ctx context.Context, toks []int32, all bool) ([]float32, error) {
	s.g.entered <- struct{}{}
	select {
	case <-s.g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.g.forwards.Add(1)
	if s.g.decode != nil && len(toks) > 1 {
		s.g.mu.Lock()
		s.g.prompts = append(s.g.prompts, s.g.decode(toks))
		s.g.mu.Unlock()
	}
	return s.Sequence.Forward(ctx, toks, all)
}

type testServer struct {
	*Server
	url string
}

func start(t *testing.T, cfg Config) *testServer {
	t.Helper()
	if cfg.ModelID == "" {
		cfg.ModelID = "openai/gpt-oss-20b"
		cfg.Aliases = []string{"gpt-oss-20b"}
	}
	if cfg.Context == 0 {
		cfg.Context = 1024
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		s.Close()
		hs.Close()
	})
	return &testServer{s, hs.URL}
}

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("status %d, body not JSON: %q", resp.StatusCode, b)
	}
	return resp.StatusCode, v
}

const hello = `"messages": [{"role": "user", "content": "Hello"}]`

// Every refusal is an OpenAI error object with the right status, type,
// param and code.
func TestErrorObjects(t *testing.T) {
	m, tok := tinyModel(t)
	ts := start(t, Config{Model: m, Tokenizer: tok, MaxBodyBytes: 64 << 10, Context: 512})
	big := `{"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": "` + strings.Repeat("x", 70<<10) + `"}]}`
	long := `{"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": "` + strings.Repeat("y", 600) + `"}]}`
	cases := []struct {
		name, body string
		status     int
		typ, param string
		code       string
		msg        string
	}{
		{"bad JSON", `{"model": `, 400, "invalid_request_error", "", "", "not valid JSON"},
		{"wrong type", `{"model": "openai/gpt-oss-20b", "temperature": "hot", ` + hello + `}`, 400, "invalid_request_error", "", "", "temperature"},
		{"no model", `{` + hello + `}`, 400, "invalid_request_error", "model", "", "model"},
		{"unknown model", `{"model": "gpt-4o", ` + hello + `}`, 404, "invalid_request_error", "", "model_not_found", "gpt-4o"},
		{"no messages", `{"model": "openai/gpt-oss-20b", "messages": []}`, 400, "invalid_request_error", "messages", "", "at least one"},
		{"bad role", `{"model": "gpt-oss-20b", "messages": [{"role": "robot", "content": "x"}]}`, 400, "invalid_request_error", "messages[0].role", "", "robot"},
		{"image part", `{"model": "gpt-oss-20b", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}`, 400, "invalid_request_error", "messages[0].content", "", "text only"},
		{"temperature", `{"model": "gpt-oss-20b", "temperature": -0.5, ` + hello + `}`, 400, "invalid_request_error", "temperature", "", "temperature"},
		{"top_p", `{"model": "gpt-oss-20b", "top_p": 1.5, ` + hello + `}`, 400, "invalid_request_error", "top_p", "", "top_p"},
		{"max_tokens", `{"model": "gpt-oss-20b", "max_tokens": 0, ` + hello + `}`, 400, "invalid_request_error", "max_tokens", "", "at least 1"},
		{"n", `{"model": "gpt-oss-20b", "n": 3, ` + hello + `}`, 400, "invalid_request_error", "n", "", "n=3"},
		{"stop", `{"model": "gpt-oss-20b", "stop": ["a","b","c","d","e"], ` + hello + `}`, 400, "invalid_request_error", "stop", "", "at most 4"},
		{"effort", `{"model": "gpt-oss-20b", "reasoning_effort": "max", ` + hello + `}`, 400, "invalid_request_error", "reasoning_effort", "", "low, medium or high"},
		{"tool type", `{"model": "gpt-oss-20b", "tools": [{"type": "web_search"}], ` + hello + `}`, 400, "invalid_request_error", "tools[0].type", "", "function"},
		{"tool choice", `{"model": "gpt-oss-20b", "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}}, ` + hello + `}`, 400, "invalid_request_error", "tool_choice", "", `"g"`},
		{"tool result without call", `{"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "call_9", "content": "1"}]}`, 400, "invalid_request_error", "messages[1].tool_call_id", "", "call_9"},
		{"context", `{"model": "gpt-oss-20b", "max_tokens": 400, ` + hello + `}`, 400, "invalid_request_error", "messages", "context_length_exceeded", "maximum context length is 512"},
		{"prompt too long", long, 400, "invalid_request_error", "messages", "context_length_exceeded", "maximum context length"},
		{"too large", big, 413, "invalid_request_error", "", "", "larger than 65536 bytes"},
	}
	for _, c := range cases {
		status, v := post(t, ts.url, c.body)
		e, _ := v["error"].(map[string]any)
		if status != c.status || e == nil {
			t.Errorf("%s: status %d body %v, want %d and an error object", c.name, status, v, c.status)
			continue
		}
		param, _ := e["param"].(string)
		code, _ := e["code"].(string)
		msg, _ := e["message"].(string)
		if e["type"] != c.typ || param != c.param || code != c.code || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: error %v, want type %s param %q code %q message containing %q", c.name, e, c.typ, c.param, c.code, c.msg)
		}
		for _, k := range []string{"message", "type", "param", "code"} {
			if _, ok := e[k]; !ok {
				t.Errorf("%s: error object lacks %q: %v", c.name, k, e)
			}
		}
	}
	// Unknown endpoints and methods are error objects too.
	resp, err := http.Get(ts.url + "/v1/completions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /v1/completions: %d", resp.StatusCode)
	}
	resp, err = http.Get(ts.url + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if resp.StatusCode != 405 || v["error"] == nil {
		t.Errorf("GET /v1/chat/completions: %d %v", resp.StatusCode, v)
	}
	// /v1/models/{id}: known and unknown.
	resp, _ = http.Get(ts.url + "/v1/models/openai/gpt-oss-20b")
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /v1/models/openai/gpt-oss-20b: %d", resp.StatusCode)
	}
	resp, _ = http.Get(ts.url + "/v1/models/gpt-5")
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /v1/models/gpt-5: %d", resp.StatusCode)
	}
}

// sse reads a streamed response's events: the JSON chunks and whether it
// ended with [DONE].
type sse struct {
	resp   *http.Response
	r      *bufio.Reader
	done   bool
	chunks []map[string]any
}

func openStream(t *testing.T, ctx context.Context, url, body string) *sse {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: status %d: %s", resp.StatusCode, b)
	}
	return &sse{resp: resp, r: bufio.NewReader(resp.Body)}
}

// next returns the next chunk, nil at the end of the stream.
func (s *sse) next() map[string]any {
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return nil
		}
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		data := strings.TrimPrefix(line, "data: ")
		if data == "[DONE]" {
			s.done = true
			return nil
		}
		var v map[string]any
		json.Unmarshal([]byte(data), &v)
		s.chunks = append(s.chunks, v)
		return v
	}
}

func (s *sse) rest() {
	for s.next() != nil {
	}
	s.resp.Body.Close()
}

// longReply is a scripted answer of many tokens (one per byte with the
// stand-in tokenizer), so a generation takes as many steps as a test needs.
var longReply = chat.Script{{When: "", Reply: "<|channel|>final<|message|>" + strings.Repeat("la ", 200) + "<|return|>"}}

// A client that goes away stops its generation: the model is not run again
// and the sequence is free for the next request.
func TestClientDisconnectCancelsGeneration(t *testing.T) {
	m, tok := tinyModel(t)
	g := newGated(m)
	ts := start(t, Config{Model: g, Tokenizer: tok, Script: longReply})
	ctx, cancel := context.WithCancel(context.Background())
	st := openStream(t, ctx, ts.url, `{"model": "gpt-oss-20b", "stream": true, `+hello+`}`)
	// Let the prompt and a few tokens through (the header
	// "<|channel|>final<|message|>" is 7 byte tokens), reading what they
	// produce.
	for range 12 {
		<-g.entered
		g.gate <- struct{}{}
	}
	<-g.entered // the next Forward waits for a ticket it will never get
	var got string
	for len(got) < 3 {
		c := st.next()
		if c == nil {
			t.Fatal("stream ended early")
		}
		d := c["choices"].([]any)[0].(map[string]any)["delta"].(map[string]any)
		if s, ok := d["content"].(string); ok {
			got += s
		}
	}
	cancel()
	st.resp.Body.Close()
	// The generation gives its sequence back without another step (it
	// would wait at the gate forever otherwise: the test would time out).
	for ts.q.inUse() != 0 {
		runtimeGosched()
	}
	if n := g.forwards.Load(); n != 12 {
		t.Errorf("%d forwards, want the 12 let through", n)
	}
	// The next request gets the sequence.
	g.open()
	status, v := post(t, ts.url, `{"model": "gpt-oss-20b", "max_tokens": 3, `+hello+`}`)
	if status != 200 {
		t.Fatalf("after the cancel: %d %v", status, v)
	}
}

// Requests wait in line first come, first served; beyond the queue's size
// they get 429, and one that leaves the line frees its place.
func TestQueueFairnessAndLimit(t *testing.T) {
	m, tok := tinyModel(t)
	g := newGated(m)
	ts := start(t, Config{Model: g, Tokenizer: tok, MaxQueue: 3, Script: chat.Script{{When: "", Reply: "<|channel|>final<|message|>ok<|return|>"}}})
	// A holds the only sequence (its first Forward waits at the gate).
	g.decode = tok.Decode
	var wg sync.WaitGroup
	run := func(name string) {
		defer wg.Done()
		status, v := post(t, ts.url, `{"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "`+name+`"}]}`)
		if status != 200 {
			t.Errorf("%s: %d %v", name, status, v)
		}
	}
	wg.Add(1)
	go run("A")
	<-g.entered
	// B, C, D queue in this order (each is in line before the next starts).
	for i, name := range []string{"B", "C", "D"} {
		wg.Add(1)
		go run(name)
		for ts.q.queued() != i+1 {
			runtimeGosched()
		}
	}
	// The line is full: E is turned away at once.
	status, v := post(t, ts.url, `{"model": "gpt-oss-20b", `+hello+`}`)
	e, _ := v["error"].(map[string]any)
	if status != 429 || e == nil || e["type"] != "rate_limit_error" || e["code"] != "queue_full" {
		t.Errorf("queue full: %d %v", status, v)
	}
	// Let everything run: the model sees their prompts in arrival order.
	g.open()
	wg.Wait()
	var got []string
	for _, p := range g.prompts {
		for _, name := range []string{"A", "B", "C", "D"} {
			// What a prompt feeds after the cached prefix ends with the
			// user's message and the assistant's turn.
			if strings.HasSuffix(p, name+"<|end|><|start|>assistant") {
				got = append(got, name)
			}
		}
	}
	if strings.Join(got, "") != "ABCD" {
		t.Errorf("served %v, want A B C D", got)
	}
}

// A request that gives up while waiting leaves the line.
func TestQueuedRequestCancelled(t *testing.T) {
	m, tok := tinyModel(t)
	g := newGated(m)
	ts := start(t, Config{Model: g, Tokenizer: tok, MaxQueue: 1, Script: chat.Script{{When: "", Reply: "<|channel|>final<|message|>ok<|return|>"}}})
	done := make(chan int)
	go func() {
		s, _ := post(t, ts.url, `{"model": "gpt-oss-20b", `+hello+`}`)
		done <- s
	}()
	<-g.entered
	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan error)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", ts.url+"/v1/chat/completions", strings.NewReader(`{"model": "gpt-oss-20b", `+hello+`}`))
		_, err := http.DefaultClient.Do(req)
		waited <- err
	}()
	for ts.q.queued() != 1 {
		runtimeGosched()
	}
	cancel()
	<-waited
	for ts.q.queued() != 0 {
		runtimeGosched()
	}
	// Its place is free again: another request may wait.
	go func() {
		s, _ := post(t, ts.url, `{"model": "gpt-oss-20b", `+hello+`}`)
		done <- s
	}()
	for ts.q.queued() != 1 {
		runtimeGosched()
	}
	g.open()
	if a, b := <-done, <-done; a != 200 || b != 200 {
		t.Errorf("statuses %d %d", a, b)
	}
}

// Drain lets a running answer finish; at the end of the grace period it
// cuts the answer, whose stream ends with an error event instead of
// [DONE]. New requests get 503 meanwhile.
func TestDrain(t *testing.T) {
	m, tok := tinyModel(t)
	g := newGated(m)
	ts := start(t, Config{Model: g, Tokenizer: tok, Script: longReply})
	st := openStream(t, context.Background(), ts.url, `{"model": "gpt-oss-20b", "stream": true, `+hello+`}`)
	<-g.entered
	grace, cut := context.WithCancel(context.Background())
	drained := make(chan struct{})
	go func() {
		ts.Drain(grace)
		close(drained)
	}()
	for {
		status, v := post(t, ts.url, `{"model": "gpt-oss-20b", `+hello+`}`)
		if status == 503 {
			break
		}
		if status != 200 {
			t.Fatalf("during drain: %d %v", status, v)
		}
	}
	resp, _ := http.Get(ts.url + "/health")
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("health while draining: %d", resp.StatusCode)
	}
	cut() // the grace period ends with the answer still blocked
	<-drained
	st.rest()
	if st.done {
		t.Error("a cut answer ended with [DONE]")
	}
	last := st.chunks[len(st.chunks)-1]
	if e, ok := last["error"].(map[string]any); !ok || !strings.Contains(fmt.Sprint(e["message"]), "shut down") {
		t.Errorf("last event %v, want an error", last)
	}
}

// An answer in progress when draining starts finishes within the grace.
func TestDrainLetsAnswersFinish(t *testing.T) {
	m, tok := tinyModel(t)
	g := newGated(m)
	ts := start(t, Config{Model: g, Tokenizer: tok, Script: longReply})
	st := openStream(t, context.Background(), ts.url, `{"model": "gpt-oss-20b", "stream": true, `+hello+`}`)
	<-g.entered
	drained := make(chan struct{})
	go func() {
		ts.Drain(context.Background())
		close(drained)
	}()
	for ts.q.queued() != 0 || !closing(ts.Server) {
		runtimeGosched()
	}
	g.open()
	st.rest()
	<-drained
	var text string
	for _, c := range st.chunks {
		if ch := c["choices"].([]any); len(ch) > 0 {
			if s, ok := ch[0].(map[string]any)["delta"].(map[string]any)["content"].(string); ok {
				text += s
			}
		}
	}
	if !st.done || text != strings.Repeat("la ", 200) {
		t.Errorf("done %v, %d bytes of content", st.done, len(text))
	}
}

func closing(s *Server) bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

func runtimeGosched() { goruntime.Gosched() }

// The Harmony ↔ OpenAI mapping: reasoning_content, tool_calls and their
// finish reason, tool results fed back as Harmony tool messages, stop
// strings, usage with cached tokens.
func TestChatMapping(t *testing.T) {
	m, tok := tinyModel(t)
	g := newGated(m)
	g.decode = tok.Decode
	g.open()
	script := chat.Script{
		{When: "weather", Reply: "<|channel|>analysis<|message|>Need the tool.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>"},
		{When: "sunny", Reply: "<|channel|>final<|message|>It is sunny in Paris. STOP here<|return|>"},
	}
	ts := start(t, Config{Model: g, Tokenizer: tok, Script: script})
	tools := `"tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]`
	status, v := post(t, ts.url, `{"model": "gpt-oss-20b", `+tools+`, "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "What is the weather in Paris?"}]}`)
	if status != 200 {
		t.Fatalf("%d %v", status, v)
	}
	choice := v["choices"].([]any)[0].(map[string]any)
	msg := choice["message"].(map[string]any)
	calls, _ := msg["tool_calls"].([]any)
	if choice["finish_reason"] != "tool_calls" || msg["content"] != nil || msg["reasoning_content"] != "Need the tool." || len(calls) != 1 {
		t.Fatalf("choice %v", choice)
	}
	call := calls[0].(map[string]any)
	fn := call["function"].(map[string]any)
	if fn["name"] != "get_weather" || fn["arguments"] != `{"city":"Paris"}` || call["type"] != "function" || !strings.HasPrefix(call["id"].(string), "call_") {
		t.Errorf("call %v", call)
	}
	// The prompt held the tool as a Harmony function and the system text
	// as developer instructions.
	first := g.prompts[0]
	for _, want := range []string{"<|start|>developer<|message|># Instructions\n\nBe terse.\n\n# Tools", "type get_weather = (_: {\ncity: string,\n}) => any;",
		"Calls to these tools must go to the commentary channel: 'functions'."} {
		if !strings.Contains(first, want) {
			t.Errorf("prompt lacks %q:\n%s", want, first)
		}
	}
	// Round trip: the call and its result go back; the answer is cut at
	// the stop string.
	body := `{"model": "gpt-oss-20b", ` + tools + `, "stop": ["STOP"], "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "What is the weather in Paris?"},
	  {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
	  {"role": "tool", "tool_call_id": "call_1", "content": "{\"sky\":\"sunny\"}"}]}`
	status, v = post(t, ts.url, body)
	if status != 200 {
		t.Fatalf("%d %v", status, v)
	}
	choice = v["choices"].([]any)[0].(map[string]any)
	msg = choice["message"].(map[string]any)
	if choice["finish_reason"] != "stop" || msg["content"] != "It is sunny in Paris. " || msg["tool_calls"] != nil {
		t.Errorf("choice %v", choice)
	}
	second := g.prompts[len(g.prompts)-1]
	// (What was fed after the cached prefix, which ends in "<|start|>assistant".)
	for _, want := range []string{" to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>" +
		"<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{\"sky\":\"sunny\"}<|end|><|start|>assistant"} {
		if !strings.Contains(second, want) {
			t.Errorf("second prompt lacks %q:\n%s", want, second)
		}
	}
	u := v["usage"].(map[string]any)
	cached := u["prompt_tokens_details"].(map[string]any)["cached_tokens"].(float64)
	if u["total_tokens"].(float64) != u["prompt_tokens"].(float64)+u["completion_tokens"].(float64) || cached == 0 {
		t.Errorf("usage %v: the shared prefix was not reused", u)
	}

	// Streamed: role first, reasoning and tool call deltas, finish, usage, [DONE].
	st := openStream(t, context.Background(), ts.url, `{"model": "gpt-oss-20b", "stream": true, "stream_options": {"include_usage": true}, `+tools+`, "messages": [{"role": "user", "content": "weather?"}]}`)
	st.rest()
	if !st.done || len(st.chunks) < 4 {
		t.Fatalf("stream: done %v, %d chunks", st.done, len(st.chunks))
	}
	var reasoning, args, name, finish string
	for i, c := range st.chunks {
		if c["object"] != "chat.completion.chunk" {
			t.Errorf("chunk %d: %v", i, c)
		}
		ch := c["choices"].([]any)
		if len(ch) == 0 {
			if i != len(st.chunks)-1 || c["usage"] == nil {
				t.Errorf("chunk %d without choices: %v", i, c)
			}
			continue
		}
		d := ch[0].(map[string]any)["delta"].(map[string]any)
		if i == 0 && d["role"] != "assistant" {
			t.Errorf("first delta %v", d)
		}
		if s, ok := d["reasoning_content"].(string); ok {
			reasoning += s
		}
		if tc, ok := d["tool_calls"].([]any); ok {
			c0 := tc[0].(map[string]any)
			if c0["index"].(float64) != 0 {
				t.Errorf("tool call index %v", c0["index"])
			}
			f := c0["function"].(map[string]any)
			if n, ok := f["name"].(string); ok {
				name += n
			}
			args += f["arguments"].(string)
		}
		if f, ok := ch[0].(map[string]any)["finish_reason"].(string); ok {
			finish = f
		}
	}
	if reasoning != "Need the tool." || name != "get_weather" || args != `{"city":"Paris"}` || finish != "tool_calls" {
		t.Errorf("streamed reasoning %q call %s(%s) finish %q", reasoning, name, args, finish)
	}

	// tool_choice naming a function forces the call's header into the prompt.
	before := len(g.prompts)
	status, v = post(t, ts.url, `{"model": "gpt-oss-20b", `+tools+`, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}, "messages": [{"role": "user", "content": "weather now"}]}`)
	if status != 200 || len(g.prompts) == before || !strings.HasSuffix(g.prompts[len(g.prompts)-1], "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>") {
		t.Errorf("tool_choice: %d %v", status, v)
	}
	// tool_choice none: no tools in the prompt.
	post(t, ts.url, `{"model": "gpt-oss-20b", `+tools+`, "tool_choice": "none", "messages": [{"role": "user", "content": "weather, no tools"}]}`)
	if p := g.prompts[len(g.prompts)-1]; strings.Contains(p, "get_weather") {
		t.Errorf("tool_choice none still renders the tool: %s", p)
	}
}

// With two sequences, two answers generate at once (both are inside the
// model before either may go on), and a request goes to the sequence
// whose cache holds its prefix.
func TestParallelSequences(t *testing.T) {
	m, tok := tinyModel(t)
	g := newGated(m)
	ts := start(t, Config{Model: g, Tokenizer: tok, Parallel: 2, MaxQueue: -1,
		Script: chat.Script{{When: "", Reply: "<|channel|>final<|message|>ok<|return|>"}}})
	statuses := make(chan int, 2)
	for _, who := range []string{"one", "two"} {
		go func() {
			s, _ := post(t, ts.url, `{"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "`+who+`"}]}`)
			statuses <- s
		}()
	}
	<-g.entered
	<-g.entered
	if ts.q.inUse() != 2 {
		t.Errorf("%d sequences in use, want 2", ts.q.inUse())
	}
	// Both sequences busy and no waiting allowed: 429.
	if s, v := post(t, ts.url, `{"model": "gpt-oss-20b", `+hello+`}`); s != 429 {
		t.Errorf("third request: %d %v", s, v)
	}
	g.open()
	if a, b := <-statuses, <-statuses; a != 200 || b != 200 {
		t.Fatalf("statuses %d %d", a, b)
	}
	// Follow-ups of each conversation reuse its sequence's cache: all but
	// the new turn was cached (the first answer "…ok" and the prompt
	// before it), which the other sequence does not hold.
	fresh := len(tok.Encode("<|end|><|start|>user<|message|>more<|end|><|start|>assistant", "all"))
	for _, who := range []string{"two", "one", "two", "one"} {
		_, v := post(t, ts.url, `{"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "`+who+`"}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}]}`)
		u := v["usage"].(map[string]any)
		cached := u["prompt_tokens_details"].(map[string]any)["cached_tokens"].(float64)
		if prompt := u["prompt_tokens"].(float64); int(prompt-cached) > fresh {
			t.Errorf("%s: cached %v of %v prompt tokens: the conversation's sequence was not chosen", who, cached, prompt)
		}
	}
}
