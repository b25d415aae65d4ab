package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gptoss/gptoss/runtime/harmony"
	"github.com/gptoss/gptoss/runtime/sample"
)

// chatRequest is the body of POST /v1/chat/completions (the fields gpt-oss
// can honour; others are accepted and ignored, as OpenAI-compatible
// servers do).
type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	Stream              bool            `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	TopK                *int            `json:"top_k"` // vLLM's extension
	Seed                *int64          `json:"seed"`
	Stop                json.RawMessage `json:"stop"`
	N                   *int            `json:"n"`
	PresencePenalty     *float64        `json:"presence_penalty"`
	FrequencyPenalty    *float64        `json:"frequency_penalty"`
	ReasoningEffort     string          `json:"reasoning_effort"`
	Tools               []chatTool      `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	ResponseFormat      *responseFormat `json:"response_format"`
	Logprobs            bool            `json:"logprobs"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatMessage struct {
	Role             string          `json:"role"`
	Content          json.RawMessage `json:"content"`
	Name             string          `json:"name,omitempty"`
	ToolCalls        []toolCall      `json:"tool_calls,omitempty"`
	ToolCallID       string          `json:"tool_call_id,omitempty"`
	ReasoningContent string          `json:"reasoning_content,omitempty"`
	Reasoning        string          `json:"reasoning,omitempty"` // ollama's and OpenRouter's name
}

type toolCall struct {
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function functionCall `json:"function"`
}

type functionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

type chatTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

type responseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Schema      json.RawMessage `json:"schema"`
	} `json:"json_schema"`
}

// apiError is an OpenAI error object, with the HTTP status to send it with.
type apiError struct {
	status  int
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *apiError) Error() string { return e.Message }

func badRequest(param, format string, a ...any) *apiError {
	e := &apiError{status: 400, Message: fmt.Sprintf(format, a...), Type: "invalid_request_error"}
	if param != "" {
		e.Param = &param
	}
	return e
}

func withCode(e *apiError, code string) *apiError {
	e.Code = &code
	return e
}

// plan is a validated request: the conversation and how to sample it.
type plan struct {
	conv      harmony.Conversation
	prefill   string
	params    sample.Params
	maxTokens int // 0: the context's room
	stop      []string
	stream    bool
	usage     bool // stream_options.include_usage
	last      string
	toolNames map[string]bool
}

// parsePlan checks a request and maps it onto Harmony. Errors name the
// offending parameter, as OpenAI's do.
func parsePlan(req *chatRequest) (*plan, *apiError) {
	p := &plan{stream: req.Stream, toolNames: map[string]bool{}}
	if req.StreamOptions != nil {
		if !req.Stream {
			return nil, badRequest("stream_options", "stream_options is only allowed when stream is true")
		}
		p.usage = req.StreamOptions.IncludeUsage
	}
	if req.N != nil && *req.N != 1 {
		return nil, badRequest("n", "n=%d: this server returns one choice (n=1)", *req.N)
	}
	if req.Logprobs {
		return nil, badRequest("logprobs", "logprobs are not supported")
	}
	// Sampling.
	p.params = sample.Params{Temperature: 1, TopP: 1}
	if req.Temperature != nil {
		p.params.Temperature = *req.Temperature
	}
	if req.TopP != nil {
		p.params.TopP = *req.TopP
		if *req.TopP == 0 {
			return nil, badRequest("top_p", "top_p 0: want a number in (0, 1]")
		}
	}
	if req.TopK != nil {
		p.params.TopK = *req.TopK
	}
	if req.PresencePenalty != nil {
		p.params.PresencePenalty = *req.PresencePenalty
	}
	if req.FrequencyPenalty != nil {
		p.params.FrequencyPenalty = *req.FrequencyPenalty
	}
	if req.Seed != nil {
		seed := uint64(*req.Seed)
		p.params.Seed = &seed
	}
	if err := p.params.Validate(); err != nil {
		param, _, _ := strings.Cut(err.Error(), " ")
		return nil, badRequest(param, "%v", err)
	}
	for _, m := range []struct {
		name string
		v    *int
	}{{"max_tokens", req.MaxTokens}, {"max_completion_tokens", req.MaxCompletionTokens}} {
		if m.v == nil {
			continue
		}
		if *m.v < 1 {
			return nil, badRequest(m.name, "%s %d: want at least 1", m.name, *m.v)
		}
		p.maxTokens = *m.v
	}
	// Stop strings: a string or up to 4 strings.
	if len(req.Stop) > 0 && string(req.Stop) != "null" {
		var one string
		if err := json.Unmarshal(req.Stop, &one); err == nil {
			p.stop = []string{one}
		} else if err := json.Unmarshal(req.Stop, &p.stop); err != nil {
			return nil, badRequest("stop", "stop: want a string or an array of strings")
		}
		if len(p.stop) > 4 {
			return nil, badRequest("stop", "stop: at most 4 sequences, got %d", len(p.stop))
		}
	}
	// System message: reasoning effort.
	switch req.ReasoningEffort {
	case "":
	case "low", "medium", "high":
		p.conv.System.Reasoning = req.ReasoningEffort
	default:
		return nil, badRequest("reasoning_effort", "reasoning_effort %q: want low, medium or high", req.ReasoningEffort)
	}
	// Tools.
	var tools []harmony.Tool
	for i, t := range req.Tools {
		if t.Type != "function" {
			return nil, badRequest(fmt.Sprintf("tools[%d].type", i), "tools[%d].type %q: only function tools are supported", i, t.Type)
		}
		name := t.Function.Name
		if name == "" || strings.ContainsAny(name, " \t\n<|>") {
			return nil, badRequest(fmt.Sprintf("tools[%d].function.name", i), "tools[%d].function.name %q: want a non-empty name without spaces", i, name)
		}
		if p.toolNames[name] {
			return nil, badRequest(fmt.Sprintf("tools[%d].function.name", i), "tools[%d]: duplicate function name %q", i, name)
		}
		p.toolNames[name] = true
		params := t.Function.Parameters
		if len(params) > 0 && string(params) != "null" {
			var obj map[string]any
			if err := json.Unmarshal(params, &obj); err != nil {
				return nil, badRequest(fmt.Sprintf("tools[%d].function.parameters", i), "tools[%d].function.parameters: want a JSON Schema object", i)
			}
		} else {
			params = nil
		}
		tools = append(tools, harmony.Tool{Name: name, Description: t.Function.Description, Parameters: params})
	}
	if len(req.ToolChoice) > 0 && string(req.ToolChoice) != "null" {
		var mode string
		var named struct {
			Type     string `json:"type"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		switch {
		case json.Unmarshal(req.ToolChoice, &mode) == nil:
			switch mode {
			case "auto":
			case "none":
				tools = nil
			case "required":
				if len(tools) == 0 {
					return nil, badRequest("tool_choice", "tool_choice required: no tools given")
				}
				p.prefill = "<|channel|>commentary to=functions."
			default:
				return nil, badRequest("tool_choice", "tool_choice %q: want none, auto, required or a function", mode)
			}
		case json.Unmarshal(req.ToolChoice, &named) == nil && named.Type == "function":
			if !p.toolNames[named.Function.Name] {
				return nil, badRequest("tool_choice", "tool_choice names function %q, which is not in tools", named.Function.Name)
			}
			p.prefill = "<|channel|>commentary to=functions." + named.Function.Name + " <|constrain|>json<|message|>"
		default:
			return nil, badRequest("tool_choice", "tool_choice: want none, auto, required or {\"type\": \"function\", \"function\": {\"name\": …}}")
		}
	}
	// Messages. System and developer messages become the developer
	// message's instructions (Harmony's system message is the model's
	// identity and settings), as vLLM does for gpt-oss.
	if len(req.Messages) == 0 {
		return nil, badRequest("messages", "messages: at least one message is required")
	}
	var instructions []string
	callNames := map[string]string{} // tool_call_id → function name
	for i, m := range req.Messages {
		param := fmt.Sprintf("messages[%d]", i)
		text, err := contentText(m.Content)
		if err != nil {
			return nil, badRequest(param+".content", "%s.content: %v", param, err)
		}
		switch m.Role {
		case "system", "developer":
			instructions = append(instructions, text)
		case "user":
			p.conv.Messages = append(p.conv.Messages, harmony.Message{Role: harmony.RoleUser, Content: text})
			p.last = text
		case "assistant":
			reasoning := m.ReasoningContent
			if reasoning == "" {
				reasoning = m.Reasoning
			}
			if reasoning != "" {
				p.conv.Messages = append(p.conv.Messages, harmony.Message{Role: harmony.RoleAssistant, Channel: harmony.ChannelAnalysis, Content: reasoning})
			}
			if text != "" {
				ch := harmony.ChannelFinal
				if len(m.ToolCalls) > 0 {
					ch = harmony.ChannelCommentary // a preamble before the calls
				}
				p.conv.Messages = append(p.conv.Messages, harmony.Message{Role: harmony.RoleAssistant, Channel: ch, Content: text})
			}
			for j, c := range m.ToolCalls {
				if c.Function.Name == "" {
					return nil, badRequest(fmt.Sprintf("%s.tool_calls[%d].function.name", param, j), "%s.tool_calls[%d]: the function name is missing", param, j)
				}
				callNames[c.ID] = c.Function.Name
				p.conv.Messages = append(p.conv.Messages, harmony.FunctionCall(c.Function.Name, c.Function.Arguments))
			}
		case "tool":
			name := m.Name
			if name == "" {
				name = callNames[m.ToolCallID]
			}
			if name == "" {
				return nil, badRequest(param+".tool_call_id", "%s: tool_call_id %q matches no earlier tool call", param, m.ToolCallID)
			}
			p.conv.Messages = append(p.conv.Messages, harmony.FunctionResult(name, text))
			p.last = text
		default:
			return nil, badRequest(param+".role", "%s.role %q: want system, developer, user, assistant or tool", param, m.Role)
		}
	}
	if len(p.conv.Messages) == 0 {
		return nil, badRequest("messages", "messages: no user message")
	}
	if len(instructions) > 0 || len(tools) > 0 || req.ResponseFormat != nil {
		p.conv.Developer = &harmony.DeveloperContent{Instructions: strings.Join(instructions, "\n\n"), Tools: tools}
	}
	if rf := req.ResponseFormat; rf != nil {
		switch rf.Type {
		case "text", "json_object":
			if rf.Type == "json_object" {
				p.conv.Developer.Instructions = strings.TrimSpace(p.conv.Developer.Instructions + "\n\nAnswer with one JSON object.")
			}
		case "json_schema":
			if rf.JSONSchema == nil || rf.JSONSchema.Name == "" || !json.Valid(rf.JSONSchema.Schema) {
				return nil, badRequest("response_format.json_schema", "response_format.json_schema: want a name and a JSON Schema")
			}
			p.conv.Developer.ResponseFormat = &harmony.ResponseFormat{Name: rf.JSONSchema.Name, Description: rf.JSONSchema.Description, Schema: rf.JSONSchema.Schema}
		default:
			return nil, badRequest("response_format.type", "response_format.type %q: want text, json_object or json_schema", rf.Type)
		}
	}
	return p, nil
}

// contentText reads a message's content: a string, null, or an array of
// text parts.
func contentText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", fmt.Errorf("want a string or an array of content parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("content part type %q: gpt-oss reads text only", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}
