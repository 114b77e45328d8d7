// See openai_api.hpp. Field names and answer shapes follow OpenAI's API reference for
// completions, chat completions and models; what this server cannot do (several choices,
// log-probabilities, penalties, tools) is refused with a reason, never ignored.
#include "control/openai_api.hpp"

#include <ctime>
#include <random>

namespace gt {
namespace {

using nlohmann::json;

HttpAnswer api_error(int status, const std::string& message, const std::string& type,
                     const std::string& param = {}, const std::string& code = {}) {
  json e = {{"message", message},
            {"type", type},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code.empty() ? json(nullptr) : json(code)}};
  return {status, {{"error", e}}};
}

HttpAnswer invalid(const InvalidRequest& e) {
  return api_error(400, e.what(), "invalid_request_error", e.param);
}

std::string random_id(const std::string& prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* digits = "0123456789abcdef";
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += digits[rng() % 16];
  return id;
}

// Constant time in the key's content: the key must not leak through timing.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

template <class T>
T number(const json& body, const char* key, T fallback, double lo, double hi) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  const auto& v = body[key];
  if (!v.is_number()) throw InvalidRequest(std::string(key) + " must be a number", key);
  const auto x = v.get<double>();
  if (!(x >= lo && x <= hi))
    throw InvalidRequest(std::string(key) + " must be between " + json(lo).dump() + " and " +
                             json(hi).dump() + ", not " + v.dump(),
                         key);
  if (std::is_integral<T>::value && x != static_cast<double>(static_cast<int64_t>(x)))
    throw InvalidRequest(std::string(key) + " must be a whole number", key);
  return static_cast<T>(x);
}

// Fields this server does not implement: refused unless left at what means "off".
void refuse_unsupported(const json& body) {
  const auto set = [&](const char* key) { return body.contains(key) && !body[key].is_null(); };
  const auto off = [&](const char* key, const json& value) {
    return !set(key) || body[key] == value;
  };
  if (!off("n", 1)) throw InvalidRequest("n must be 1: one choice per request", "n");
  if (!off("best_of", 1)) throw InvalidRequest("best_of is not supported", "best_of");
  if (!off("echo", false)) throw InvalidRequest("echo is not supported", "echo");
  if (set("suffix")) throw InvalidRequest("suffix is not supported", "suffix");
  if (!off("logprobs", false) && !off("logprobs", 0))
    throw InvalidRequest("logprobs are not supported", "logprobs");
  if (set("top_logprobs")) throw InvalidRequest("top_logprobs is not supported", "top_logprobs");
  if (set("logit_bias") && !body["logit_bias"].empty())
    throw InvalidRequest("logit_bias is not supported", "logit_bias");
  for (const char* key : {"presence_penalty", "frequency_penalty"})
    if (!off(key, 0)) throw InvalidRequest(std::string(key) + " is not supported", key);
  for (const char* key : {"tools", "functions", "response_format"})
    if (set(key)) throw InvalidRequest(std::string(key) + " is not supported", key);
}

std::vector<std::string> stop_strings(const json& body) {
  if (!body.contains("stop") || body["stop"].is_null()) return {};
  const auto& s = body["stop"];
  if (s.is_string()) return {s.get<std::string>()};
  if (!s.is_array() || s.size() > 4)
    throw InvalidRequest("stop must be a string or an array of at most 4 strings", "stop");
  std::vector<std::string> out;
  for (const auto& x : s) {
    if (!x.is_string()) throw InvalidRequest("stop must hold strings only", "stop");
    out.push_back(x.get<std::string>());
  }
  return out;
}

struct Parsed {
  TextRequest text;
  bool stream = false;
  bool include_usage = false;
};

Parsed parse(const json& body, bool chat, const std::string& model) {
  if (!body.is_object()) throw InvalidRequest("the request body must be a JSON object");
  if (!body.contains("model") || !body["model"].is_string())
    throw InvalidRequest("model is required: this server has \"" + model + "\"", "model");
  refuse_unsupported(body);
  Parsed p;
  auto& t = p.text;
  if (chat) {
    if (!body.contains("messages")) throw InvalidRequest("messages is required", "messages");
    t.prompt = chat_prompt(body["messages"]);
    t.stop = {"\nUser:"};  // the template's next turn: the assistant's answer ends there
    t.max_tokens = number<int64_t>(body, "max_tokens", -1, 1, 1 << 20);
    t.max_tokens = number<int64_t>(body, "max_completion_tokens", t.max_tokens, 1, 1 << 20);
  } else {
    const auto& prompt = body.value("prompt", json(nullptr));
    if (prompt.is_string()) {
      t.prompt = prompt.get<std::string>();
    } else if (prompt.is_array() && prompt.size() == 1 && prompt[0].is_string()) {
      t.prompt = prompt[0].get<std::string>();
    } else {
      throw InvalidRequest("prompt must be a string (or an array of one string)", "prompt");
    }
    t.max_tokens = number<int64_t>(body, "max_tokens", 16, 1, 1 << 20);  // OpenAI's default
  }
  for (const auto& s : stop_strings(body)) t.stop.push_back(s);
  t.temperature = number<double>(body, "temperature", 1.0, 0, 2);
  t.top_p = number<double>(body, "top_p", 1.0, 1e-9, 1);
  t.top_k = number<int64_t>(body, "top_k", 0, 0, 1 << 30);
  t.seed = body.contains("seed") && !body["seed"].is_null()
               ? static_cast<uint64_t>(number<double>(body, "seed", 0, 0, 9007199254740992.0))
               : std::random_device{}();
  if (body.contains("ignore_eos") && !body["ignore_eos"].is_null()) {
    if (!body["ignore_eos"].is_boolean())
      throw InvalidRequest("ignore_eos must be true or false", "ignore_eos");
    t.ignore_eos = body["ignore_eos"].get<bool>();
  }
  if (body.contains("stream") && !body["stream"].is_null()) {
    if (!body["stream"].is_boolean())
      throw InvalidRequest("stream must be true or false", "stream");
    p.stream = body["stream"].get<bool>();
  }
  if (p.stream && body.contains("stream_options") && body["stream_options"].is_object())
    p.include_usage = body["stream_options"].value("include_usage", false);
  return p;
}

json usage(const TextResult& r) {
  return {{"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"total_tokens", r.prompt_tokens + r.completion_tokens}};
}

// One completion: the answer's envelope and each choice's shape, plain or chat.
struct Reply {
  bool chat;
  std::string id, model;
  int64_t created;

  json envelope(bool chunk) const {
    const char* object =
        chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
    return {{"id", id}, {"object", object}, {"created", created}, {"model", model}};
  }
  json whole(const TextResult& r) const {
    auto j = envelope(false);
    json choice = {{"index", 0}, {"finish_reason", r.finish_reason}, {"logprobs", nullptr}};
    if (chat)
      choice["message"] = {{"role", "assistant"}, {"content", r.text}};
    else
      choice["text"] = r.text;
    j["choices"] = json::array({choice});
    j["usage"] = usage(r);
    return j;
  }
  // A streamed piece; `finish` set on the last one.
  json chunk(const std::string& text, const json& finish, bool first = false) const {
    auto j = envelope(true);
    json choice = {{"index", 0}, {"finish_reason", finish}, {"logprobs", nullptr}};
    if (chat) {
      choice["delta"] = json::object();
      if (first) choice["delta"]["role"] = "assistant";
      if (!text.empty() || first) choice["delta"]["content"] = text;
    } else {
      choice["text"] = text;
    }
    j["choices"] = json::array({choice});
    return j;
  }
};

std::string event(const json& j) {
  return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

// A chat answer starts after "Assistant:": the space the model puts first is not content.
class LeadingSpaceTrim {
 public:
  std::string operator()(const std::string& piece) {
    if (started_) return piece;
    const auto at = piece.find_first_not_of(" \t\n");
    if (at == std::string::npos) return {};
    started_ = true;
    return piece.substr(at);
  }

 private:
  bool started_ = false;
};

HttpAnswer complete(const TextBackend& backend, const HttpRequest& request, bool chat) {
  json body;
  try {
    body = json::parse(request.body);
  } catch (const json::exception& e) {
    return api_error(400, std::string("the request body is not JSON: ") + e.what(),
                     "invalid_request_error");
  }
  Parsed p;
  try {
    p = parse(body, chat, backend.model);
    if (body["model"] != backend.model)
      return api_error(404,
                       "the model " + body["model"].dump() +
                           " does not exist here: this server has \"" + backend.model + "\"",
                       "invalid_request_error", "model", "model_not_found");
    if (backend.check) backend.check(p.text);
  } catch (const InvalidRequest& e) {
    return invalid(e);
  }
  const Reply reply{chat, random_id(chat ? "chatcmpl-" : "cmpl-"), backend.model,
                    static_cast<int64_t>(std::time(nullptr))};
  if (!p.stream) {
    LeadingSpaceTrim trim;
    auto r = backend.complete(p.text, {});
    if (chat) r.text = trim(r.text);
    return {200, reply.whole(r)};
  }
  HttpAnswer answer;
  answer.content_type = "text/event-stream";
  answer.stream = [backend, reply, p](const BodyWriter& write) {
    if (reply.chat && !write(event(reply.chunk("", nullptr, /*first=*/true)))) return;
    LeadingSpaceTrim trim;
    TextResult r;
    try {
      r = backend.complete(p.text, [&](const std::string& piece) {
        const auto text = reply.chat ? trim(piece) : piece;
        return text.empty() || write(event(reply.chunk(text, nullptr)));
      });
    } catch (const std::exception& e) {
      write(event({{"error", {{"message", e.what()}, {"type", "server_error"}}}}));
      return;
    }
    if (!write(event(reply.chunk("", r.finish_reason)))) return;
    if (p.include_usage) {
      auto u = reply.envelope(true);
      u["choices"] = json::array();
      u["usage"] = usage(r);
      if (!write(event(u))) return;
    }
    write("data: [DONE]\n\n");
  };
  return answer;
}

HttpAnswer models(const TextBackend& backend, const std::string& target) {
  const json card = {
      {"id", backend.model}, {"object", "model"}, {"created", 0}, {"owned_by", "gtune"}};
  if (target == "/v1/models") return {200, {{"object", "list"}, {"data", json::array({card})}}};
  const auto id = target.substr(std::string("/v1/models/").size());
  if (id == backend.model) return {200, card};
  return api_error(404, "the model '" + id + "' does not exist here", "invalid_request_error",
                   "model", "model_not_found");
}

}  // namespace

std::string chat_prompt(const json& messages) {
  if (!messages.is_array() || messages.empty())
    throw InvalidRequest("messages must be a non-empty array", "messages");
  std::string prompt;
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    const auto field = "messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      throw InvalidRequest(field + " must be an object with a role", field);
    const auto role = m["role"].get<std::string>();
    const char* name = role == "system" || role == "developer" ? "System"
                       : role == "user"                        ? "User"
                       : role == "assistant"                   ? "Assistant"
                                                               : nullptr;
    if (!name)
      throw InvalidRequest(
          field + ".role must be system, developer, user or assistant, not '" + role + "'",
          field + ".role");
    std::string content;
    const auto c = m.value("content", json(nullptr));
    if (c.is_string()) {
      content = c.get<std::string>();
    } else if (c.is_array()) {  // content parts: text only
      for (const auto& part : c) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
            !part["text"].is_string())
          throw InvalidRequest(field + ".content: only text parts are supported", field);
        content += part["text"].get<std::string>();
      }
    } else {
      throw InvalidRequest(field + ".content must be a string or text parts", field);
    }
    prompt += std::string(name) + ": " + content + "\n";
  }
  return prompt + "Assistant:";
}

Handler openai_routes(TextBackend backend, OpenAiOptions options) {
  return [backend = std::move(backend), options](const HttpRequest& request) -> HttpAnswer {
    if (!options.api_key.empty() &&
        !same_secret(request.authorization, "Bearer " + options.api_key)) {
      auto a = api_error(401, "a valid API key is required (Authorization: Bearer KEY)",
                         "invalid_request_error", {}, "invalid_api_key");
      a.headers = {{"WWW-Authenticate", "Bearer"}};
      return a;
    }
    const auto target = request.target.substr(0, request.target.find('?'));
    const auto only = [&](const char* method) {
      auto a = api_error(405, request.method + " " + target + ": use " + method,
                         "invalid_request_error");
      a.headers = {{"Allow", method}};
      return a;
    };
    if (target == "/v1/completions" || target == "/v1/chat/completions") {
      if (request.method != "POST") return only("POST");
      return complete(backend, request, target == "/v1/chat/completions");
    }
    if (target == "/v1/models" || target.rfind("/v1/models/", 0) == 0) {
      if (request.method != "GET") return only("GET");
      return models(backend, target);
    }
    return api_error(404,
                     "no route " + target +
                         " (this server has /v1/completions, /v1/chat/completions, /v1/models)",
                     "invalid_request_error");
  };
}

}  // namespace gt
