// Package server is gptoss's OpenAI-compatible HTTP API over one loaded
// model: GET /v1/models, GET /v1/models/{id}, POST /v1/chat/completions
// (JSON or server-sent events) and GET /health.
//
// # Design decisions
//
//   - Chat requests are mapped onto Harmony (runtime/harmony), the only
//     format gpt-oss speaks. OpenAI system and developer messages become
//     the Harmony developer message's instructions (Harmony's system
//     message holds the model identity, reasoning effort and channels), as
//     vLLM does for gpt-oss. reasoning_effort sets the system message's
//     "Reasoning:". tools become Harmony function tools (TypeScript-like
//     signatures in the developer message); assistant tool_calls in the
//     history become "assistant to=functions.NAME" commentary messages and
//     tool messages become "functions.NAME to=assistant" messages (the
//     name comes from the matching tool_call_id). reasoning_content (or
//     reasoning) on an assistant message is sent back as its analysis.
//   - Answers: the analysis channel is returned as reasoning_content (in
//     the message and in stream deltas, like vLLM and ollama); final and
//     recipient-less commentary text is content; a message to
//     functions.NAME is a tool call (content null, finish_reason
//     "tool_calls"), streamed as a first delta with id, type and name, then
//     argument deltas. A model that does not follow Harmony has its text
//     returned as content rather than an error (runtime/chat.Stream).
//   - tool_choice: "auto" (default) renders the tools; "none" leaves them
//     out; a named function or "required" prefills the assistant's header
//     ("<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>",
//     or up to "to=functions.") so the model must call. response_format
//     json_schema becomes Harmony's "# Response Formats" section (guidance,
//     not a grammar).
//   - Sampling defaults are the model card's: temperature 1, top_p 1.
//     seed makes an answer reproducible. stop strings cut the content (never
//     the reasoning), streamed text that may begin a stop string is held
//     back until it cannot. max_tokens / max_completion_tokens may not
//     exceed the room the context leaves after the prompt: such a request is
//     refused with 400 context_length_exceeded (vLLM's wording), never
//     silently shortened.
//   - Errors are OpenAI error objects {"error": {"message", "type",
//     "param", "code"}}: 400 invalid_request_error for bad JSON and bad
//     parameters (param names the field), 404 model_not_found, 405, 413
//     for a body over MaxBodyBytes, 429 rate_limit_error/queue_full when the
//     waiting line is full, 503 while shutting down (with Retry-After).
//   - Scheduling: Parallel sessions (each a KV cache of Context tokens);
//     requests wait in a FIFO line of at most MaxQueue and are served
//     strictly in arrival order; a free session is given to the request
//     whose prompt shares the longest prefix with its cache, and the
//     session reuses that prefix (multi-turn chats only feed the new
//     turn). One session by default: on one GPU, sequences one at a time
//     keep each answer at full speed.
//   - Cancellation: every generation runs under the request's context, so
//     a client that disconnects stops its generation at the next token
//     and frees its session; a request that leaves the line frees its
//     place. Drain (SIGTERM in `gptoss serve`) turns new requests away with
//     503, lets running answers finish until its context ends, then cancels
//     them: a cut stream ends with an error event and no [DONE].
//   - The model's "model" field must be the served id or an alias (the
//     name typed on the command line, the name without its organisation).
//   - Config.Script (gptoss serve --script-file, honoured only with
//     GPTOSS_TEST_SCRIPT=1) replays canned Harmony completions through the
//     tokenizer instead of sampling, so client tests are deterministic on a
//     model with random weights; the model still runs on every token.
package server
