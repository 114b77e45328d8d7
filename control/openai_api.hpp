// OpenAI's HTTP API for a text generator (issue 18, `gtune serve`): /v1/completions,
// /v1/chat/completions (a plain chat template), /v1/models, each answered at once or streamed
// as server-sent events. Knows nothing about models: the generator plugs in as functions.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "control/http_server.hpp"

namespace gt {

// One generation as a request asks for it.
struct TextRequest {
  std::string prompt;
  int64_t max_tokens = -1;  // -1: as many as the model's positions leave
  double temperature = 1;   // 0: greedy
  double top_p = 1;
  int64_t top_k = 0;  // not OpenAI's; vLLM and llama.cpp take it too
  uint64_t seed = 0;
  std::vector<std::string> stop;
  bool ignore_eos = false;  // not OpenAI's (vLLM's): go on to max_tokens, e.g. to benchmark
};

struct TextResult {
  std::string text;
  std::string finish_reason;  // "stop" or "length"
  int64_t prompt_tokens = 0, completion_tokens = 0;
};

// The caller's mistake (HTTP 400), naming the request field when there is one.
struct InvalidRequest : Error {
  InvalidRequest(const std::string& what, std::string field = {})
      : Error(what), param(std::move(field)) {}
  std::string param;
};

struct TextBackend {
  std::string model;  // the id /v1/models lists; requests must name it
  // Throws InvalidRequest for a request the model cannot take (e.g. too long a prompt), before
  // anything is generated.
  std::function<void(const TextRequest&)> check;
  // Generates; `on_text` gets each final piece of text and returns false when the reader has
  // gone (then generating stops).
  std::function<TextResult(const TextRequest&,
                           const std::function<bool(const std::string&)>& on_text)>
      complete;
};

struct OpenAiOptions {
  std::string api_key;  // required as "Authorization: Bearer KEY" when not empty
};

// The routes, for an HttpServer with handler threads (streamed answers run there).
Handler openai_routes(TextBackend backend, OpenAiOptions options = {});

// The plain chat template: one "Role: content" line per message, then "Assistant:". Throws
// InvalidRequest for a message that is not {role, content} with a known role and text content.
std::string chat_prompt(const nlohmann::json& messages);

}  // namespace gt
