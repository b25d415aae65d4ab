package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gptoss/gptoss/runtime/server"
)

type serveOptions struct {
	engineFlags
	addr       string
	parallel   int
	queue      int
	maxBody    int64
	grace      time.Duration
	scriptFile string
}

func newServeCmd(g *globalOptions) *cobra.Command {
	o := &serveOptions{}
	c := &cobra.Command{
		Use:   "serve MODEL",
		Short: "Serve a cached model over an OpenAI-compatible HTTP API",
		Long: `Serve a cached gpt-oss model over the OpenAI chat completions API, so
OpenAI clients (the openai Python/JS libraries, curl, agents) can use it:

  GET  /v1/models               the model (its id is the cached name, e.g. openai/gpt-oss-20b)
  POST /v1/chat/completions     plain and streamed (SSE) chats, tools, reasoning_effort
  GET  /health

The model's reasoning comes back as reasoning_content (message and stream
deltas), function tools are Harmony function tools and calls come back as
tool_calls with finish_reason "tool_calls". Requests queue first come, first
served (--parallel sequences generate at once, --queue may wait; beyond
that 429). A client that disconnects stops its generation. SIGTERM or
Ctrl-C stops accepting requests, lets running answers finish for --grace,
then cuts them, and exits 0.`,
		Example: `  gptoss serve 20b --addr 127.0.0.1:8080
  curl -s localhost:8080/v1/chat/completions -H 'content-type: application/json' \
    -d '{"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": "Hi"}]}'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runServe(cmd, g, args[0], o)
		},
	}
	o.engineFlags.add(c)
	c.Flags().StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	c.Flags().IntVar(&o.parallel, "parallel", 1, "sequences generating at once (each holds a KV cache of --context tokens)")
	c.Flags().IntVar(&o.queue, "queue", 64, "requests that may wait for a sequence; more get 429")
	c.Flags().Int64Var(&o.maxBody, "max-body", 4<<20, "largest request body in bytes; larger get 413")
	c.Flags().DurationVar(&o.grace, "grace", 30*time.Second, "on SIGTERM/Ctrl-C, how long running answers may finish before they are cut")
	c.Flags().StringVar(&o.scriptFile, "script-file", "", "test hook: replay canned completions (needs GPTOSS_TEST_SCRIPT=1)")
	c.Flags().MarkHidden("script-file")
	return c
}

func runServe(cmd *cobra.Command, g *globalOptions, arg string, o *serveOptions) error {
	if o.parallel < 1 || o.queue < 0 || o.maxBody < 1 || o.grace < 0 {
		return usageError{errors.New("--parallel and --max-body want ≥ 1, --queue and --grace ≥ 0")}
	}
	script, err := loadScript(o.scriptFile)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return usageError{fmt.Errorf("--addr %s: %w", o.addr, err)}
	}
	defer ln.Close()
	ctx := cmd.Context()
	lm, err := loadModel(ctx, g, arg, o.engineFlags)
	if err != nil {
		return err
	}
	defer lm.Close()
	tok, err := lm.tokenizer()
	if err != nil {
		return err
	}
	errw := cmd.ErrOrStderr()
	cfg := server.Config{Model: lm.model, Tokenizer: tok, ModelID: lm.name, Aliases: modelAliases(arg, lm.name),
		Context: lm.context, Parallel: o.parallel, MaxQueue: max(o.queue, 1), MaxBodyBytes: o.maxBody, Script: script}
	if o.queue == 0 {
		cfg.MaxQueue = -1 // no waiting line: busy means 429
	}
	if !g.quiet {
		cfg.Logf = func(format string, a ...any) {
			fmt.Fprintf(errw, "%s %s\n", time.Now().Format(time.TimeOnly), fmt.Sprintf(format, a...))
		}
	}
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 30 * time.Second}
	url := "http://" + ln.Addr().String()
	if g.json {
		json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"event": "listening", "url": url, "model": lm.name,
			"engine": lm.model.Engine(), "context": lm.context})
	} else {
		fmt.Fprintf(errw, "serving %s at %s (engine %s, context %d tokens, %d at once); Ctrl-C to stop\n",
			lm.name, url, lm.model.Engine(), lm.context, o.parallel)
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// Shutdown: stop accepting, let answers finish for the grace period,
	// then cut them; the HTTP server returns once their handlers have.
	if !g.quiet && !g.json {
		fmt.Fprintf(errw, "shutting down (answers in progress get %s)\n", o.grace)
	}
	grace, cancel := context.WithTimeout(context.Background(), o.grace)
	defer cancel()
	done := make(chan struct{})
	go func() {
		hs.Shutdown(context.Background())
		close(done)
	}()
	srv.Drain(grace)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		hs.Close() // a handler did not return: drop the connections
	}
	if g.json {
		json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"event": "stopped"})
	}
	return nil
}

// modelAliases are the names a request may use for the served model: what
// was typed on the command line, and the name without its organisation.
func modelAliases(arg, name string) []string {
	out := []string{arg, path.Base(name)}
	if strings.HasPrefix(arg, "hf://") {
		out = append(out, strings.TrimPrefix(arg, "hf://"))
	}
	return out
}
