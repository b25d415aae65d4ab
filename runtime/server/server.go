package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/gptoss/gptoss/runtime"
	"github.com/gptoss/gptoss/runtime/chat"
	"github.com/gptoss/gptoss/runtime/sample"
)

// Config is what a Server serves and its limits. Zero limits take the
// defaults.
type Config struct {
	Model     runtime.Model
	Tokenizer chat.Tokenizer
	// ModelID is the id /v1/models lists ("openai/gpt-oss-20b"); Aliases
	// are also accepted as a request's "model" ("20b", "gpt-oss-20b").
	ModelID string
	Aliases []string
	// Context is each sequence's length, prompt and answer (default 8192).
	Context int
	// Parallel is the number of sequences (KV caches) generating at once
	// (default 1).
	Parallel int
	// MaxQueue is how many requests may wait for a sequence before new
	// ones get 429 (0: 64; negative: none may wait).
	MaxQueue int
	// MaxBodyBytes caps a request body (default 4 MiB; larger: 413).
	MaxBodyBytes int64
	// Script replaces sampling with canned completions (a test hook).
	Script chat.Script
	// Logf logs one line per request (nil: silent).
	Logf func(format string, a ...any)
}

// Server is the OpenAI-compatible API over one model.
type Server struct {
	cfg     Config
	q       *scheduler
	created int64
	ids     map[string]bool

	// hard is the parent of every generation's context: cancelling it
	// stops them all (the end of a shutdown's grace period).
	hard       context.Context
	cancelHard context.CancelFunc
	closing    chan struct{}
	closeOnce  sync.Once
	sessions   []*chat.Session
}

// New makes a server and its sequences.
func New(cfg Config) (*Server, error) {
	if cfg.Model == nil || cfg.Tokenizer == nil {
		return nil, errors.New("server: a model and a tokenizer are required")
	}
	if cfg.Context <= 0 {
		cfg.Context = 8192
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 1
	}
	switch {
	case cfg.MaxQueue == 0:
		cfg.MaxQueue = 64
	case cfg.MaxQueue < 0:
		cfg.MaxQueue = 0 // no waiting: busy means 429
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	if cfg.ModelID == "" {
		cfg.ModelID = "gpt-oss"
	}
	s := &Server{cfg: cfg, created: time.Now().Unix(), ids: map[string]bool{cfg.ModelID: true}, closing: make(chan struct{})}
	for _, a := range cfg.Aliases {
		s.ids[a] = true
	}
	for range cfg.Parallel {
		sess, err := chat.NewSession(cfg.Model, cfg.Context)
		if err != nil {
			s.closeSessions()
			return nil, err
		}
		s.sessions = append(s.sessions, sess)
	}
	s.q = newScheduler(s.sessions, cfg.MaxQueue)
	s.hard, s.cancelHard = context.WithCancel(context.Background())
	return s, nil
}

func (s *Server) closeSessions() {
	for _, sess := range s.sessions {
		sess.Close()
	}
}

// Handler routes the API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("GET /v1/models", s.models)
	mux.HandleFunc("GET /v1/models/{id...}", s.model)
	mux.HandleFunc("/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			writeError(w, &apiError{status: 405, Type: "invalid_request_error", Message: r.Method + " /v1/chat/completions: use POST"})
			return
		}
		s.chatCompletions(w, r)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{status: 404, Message: fmt.Sprintf("%s %s: no such endpoint", r.Method, r.URL.Path), Type: "invalid_request_error"})
	})
	return mux
}

// Drain stops taking requests (new ones get 503, waiting ones are turned
// away), lets running generations finish until ctx ends, then cancels
// them. It returns when no generation runs. Call it after the http.Server
// stopped accepting (or together with its Shutdown).
func (s *Server) Drain(ctx context.Context) {
	s.closeOnce.Do(func() { close(s.closing) })
	idle := s.q.close()
	select {
	case <-idle:
	case <-ctx.Done():
		s.cancelHard()
		<-idle
	}
}

// Close stops every generation and frees the sequences.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.cancelHard()
	<-s.q.close()
	s.closeSessions()
	return nil
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	select {
	case <-s.closing:
		writeJSON(w, 503, map[string]any{"status": "shutting down"})
	default:
		writeJSON(w, 200, map[string]any{"status": "ok", "model": s.cfg.ModelID, "engine": s.cfg.Model.Engine(), "queued": s.q.queued()})
	}
}

func (s *Server) modelObject() map[string]any {
	return map[string]any{"id": s.cfg.ModelID, "object": "model", "created": s.created, "owned_by": "gptoss",
		"max_model_len": s.cfg.Context}
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, map[string]any{"object": "list", "data": []any{s.modelObject()}})
}

func (s *Server) model(w http.ResponseWriter, r *http.Request) {
	if id := r.PathValue("id"); !s.ids[id] {
		writeError(w, s.unknownModel(id))
		return
	}
	writeJSON(w, 200, s.modelObject())
}

func (s *Server) unknownModel(id string) *apiError {
	return withCode(&apiError{status: 404, Type: "invalid_request_error",
		Message: fmt.Sprintf("The model %q does not exist; this server serves %q", id, s.cfg.ModelID)}, "model_not_found")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.status == 429 || e.status == 503 {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.status, map[string]any{"error": e})
}

func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	res, code, err := s.serveChat(w, r)
	if s.cfg.Logf != nil {
		msg := fmt.Sprintf("POST /v1/chat/completions %d %s", code, time.Since(start).Round(time.Millisecond))
		if err == nil && res != nil {
			msg += fmt.Sprintf(" prompt=%d cached=%d completion=%d finish=%s", res.PromptTokens, res.CachedTokens, res.CompletionTokens, res.Finish)
		} else if err != nil {
			msg += ": " + err.Error()
		}
		s.cfg.Logf("%s", msg)
	}
}

// serveChat answers one chat completion; it returns what was generated,
// the status sent and the error that ended it, for the log.
func (s *Server) serveChat(w http.ResponseWriter, r *http.Request) (*chat.TurnResult, int, error) {
	fail := func(e *apiError) (*chat.TurnResult, int, error) {
		writeError(w, e)
		return nil, e.status, e
	}
	select {
	case <-s.closing:
		return fail(&apiError{status: 503, Type: "server_error", Message: errClosing.Error()})
	default:
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fail(&apiError{status: 413, Type: "invalid_request_error",
				Message: fmt.Sprintf("the request body is larger than %d bytes", s.cfg.MaxBodyBytes)})
		}
		return fail(badRequest("", "reading the request body: %v", err))
	}
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return fail(badRequest("", "the request body is not valid JSON for a chat completion: %v", err))
	}
	if req.Model == "" {
		return fail(badRequest("model", "model: required"))
	}
	if !s.ids[req.Model] {
		return fail(s.unknownModel(req.Model))
	}
	p, apiErr := parsePlan(&req)
	if apiErr != nil {
		return fail(apiErr)
	}
	turn := chat.Turn{Conv: p.conv, Prefill: p.prefill, Stop: p.stop}
	prompt, _, err := chat.PromptFor(s.cfg.Tokenizer, turn)
	if err != nil {
		return fail(badRequest("messages", "%v", err))
	}
	room := s.cfg.Context - len(prompt)
	if room < 1 || p.maxTokens > room {
		want := len(prompt) + max(p.maxTokens, 1)
		return fail(withCode(badRequest("messages",
			"This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.",
			s.cfg.Context, want, len(prompt), max(p.maxTokens, 1)), "context_length_exceeded"))
	}
	turn.MaxTokens = p.maxTokens
	if s.cfg.Script != nil {
		reply, ok := s.cfg.Script.Reply(p.last)
		if !ok {
			return fail(&apiError{status: 500, Type: "server_error", Message: "the test script has no reply for this conversation"})
		}
		turn.Forced = reply
	}
	if turn.Sampler, err = sample.New(p.params); err != nil {
		return fail(badRequest("", "%v", err))
	}

	// Wait for a sequence; the client leaving or the shutdown's end
	// cancels the wait and the generation.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.hard, cancel)
	defer stop()
	sess, err := s.q.acquire(ctx, prompt)
	switch {
	case errors.Is(err, errQueueFull):
		return fail(withCode(&apiError{status: 429, Type: "rate_limit_error", Message: err.Error()}, "queue_full"))
	case errors.Is(err, errClosing):
		return fail(&apiError{status: 503, Type: "server_error", Message: err.Error()})
	case err != nil:
		return nil, 499, err // the client went away while waiting
	}
	defer s.q.release(sess)

	id, created := newID("chatcmpl-"), time.Now().Unix()
	if p.stream {
		return s.streamChat(ctx, w, sess, turn, p, id, created)
	}
	res, err := sess.Chat(ctx, s.cfg.Tokenizer, turn, nil)
	if err != nil {
		if ctx.Err() != nil {
			if s.hard.Err() != nil {
				return fail(&apiError{status: 503, Type: "server_error", Message: "the server shut down before the answer was complete"})
			}
			return nil, 499, err
		}
		return fail(&apiError{status: 500, Type: "server_error", Message: err.Error()})
	}
	msg := map[string]any{"role": "assistant", "content": res.Content}
	if res.Content == "" && len(res.Calls) > 0 {
		msg["content"] = nil
	}
	if res.Reasoning != "" {
		msg["reasoning_content"] = res.Reasoning
	}
	if len(res.Calls) > 0 {
		var calls []toolCall
		for _, c := range res.Calls {
			calls = append(calls, toolCall{ID: newID("call_"), Type: "function", Function: functionCall{Name: c.Name, Arguments: c.Arguments}})
		}
		msg["tool_calls"] = calls
	}
	writeJSON(w, 200, map[string]any{
		"id": id, "object": "chat.completion", "created": created, "model": s.cfg.ModelID,
		"choices": []any{map[string]any{"index": 0, "message": msg, "logprobs": nil, "finish_reason": res.Finish}},
		"usage":   usage(res),
	})
	return &res, 200, nil
}

func usage(res chat.TurnResult) map[string]any {
	return map[string]any{"prompt_tokens": res.PromptTokens, "completion_tokens": res.CompletionTokens,
		"total_tokens":          res.PromptTokens + res.CompletionTokens,
		"prompt_tokens_details": map[string]any{"cached_tokens": res.CachedTokens}}
}

// streamChat sends the answer as server-sent events: chat.completion.chunk
// objects, then "data: [DONE]".
func (s *Server) streamChat(ctx context.Context, w http.ResponseWriter, sess *chat.Session, turn chat.Turn, p *plan, id string, created int64) (*chat.TurnResult, int, error) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(200)
	model := s.cfg.ModelID
	send := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return err
		}
		return rc.Flush()
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}}}
	}
	if err := send(chunk(map[string]any{"role": "assistant", "content": ""}, nil)); err != nil {
		return nil, 200, err
	}
	res, err := sess.Chat(ctx, s.cfg.Tokenizer, turn, func(e chat.Event) error {
		switch e.Kind {
		case chat.Reasoning:
			return send(chunk(map[string]any{"reasoning_content": e.Text}, nil))
		case chat.Content:
			return send(chunk(map[string]any{"content": e.Text}, nil))
		case chat.ToolCall:
			idx := e.Index
			return send(chunk(map[string]any{"tool_calls": []toolCall{{Index: &idx, ID: newID("call_"), Type: "function",
				Function: functionCall{Name: e.Tool, Arguments: ""}}}}, nil))
		case chat.ToolArgs:
			idx := e.Index
			return send(chunk(map[string]any{"tool_calls": []toolCall{{Index: &idx, Function: functionCall{Arguments: e.Text}}}}, nil))
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil && s.hard.Err() == nil {
			return nil, 499, err // the client went away
		}
		msg := err.Error()
		if s.hard.Err() != nil {
			msg = "the server shut down before the answer was complete"
		}
		send(map[string]any{"error": &apiError{Message: msg, Type: "server_error"}})
		return nil, 200, err
	}
	if err := send(chunk(map[string]any{}, res.Finish)); err != nil {
		return &res, 200, err
	}
	if p.usage {
		if err := send(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
			"choices": []any{}, "usage": usage(res)}); err != nil {
			return &res, 200, err
		}
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	rc.Flush()
	return &res, 200, nil
}
