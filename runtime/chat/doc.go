// Package chat drives generation for `gptoss run` and `gptoss serve`: a
// Session (one sequence and its KV cache) turns a prompt into tokens, and a
// Stream turns sampled Harmony tokens into what a chat client shows.
//
// # Design decisions
//
//   - Session.Generate feeds only what the cache lacks: the longest common
//     prefix with the previous generation's tokens is kept
//     (Sequence.Truncate), at least the last prompt token is fed again for
//     its logits. If the engine refuses the truncation (a sliding-window
//     ring that no longer holds the window), the session starts over from
//     an empty cache. After an engine error the cache is dropped, so a
//     session is always consistent.
//   - Stop tokens end a generation and are returned. The last generated
//     token (a stop token, the MaxTokens-th, the end of a forced script) is
//     never fed to the model: nothing reads its logits, and a next prompt
//     that continues the conversation feeds it then. MaxTokens and the
//     session's length give finish reason "length".
//   - Stream runs the strict Harmony parser and maps it: analysis →
//     Reasoning, final and commentary without recipient → Content, a
//     message to functions.NAME → ToolCall + ToolArgs. When the model does
//     not follow Harmony (the parser fails, or a header runs past 512 bytes
//     without <|message|>, as an untrained model's output does), the rest
//     of the completion, including the tokens of the broken header, is
//     decoded as plain Content (UTF-8 completed across tokens): the user
//     sees what the model said instead of an error.
//   - Stop strings apply to Content only; text that may be the start of a
//     stop string is held back until it cannot be, then released.
//   - Turn/Chat render a harmony.Conversation (plus an optional prefill that
//     forces the start of the assistant's message, for tool_choice), use
//     harmony.StopTokens (<|return|>, <|call|>) and report finish
//     "tool_calls" when the answer ends in a call.
//   - Script is a test hook (enabled by GPTOSS_TEST_SCRIPT=1 and a hidden
//     --script-file flag): canned Harmony completions chosen by the last
//     message, replayed through the tokenizer in place of sampling, with
//     the model still run on every token.
package chat
