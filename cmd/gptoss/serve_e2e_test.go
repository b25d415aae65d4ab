package main

// End-to-end tests of serve: the real binary on a model pulled from the
// test hub, driven by the official OpenAI JS client and by plain HTTP.

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gptoss/gptoss/internal/fixture"
	"github.com/gptoss/gptoss/internal/testproc"
	"github.com/gptoss/gptoss/runtime/chat"
)

// serving is a running `gptoss serve`.
type serving struct {
	cmd    *exec.Cmd
	url    string
	stderr *strings.Builder
	rest   string     // stdout after the listening event, once exited
	exited chan error // the exit, after all of stdout was read
}

// startServe runs `gptoss serve 20b --addr 127.0.0.1:0 --json ARGS` and
// waits for its "listening" event.
func startServe(t *testing.T, e *env, args ...string) *serving {
	t.Helper()
	c := e.cmd(t.Context(), append([]string{"serve", "20b", "--addr", "127.0.0.1:0", "--json"}, args...)...)
	c.Cancel = func() error { return c.Process.Kill() }
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &serving{cmd: c, stderr: &strings.Builder{}, exited: make(chan error, 1)}
	c.Stderr = &lockedWriter{b: s.stderr}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.ProcessState == nil {
			c.Process.Kill()
		}
	})
	rd := bufio.NewReader(out)
	line, err := rd.ReadString('\n')
	go func() {
		b, _ := io.ReadAll(rd)
		s.rest = string(b)
		s.exited <- c.Wait()
	}()
	var ev struct{ Event, URL string }
	if err != nil || json.Unmarshal([]byte(line), &ev) != nil || ev.Event != "listening" {
		t.Fatalf("serve did not start: %q %v\nstderr: %s", line, err, s.stderr.String())
	}
	s.url = ev.URL
	return s
}

type lockedWriter struct {
	b *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) { return w.b.Write(p) }

// chatScript is the canned completions the serve tests replay: the fixture
// model's weights are random, the HTTP/Harmony mapping is what is tested.
const chatScript = `[
  {"when": "sunny", "reply": "<|channel|>analysis<|message|>The tool answered.<|end|><|start|>assistant<|channel|>final<|message|>It is sunny and 21 °C in Paris.<|return|>"},
  {"when": "weather in Paris", "reply": "<|channel|>analysis<|message|>I should call get_weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>"},
  {"when": "Say hello", "reply": "<|channel|>analysis<|message|>Greet back.<|end|><|start|>assistant<|channel|>final<|message|>Hello! How can I help?<|return|>"},
  {"when": "long", "reply": "<|channel|>final<|message|>` + "%LONG%" + `<|return|>"}
]`

var longAnswer = strings.Repeat("la ", 1000)

func writeScript(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "script.json")
	if err := os.WriteFile(p, []byte(strings.Replace(chatScript, "%LONG%", longAnswer, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestServeOpenAIClient(t *testing.T) {
	npm := testproc.NPMDir(t, "openai")
	e := newRepoEnv(t, fixture.Cached(t, fixture.Tiny()))
	e.mustRun("pull", "20b")
	e.extra = []string{chat.ScriptEnv + "=1"}
	s := startServe(t, e, "--script-file", writeScript(t))

	js, err := os.ReadFile("../../runtime/server/testdata/openai_client.js")
	if err != nil {
		t.Fatal(err)
	}
	node := exec.CommandContext(t.Context(), "node", "-e", string(js))
	node.Dir = npm
	node.Env = append(os.Environ(), "GPTOSS_URL="+s.url, "GPTOSS_MODEL="+repoID)
	var stderr strings.Builder
	node.Stderr = &stderr
	out, err := node.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s\nserver: %s", err, stderr.String(), s.stderr.String())
	}
	var r struct {
		Models []string
		Plain  struct {
			Content, Reasoning, Finish, Object string
			Usage                              struct{ Prompt_tokens, Completion_tokens, Total_tokens int }
		}
		Stream struct {
			Content, Reasoning, Finish, Role string
			Chunks                           int
			Usage                            *struct{ Completion_tokens int }
		}
		Call struct {
			Finish     string
			Content    *string
			Tool_calls []struct {
				ID, Type string
				Function struct{ Name, Arguments string }
			}
		}
		Answer       struct{ Content, Finish string }
		StreamedCall struct {
			Calls []struct {
				ID, Name, Arguments string
			}
			Finish string
		}
		Errors map[string]struct {
			Status                            int
			Class, Type, Code, Param, Message string
		}
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(r.Models) != 1 || r.Models[0] != repoID {
		t.Errorf("models %v", r.Models)
	}
	p := r.Plain
	if p.Object != "chat.completion" || p.Content != "Hello! How can I help?" || p.Reasoning != "Greet back." || p.Finish != "stop" ||
		p.Usage.Prompt_tokens == 0 || p.Usage.Completion_tokens == 0 || p.Usage.Total_tokens != p.Usage.Prompt_tokens+p.Usage.Completion_tokens {
		t.Errorf("plain chat: %+v", p)
	}
	st := r.Stream
	if st.Role != "assistant" || st.Content != "Hello! How can I help?" || st.Reasoning != "Greet back." || st.Finish != "stop" || st.Chunks < 5 || st.Usage == nil || st.Usage.Completion_tokens == 0 {
		t.Errorf("streamed chat: %+v", st)
	}
	c := r.Call
	if c.Finish != "tool_calls" || c.Content != nil || len(c.Tool_calls) != 1 || c.Tool_calls[0].Type != "function" || c.Tool_calls[0].ID == "" ||
		c.Tool_calls[0].Function.Name != "get_weather" || c.Tool_calls[0].Function.Arguments != `{"city":"Paris"}` {
		t.Errorf("tool call: %+v", c)
	}
	if r.Answer.Content != "It is sunny and 21 °C in Paris." || r.Answer.Finish != "stop" {
		t.Errorf("answer after the tool result: %+v", r.Answer)
	}
	sc := r.StreamedCall
	if sc.Finish != "tool_calls" || len(sc.Calls) != 1 || sc.Calls[0].Name != "get_weather" || sc.Calls[0].Arguments != `{"city":"Paris"}` || sc.Calls[0].ID == "" {
		t.Errorf("streamed tool call: %+v", sc)
	}
	for name, want := range map[string]struct {
		status      int
		class, code string
		param       string
	}{
		"unknownModel":   {404, "NotFoundError", "model_not_found", ""},
		"badTemperature": {400, "BadRequestError", "", "temperature"},
		"tooLong":        {400, "BadRequestError", "context_length_exceeded", "messages"},
	} {
		got := r.Errors[name]
		if got.Status != want.status || got.Class != want.class || got.Code != want.code || got.Param != want.param || got.Type != "invalid_request_error" || got.Message == "" {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
	}
}

// SIGTERM: an idle server exits 0 at once; one with an answer in progress
// stops accepting, lets the answer finish, then exits 0.
func TestServeSIGTERM(t *testing.T) {
	e := newRepoEnv(t, fixture.Cached(t, fixture.Tiny()))
	e.mustRun("pull", "20b")
	e.extra = []string{chat.ScriptEnv + "=1"}
	script := writeScript(t)

	// Bad flags are usage errors, before any model is loaded.
	for _, args := range [][]string{{"--addr", "no-port"}, {"--parallel", "0"}, {"--engine", "tpu"}} {
		e.wantCode(exitUsage, append([]string{"serve", "20b"}, args...)...)
	}
	e.extra = nil
	if r := e.wantCode(exitUsage, "serve", "20b", "--script-file", script); !strings.Contains(r.stderr, chat.ScriptEnv) {
		t.Errorf("script hook without its variable: %s", r.stderr)
	}
	e.extra = []string{chat.ScriptEnv + "=1"}

	s := startServe(t, e, "--script-file", script)
	resp, err := http.Get(s.url + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health: %v %v", err, resp)
	}
	resp.Body.Close()
	s.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-s.exited; err != nil {
		t.Fatalf("idle server after SIGTERM: %v\n%s", err, s.stderr.String())
	}
	if !strings.Contains(s.rest, `"event":"stopped"`) {
		t.Errorf("no stopped event: %q", s.rest)
	}

	s = startServe(t, e, "--script-file", script)
	req := `{"model": "openai/gpt-oss-20b", "stream": true, "messages": [{"role": "user", "content": "a long answer please"}]}`
	resp, err = http.Post(s.url+"/v1/chat/completions", "application/json", strings.NewReader(req))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", err, resp)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first event: %q %v", line, err)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	var content strings.Builder
	done := false
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			break
		}
		data, ok := strings.CutPrefix(strings.TrimSpace(line), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		var ch struct {
			Choices []struct{ Delta struct{ Content string } }
		}
		json.Unmarshal([]byte(data), &ch)
		if len(ch.Choices) > 0 {
			content.WriteString(ch.Choices[0].Delta.Content)
		}
	}
	if !done || content.String() != longAnswer {
		t.Errorf("answer in progress at SIGTERM: done %v, %d of %d bytes", done, content.Len(), len(longAnswer))
	}
	if err := <-s.exited; err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, s.stderr.String())
	}
	// Nothing listens any more.
	if resp, err := http.Get(s.url + "/health"); err == nil {
		resp.Body.Close()
		t.Errorf("still answering after exit: %d", resp.StatusCode)
	}
}
