package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gptoss/gptoss/runtime/chat"
	"github.com/gptoss/gptoss/runtime/harmony"
	"github.com/gptoss/gptoss/runtime/sample"
)

// samplingFlags are the flags that choose how tokens are drawn.
type samplingFlags struct {
	temperature float64
	topP        float64
	topK        int
	seed        uint64
	maxTokens   int
}

func (f *samplingFlags) add(c *cobra.Command) {
	c.Flags().Float64Var(&f.temperature, "temperature", 1, "sampling temperature; 0 is greedy (the argmax)")
	c.Flags().Float64Var(&f.topP, "top-p", 1, "nucleus sampling: keep the most likely tokens up to this probability mass")
	c.Flags().IntVar(&f.topK, "top-k", 0, "keep only the k most likely tokens (0: all)")
	c.Flags().Uint64Var(&f.seed, "seed", 0, "make sampling reproducible (default: random)")
	c.Flags().IntVar(&f.maxTokens, "max-tokens", 0, "stop after this many generated tokens (default: the context's room)")
}

func (f *samplingFlags) sampler(c *cobra.Command) (*sample.Sampler, error) {
	if f.maxTokens < 0 {
		return nil, usageError{fmt.Errorf("--max-tokens %d: want ≥ 0", f.maxTokens)}
	}
	p := sample.Params{Temperature: f.temperature, TopP: f.topP, TopK: f.topK}
	if c.Flags().Changed("seed") {
		p.Seed = &f.seed
	}
	s, err := sample.New(p)
	if err != nil {
		return nil, usageError{err}
	}
	return s, nil
}

type runOptions struct {
	engineFlags
	samplingFlags
	prompt        string
	system        string
	reasoning     string
	hideReasoning bool
	tokens        string
	stopTokens    string
	scriptFile    string
}

func newRunCmd(g *globalOptions) *cobra.Command {
	o := &runOptions{}
	c := &cobra.Command{
		Use:   "run MODEL",
		Short: "Chat with a cached model in the terminal (or answer one prompt with -p)",
		Long: `Chat with a cached gpt-oss model: each line on stdin is a user message, the
answer streams back as it is generated, and the conversation keeps its
history by the Harmony rules (earlier chain of thought is dropped).

The model's reasoning (the analysis channel) is shown dimmed on a terminal,
or on stderr when stdout is not a terminal; --hide-reasoning hides it.
With -p the one prompt is answered and the command exits. --json prints
one object per answer: {"reasoning", "content", "tool_calls",
"finish_reason", "usage"}.

--tokens feeds token ids with no chat format and prints the generated ids
(a check of the engines): {"prompt": [...], "generated": [...]} with --json.
It stops at --max-tokens (default 16 there) or at one of --stop-tokens.

The model is converted to the GPU-ready layout first if it was not yet,
and runs on the engine the doctor plan picks (--engine to choose).`,
		Example: `  gptoss run 20b
  gptoss run 20b -p "Why is the sky blue?" --reasoning low
  gptoss run 20b --system "Answer in French." --temperature 0.7 --seed 1
  gptoss run 20b --tokens 200006,1428,200008 --max-tokens 8 --temperature 0 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRun(cmd, g, args[0], o)
		},
	}
	o.engineFlags.add(c)
	o.samplingFlags.add(c)
	c.Flags().StringVarP(&o.prompt, "prompt", "p", "", "answer this one prompt and exit")
	c.Flags().StringVar(&o.system, "system", "", "instructions for the model (Harmony's developer message)")
	c.Flags().StringVar(&o.reasoning, "reasoning", harmony.DefaultReasoning, "reasoning effort: low, medium or high")
	c.Flags().BoolVar(&o.hideReasoning, "hide-reasoning", false, "do not show the model's chain of thought")
	c.Flags().StringVar(&o.tokens, "tokens", "", "raw mode: feed these comma-separated token ids (no chat format) and print the generated ids")
	c.Flags().StringVar(&o.stopTokens, "stop-tokens", "", "raw mode: token ids that end the generation")
	c.Flags().StringVar(&o.scriptFile, "script-file", "", "test hook: replay canned completions (needs "+chat.ScriptEnv+"=1)")
	c.Flags().MarkHidden("script-file")
	return c
}

func checkReasoning(r string) error {
	switch r {
	case "low", "medium", "high":
		return nil
	}
	return fmt.Errorf("reasoning effort %q: want low, medium or high", r)
}

// loadScript honours --script-file only when the test environment asks.
func loadScript(path string) (chat.Script, error) {
	if path == "" {
		return nil, nil
	}
	if os.Getenv(chat.ScriptEnv) != "1" {
		return nil, usageError{fmt.Errorf("--script-file is a test hook: set %s=1 to use it", chat.ScriptEnv)}
	}
	return chat.LoadScript(path)
}

func runRun(cmd *cobra.Command, g *globalOptions, arg string, o *runOptions) error {
	if err := checkReasoning(o.reasoning); err != nil {
		return usageError{err}
	}
	smp, err := o.sampler(cmd)
	if err != nil {
		return err
	}
	if o.tokens != "" && (o.prompt != "" || o.system != "") {
		return usageError{errors.New("--tokens feeds ids without the chat format: it does not take -p or --system")}
	}
	script, err := loadScript(o.scriptFile)
	if err != nil {
		return err
	}
	var raw, stops []int32
	if o.tokens != "" {
		if raw, err = parseTokens(o.tokens, 0); err != nil {
			return err
		}
		if o.stopTokens != "" {
			if stops, err = parseTokens(o.stopTokens, 0); err != nil {
				return err
			}
		}
		if o.maxTokens == 0 {
			o.maxTokens = 16
		}
	}
	lm, err := loadModel(cmd.Context(), g, arg, o.engineFlags)
	if err != nil {
		return err
	}
	defer lm.Close()
	sess, err := chat.NewSession(lm.model, lm.context)
	if err != nil {
		return err
	}
	defer sess.Close()
	if raw != nil {
		return runTokens(cmd, g, lm, sess, raw, stops, smp, o.maxTokens)
	}
	tok, err := lm.tokenizer()
	if err != nil {
		return err
	}
	conv := harmony.Conversation{System: harmony.SystemContent{Reasoning: o.reasoning}}
	if o.system != "" {
		conv.Developer = &harmony.DeveloperContent{Instructions: o.system}
	}
	out := cmd.OutOrStdout()
	tty := isTTY(out)
	w := &chatWriter{out: out, errw: cmd.ErrOrStderr(), tty: tty, hide: o.hideReasoning || g.quiet, json: g.json}
	turn := func(text string) error {
		conv.Messages = append(conv.Messages, harmony.Message{Role: harmony.RoleUser, Content: text})
		t := chat.Turn{Conv: conv, MaxTokens: o.maxTokens, Sampler: smp}
		if script != nil {
			if t.Forced, _ = script.Reply(text); t.Forced == "" {
				return fmt.Errorf("the script has no reply for %q", text)
			}
		}
		var emit func(chat.Event) error
		if !g.json {
			emit = w.event
		}
		res, err := sess.Chat(cmd.Context(), tok, t, emit)
		if err != nil {
			if errors.Is(err, chat.ErrContext) {
				conv.Messages = conv.Messages[:len(conv.Messages)-1]
				return fmt.Errorf("%w; start a new conversation or raise --context", err)
			}
			return err
		}
		harmony.AppendCompletion(&conv, res.Messages)
		return w.done(res)
	}
	if o.prompt != "" {
		return turn(o.prompt)
	}
	in := cmd.InOrStdin()
	interactive := isTTY(in)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for {
		if interactive {
			fmt.Fprint(cmd.ErrOrStderr(), ">>> ")
		}
		if !sc.Scan() {
			if interactive {
				fmt.Fprintln(cmd.ErrOrStderr())
			}
			return sc.Err()
		}
		line := strings.TrimSpace(sc.Text())
		switch line {
		case "":
			continue
		case "/bye", "/exit", "/quit":
			return nil
		}
		if err := turn(line); err != nil {
			if errors.Is(err, chat.ErrContext) && interactive {
				fmt.Fprintln(cmd.ErrOrStderr(), "gptoss: "+err.Error())
				continue
			}
			return err
		}
	}
}

// runTokens is run --tokens: ids in, ids out.
func runTokens(cmd *cobra.Command, g *globalOptions, lm *loadedModel, sess *chat.Session, prompt, stops []int32, smp *sample.Sampler, maxTokens int) error {
	vocab := lm.model.Config().VocabSize
	for _, id := range append(append([]int32{}, prompt...), stops...) {
		if int(id) >= vocab {
			return usageError{fmt.Errorf("token %d out of range: the vocabulary has %d tokens", id, vocab)}
		}
	}
	out := cmd.OutOrStdout()
	res, err := sess.Generate(cmd.Context(), chat.Request{Prompt: prompt, MaxTokens: maxTokens, Sampler: smp, Stops: sample.NewStops(stops...)},
		func(id int32) error {
			if !g.json {
				fmt.Fprintf(out, "%d\n", id)
			}
			return nil
		})
	if err != nil {
		return err
	}
	if g.json {
		rep := map[string]any{"model": lm.name, "engine": lm.model.Engine(),
			"prompt": prompt, "generated": res.Tokens, "finish_reason": res.Finish}
		if k := kernelsOf(lm.model); k != "" {
			rep["kernels"] = k
		}
		return json.NewEncoder(out).Encode(rep)
	}
	return nil
}

func isTTY(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// chatWriter prints a streamed answer: reasoning faint on a terminal (on
// stderr when stdout is not one), content plain, tool calls as a line.
type chatWriter struct {
	out, errw io.Writer
	tty       bool
	hide      bool
	json      bool
	kind      chat.Kind // what was printed last
	wrote     bool
	faint     bool // the terminal is in faint mode
}

const (
	ansiFaint = "\x1b[2m"
	ansiReset = "\x1b[0m"
)

func (w *chatWriter) event(e chat.Event) error {
	if e.Kind != chat.Reasoning {
		w.plain()
	}
	switch e.Kind {
	case chat.Reasoning:
		if w.hide {
			return nil
		}
		if w.tty {
			if !w.faint {
				fmt.Fprint(w.out, ansiFaint)
				w.faint = true
			}
			fmt.Fprint(w.out, e.Text)
		} else {
			fmt.Fprint(w.errw, e.Text)
		}
	case chat.Content:
		if w.kind == chat.Reasoning && !w.hide {
			if w.tty {
				fmt.Fprint(w.out, "\n\n")
			} else {
				fmt.Fprintln(w.errw)
			}
		}
		fmt.Fprint(w.out, e.Text)
		w.wrote = true
	case chat.ToolCall:
		fmt.Fprintf(w.out, "\n[call %s ", e.Tool)
		w.wrote = true
	case chat.ToolArgs:
		fmt.Fprint(w.out, e.Text)
	}
	if e.Kind != chat.ToolArgs {
		w.kind = e.Kind
	}
	return nil
}

// plain ends the faint text of the reasoning.
func (w *chatWriter) plain() {
	if w.faint {
		fmt.Fprint(w.out, ansiReset)
		w.faint = false
	}
}

func (w *chatWriter) done(res chat.TurnResult) error {
	w.plain()
	if w.json {
		calls := []map[string]string{}
		for _, c := range res.Calls {
			calls = append(calls, map[string]string{"name": c.Name, "arguments": c.Arguments})
		}
		return json.NewEncoder(w.out).Encode(map[string]any{"reasoning": res.Reasoning, "content": res.Content,
			"tool_calls": calls, "finish_reason": res.Finish,
			"usage": map[string]int{"prompt_tokens": res.PromptTokens, "completion_tokens": res.CompletionTokens, "cached_tokens": res.CachedTokens}})
	}
	if len(res.Calls) > 0 {
		fmt.Fprint(w.out, "]")
	}
	if w.kind == chat.Reasoning && !w.hide && !w.tty {
		fmt.Fprintln(w.errw)
	}
	fmt.Fprintln(w.out)
	if res.Finish == chat.FinishLength {
		fmt.Fprintln(w.errw, "gptoss: the answer was cut at the token limit")
	}
	w.kind, w.wrote = 0, false
	return nil
}
