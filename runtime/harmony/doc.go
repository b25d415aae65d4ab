// Package harmony renders and parses OpenAI's Harmony chat format, the
// only prompt format gpt-oss works with (facts: /work/shared/GPT-OSS.md
// §5–6; reference: openai/harmony's encoding.rs and its test-data).
//
// A message is <|start|>header<|message|>content<|end|>. The header is
// the role (a tool's name for a tool's message), " to=recipient", then
// <|channel|>channel, then " contenttype" (a leading <|constrain|> is the
// special token). An assistant message with a recipient (a tool call) ends
// with <|call|>. The prompt for the assistant ends with <|start|>assistant.
//
// Design decisions:
//
//   - The rendering is a list of pieces, each a special token or a run of
//     text encoded on its own, cut exactly where harmony cuts (role,
//     " to=…", channel, content type, content). RenderText joins them
//     (goldens); Render maps specials to single ids with SpecialID and
//     text with EncodeOrdinary, so "<|start|>" typed by a user stays text
//     and BPE merges never cross a piece boundary — the same ids harmony
//     produces.
//   - The system message always comes first (Conversation.NoSystem only
//     exists to reproduce harmony's own test renderings); zero
//     SystemContent fields take harmony's defaults (identity, cutoff
//     2024-06, reasoning medium, no date). The channels line gains
//     "Calls to these tools must go to the commentary channel:
//     'functions'." when the developer message has function tools.
//   - Function tools render from their JSON Schema as harmony's
//     json_schema_to_typescript does, quirks included (an object's own
//     description before its "{", nested fields indented four spaces and
//     their closing brace too, oneOf as a multi-line " | " union, enum
//     defaults unquoted, other string defaults quoted without escaping,
//     other defaults as serde_json prints them). Properties keep the
//     schema's order (the schema is parsed with an order-keeping decoder,
//     as harmony's serde_json preserve_order does). Invalid parameter
//     JSON is an error from Render (RenderText writes "any").
//   - DeveloperContent.ResponseFormat renders harmony's documented
//     structured-output section last in the developer message: "# Response
//     Formats", "## name", then "// description" and the schema as compact
//     JSON (key order kept). The harmony library itself has no renderer for
//     it; the shape follows its docs/format.md.
//   - The recipient is rendered in the role part
//     ("assistant to=functions.x<|channel|>commentary <|constrain|>json"),
//     as current harmony does; the parser accepts it there or after the
//     channel, and <|constrain|> with or without a space before it.
//   - History: a sampled final answer ends with <|return|>; Message keeps
//     no terminator, so stored history renders it with <|end|>.
//     AppendCompletion drops the turn's analysis messages (since the last
//     user message) once a final answer ends the turn and keeps them while
//     the turn goes through tool calls. Rendering also applies harmony's
//     auto_drop_analysis (the Python default): when the last assistant
//     message is on final, analysis before the first final message is left
//     out — so a client that sends its whole history gets harmony's prompt.
//   - StopTokens is <|return|> and <|call|> (harmony's
//     stop_tokens_for_assistant_actions); the parser also ends a message
//     at <|end|> and then expects <|start|>. <|endoftext|> (in the HF
//     configs' EOS list, not a Harmony token) ends the completion too, so
//     an engine that also stops on it loses nothing. Tokens after the end
//     are an error: one parser reads one completion.
//   - The parser is strict: a stray token between messages, a special
//     token other than <|channel|>/<|constrain|> in a header, a
//     <|start|>/<|message|>/<|channel|>/<|constrain|> inside content, an
//     unknown role or leftover header words are an EventError (and Err),
//     never a panic; the parser then stops. Content deltas carry whole
//     UTF-8 characters only: a character split across byte tokens waits
//     for its last byte; invalid bytes become U+FFFD.
package harmony
