// gtune serve through the official openai client (tests/integration/cli_serve.sh): models,
// completions and chat completions, whole and streamed, as a tool that speaks OpenAI's API
// would use them. Usage: node check.mjs BASE_URL MODEL API_KEY EXPECTED_JSON
// EXPECTED_JSON: {"prompt": ..., "text": ...}, the greedy text `gtune generate` made.
import assert from "node:assert/strict";
import OpenAI from "openai";

const [baseURL, model, apiKey, expectedJson] = process.argv.slice(2);
const expected = JSON.parse(expectedJson);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120_000 });

async function streamed(stream) {
  let text = "";
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks += 1;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.text ?? c.delta?.content ?? "";
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, finish, usage, chunks };
}

async function status(promise) {
  try {
    await promise;
  } catch (e) {
    return e.status;
  }
  return 200;
}

const checks = {
  async models() {
    const list = await client.models.list();
    assert.deepEqual(
      list.data.map((m) => m.id),
      [model],
    );
    assert.equal((await client.models.retrieve(model)).id, model);
  },

  async completion() {
    const r = await client.completions.create({
      model, prompt: expected.prompt, max_tokens: 12, temperature: 0,
    });
    assert.equal(r.object, "text_completion");
    assert.equal(r.model, model);
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].text, expected.text, "greedy text differs from gtune generate's");
    assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 12);
  },

  async streamedCompletion() {
    const s = await streamed(await client.completions.create({
      model, prompt: expected.prompt, max_tokens: 12, temperature: 0, stream: true,
      stream_options: { include_usage: true },
    }));
    assert.equal(s.text, expected.text, "streamed text differs from the whole answer");
    assert.ok(s.chunks > 2, "the text came in one piece, not streamed");
    assert.ok(["stop", "length"].includes(s.finish));
    assert.ok(s.usage && s.usage.completion_tokens >= 1);
  },

  async chat() {
    const messages = [
      { role: "system", content: "You define words." },
      { role: "user", content: "What is a cat?" },
    ];
    const whole = await client.chat.completions.create({
      model, messages, max_tokens: 10, temperature: 0,
    });
    assert.equal(whole.object, "chat.completion");
    const m = whole.choices[0].message;
    assert.equal(m.role, "assistant");
    assert.equal(typeof m.content, "string");
    assert.ok(!m.content.includes("\nUser:"), "the answer runs into the next turn");
    const s = await streamed(await client.chat.completions.create({
      model, messages, max_tokens: 10, temperature: 0, stream: true,
    }));
    assert.equal(s.text, m.content, "streamed chat differs from the whole answer");
    assert.equal(s.finish, whole.choices[0].finish_reason);
  },

  async stopStrings() {
    const words = expected.text.trim().split(" ");
    assert.ok(words.length >= 2, `too short a text to cut: ${expected.text}`);
    const stop = " " + words[1];
    const r = await client.completions.create({
      model, prompt: expected.prompt, max_tokens: 12, temperature: 0, stop,
    });
    assert.equal(r.choices[0].text, expected.text.slice(0, expected.text.indexOf(stop)));
    assert.equal(r.choices[0].finish_reason, "stop");
  },

  async seededSampling() {
    const ask = () => client.completions.create({
      model, prompt: expected.prompt, max_tokens: 8, temperature: 1, top_p: 0.9, seed: 5,
    });
    const [a, b] = [await ask(), await ask()];
    assert.equal(a.choices[0].text, b.choices[0].text);
  },

  async concurrent() {
    // Several at once: each answer is the one it gets alone (generations take turns).
    const ask = () => client.completions.create({
      model, prompt: expected.prompt, max_tokens: 12, temperature: 0, stream: true,
    }).then(streamed);
    const all = await Promise.all([ask(), ask(), ask()]);
    for (const s of all) assert.equal(s.text, expected.text);
  },

  async refusals() {
    assert.equal(await status(client.completions.create({ model, prompt: "a", n: 2 })), 400);
    assert.equal(await status(client.completions.create({ model: "nope", prompt: "a" })), 404);
    assert.equal(
      await status(client.completions.create({ model, prompt: "a", max_tokens: 1 << 19 })), 400);
    const stranger = new OpenAI({ baseURL, apiKey: "wrong", maxRetries: 0 });
    assert.equal(await status(stranger.models.list()), 401);
  },
};

let failed = 0;
for (const [name, check] of Object.entries(checks)) {
  try {
    await check();
    console.log(`ok ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
  }
}
process.exit(failed ? 1 : 0);
