// The official OpenAI JS client against `gptoss serve` (run by
// cmd/gptoss/serve_e2e_test.go with node -e, from the npm prefix holding
// node_modules/openai). GPTOSS_URL is the server, GPTOSS_MODEL the model id.
// Prints one JSON object with what each exchange returned; the Go test
// checks it.
const { OpenAI } = require("openai");

const client = new OpenAI({ baseURL: process.env.GPTOSS_URL + "/v1", apiKey: "unused", maxRetries: 0 });
const model = process.env.GPTOSS_MODEL;

const tools = [{
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather of a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
}];

async function main() {
  const out = {};

  const models = await client.models.list();
  out.models = models.data.map((m) => m.id);

  // A plain chat.
  const plain = await client.chat.completions.create({
    model,
    messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Say hello" }],
    reasoning_effort: "low",
    max_tokens: 64,
    seed: 1,
  });
  out.plain = {
    content: plain.choices[0].message.content,
    reasoning: plain.choices[0].message.reasoning_content,
    finish: plain.choices[0].finish_reason,
    usage: plain.usage,
    object: plain.object,
  };

  // A streamed chat.
  const stream = await client.chat.completions.create({
    model,
    messages: [{ role: "user", content: "Say hello" }],
    stream: true,
    stream_options: { include_usage: true },
  });
  const s = { content: "", reasoning: "", chunks: 0, finish: null, usage: null, role: null };
  for await (const chunk of stream) {
    s.chunks++;
    if (chunk.usage) s.usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    if (c.delta.role) s.role = c.delta.role;
    if (c.delta.content) s.content += c.delta.content;
    if (c.delta.reasoning_content) s.reasoning += c.delta.reasoning_content;
    if (c.finish_reason) s.finish = c.finish_reason;
  }
  out.stream = s;

  // A tool call round trip, the first leg streamed and collected the way
  // agents do, the second plain.
  const messages = [{ role: "user", content: "What is the weather in Paris?" }];
  const first = await client.chat.completions.create({ model, messages, tools });
  const msg = first.choices[0].message;
  out.call = { finish: first.choices[0].finish_reason, tool_calls: msg.tool_calls, content: msg.content };
  messages.push(msg);
  for (const call of msg.tool_calls || []) {
    const args = JSON.parse(call.function.arguments);
    messages.push({ role: "tool", tool_call_id: call.id, content: JSON.stringify({ city: args.city, sky: "sunny", celsius: 21 }) });
  }
  const second = await client.chat.completions.create({ model, messages, tools });
  out.answer = { content: second.choices[0].message.content, finish: second.choices[0].finish_reason };

  const streamedCall = await client.chat.completions.create({ model, messages: messages.slice(0, 1), tools, stream: true });
  const calls = [];
  let callFinish = null;
  for await (const chunk of streamedCall) {
    const c = chunk.choices[0];
    if (!c) continue;
    for (const tc of c.delta.tool_calls || []) {
      if (!calls[tc.index]) calls[tc.index] = { id: tc.id, name: "", arguments: "" };
      if (tc.function?.name) calls[tc.index].name += tc.function.name;
      if (tc.function?.arguments) calls[tc.index].arguments += tc.function.arguments;
    }
    if (c.finish_reason) callFinish = c.finish_reason;
  }
  out.streamedCall = { calls, finish: callFinish };

  // Errors: the client raises typed errors with the server's status and body.
  const errors = {};
  for (const [name, req] of Object.entries({
    unknownModel: { model: "gpt-4o", messages: [{ role: "user", content: "hi" }] },
    badTemperature: { model, messages: [{ role: "user", content: "hi" }], temperature: 5000 },
    tooLong: { model, messages: [{ role: "user", content: "hi" }], max_tokens: 10000000 },
  })) {
    try {
      await client.chat.completions.create(req);
      errors[name] = { status: 0 };
    } catch (e) {
      errors[name] = { status: e.status, class: e.constructor.name, type: e.type, code: e.code, param: e.param, message: e.message };
    }
  }
  out.errors = errors;

  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
