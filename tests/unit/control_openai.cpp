// OpenAI's API as gtune serve answers it (control/openai_api.hpp), over real sockets with a
// stand-in generator that writes a known text piece by piece: the answers' shapes, streamed
// events that add up to the whole answer, the plain chat template, every refusal with its
// status and field, the API key, and a reader that hangs up mid-stream.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "control/http_server.hpp"
#include "control/openai_api.hpp"
#include "tests/raw_http.hpp"

namespace {

using nlohmann::json;
using namespace gt::test;

// Writes kPieces one by one (each a separate event when streamed), then says "length".
const std::vector<std::string> kPieces = {" a", " small", " domesticated", " feline", "."};

struct StandIn {
  std::mutex mutex;
  std::vector<gt::TextRequest> seen;
  std::atomic<int> pieces_written{0};
  std::atomic<bool> stopped_early{false};
  int pause_ms = 0;

  gt::TextBackend backend() {
    gt::TextBackend b;
    b.model = "tuned";
    b.check = [](const gt::TextRequest& r) {
      if (r.prompt.size() > 1000) throw gt::InvalidRequest("the prompt is too long", "prompt");
    };
    b.complete = [this](const gt::TextRequest& r,
                        const std::function<bool(const std::string&)>& on_text) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        seen.push_back(r);
      }
      gt::TextResult out{{}, "length", 3, int64_t(kPieces.size())};
      for (const auto& p : kPieces) {
        std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
        out.text += p;
        ++pieces_written;
        if (on_text && !on_text(p)) {
          stopped_early = true;
          out.finish_reason = "cancelled";
          break;
        }
      }
      return out;
    };
    return b;
  }
};

struct Api {
  StandIn model;
  gt::HttpServer server;
  explicit Api(gt::OpenAiOptions options = {})
      : server("127.0.0.1", 0, gt::openai_routes(model.backend(), options), std::chrono::seconds(5),
               /*handler_threads=*/2) {}

  // The raw answer: status, headers and body.
  std::string call(const std::string& method, const std::string& target, const std::string& body,
                   const std::string& extra_headers = "") {
    return raw_exchange(server.port(), method + " " + target + " HTTP/1.1\r\nHost: x\r\n" +
                                           extra_headers + "Content-Type: application/json\r\n" +
                                           "Content-Length: " + std::to_string(body.size()) +
                                           "\r\n\r\n" + body);
  }
};

int status_of(const std::string& reply) {
  REQUIRE(reply.rfind("HTTP/1.1 ", 0) == 0);
  return std::stoi(reply.substr(9, 3));
}

json body_of(const std::string& reply) {
  const auto at = reply.find("\r\n\r\n");
  REQUIRE(at != std::string::npos);
  return json::parse(reply.substr(at + 4));
}

// The data of each server-sent event in a chunked reply (chunk framing stripped).
std::vector<std::string> events_of(const std::string& reply) {
  auto at = reply.find("\r\n\r\n");
  REQUIRE(at != std::string::npos);
  std::string body;
  for (at += 4;;) {
    const auto eol = reply.find("\r\n", at);
    REQUIRE(eol != std::string::npos);
    const auto size = std::stoul(reply.substr(at, eol - at), nullptr, 16);
    if (size == 0) break;
    body += reply.substr(eol + 2, size);
    at = eol + 2 + size + 2;
  }
  std::vector<std::string> events;
  for (size_t from = 0, end; (end = body.find("\n\n", from)) != std::string::npos; from = end + 2) {
    const auto e = body.substr(from, end - from);
    REQUIRE(e.rfind("data: ", 0) == 0);
    events.push_back(e.substr(6));
  }
  return events;
}

std::string error_param(const std::string& reply) {
  const auto e = body_of(reply)["error"];
  return e["param"].is_null() ? "" : e["param"].get<std::string>();
}

}  // namespace

TEST_CASE("openai api: a completion answers in OpenAI's shape with the request's options") {
  Api api;
  const auto reply =
      api.call("POST", "/v1/completions",
               R"({"model": "tuned", "prompt": "A cat is", "max_tokens": 7, "temperature": 0.5,
                   "top_p": 0.9, "top_k": 40, "seed": 12, "stop": ["\n", "END"], "user": "x"})");
  REQUIRE(status_of(reply) == 200);
  const auto j = body_of(reply);
  CHECK(j["object"] == "text_completion");
  CHECK(j["model"] == "tuned");
  CHECK(j["id"].get<std::string>().rfind("cmpl-", 0) == 0);
  REQUIRE(j["choices"].size() == 1);
  CHECK(j["choices"][0]["text"] == " a small domesticated feline.");
  CHECK(j["choices"][0]["finish_reason"] == "length");
  CHECK(j["choices"][0]["index"] == 0);
  CHECK(j["usage"] == json{{"prompt_tokens", 3}, {"completion_tokens", 5}, {"total_tokens", 8}});
  REQUIRE(api.model.seen.size() == 1);
  const auto& r = api.model.seen[0];
  CHECK(r.prompt == "A cat is");
  CHECK(r.max_tokens == 7);
  CHECK(r.temperature == doctest::Approx(0.5));
  CHECK(r.top_p == doctest::Approx(0.9));
  CHECK(r.top_k == 40);
  CHECK(r.seed == 12);
  CHECK(r.stop == std::vector<std::string>{"\n", "END"});
}

TEST_CASE("openai api: OpenAI's defaults where a request says nothing") {
  Api api;
  REQUIRE(status_of(api.call("POST", "/v1/completions",
                             R"({"model": "tuned", "prompt": ["x"]})")) == 200);
  REQUIRE(status_of(api.call(
              "POST", "/v1/chat/completions",
              R"({"model": "tuned", "messages": [{"role": "user", "content": "x"}]})")) == 200);
  const auto& plain = api.model.seen.at(0);
  CHECK(plain.prompt == "x");
  CHECK(plain.max_tokens == 16);
  CHECK(plain.temperature == 1);
  CHECK(plain.top_p == 1);
  CHECK(plain.stop.empty());
  const auto& chat = api.model.seen.at(1);
  CHECK(chat.max_tokens == -1);  // as many as fit
  CHECK(chat.stop == std::vector<std::string>{"\nUser:"});
}

TEST_CASE("openai api: streamed events add up to the whole answer and end with [DONE]") {
  Api api;
  const auto whole = body_of(api.call("POST", "/v1/completions",
                                      R"({"model": "tuned", "prompt": "p", "temperature": 0})"));
  const auto reply = api.call(
      "POST", "/v1/completions",
      R"({"model": "tuned", "prompt": "p", "stream": true, "stream_options": {"include_usage": true}})");
  REQUIRE(status_of(reply) == 200);
  CHECK(reply.find("Content-Type: text/event-stream") != std::string::npos);
  CHECK(reply.find("Transfer-Encoding: chunked") != std::string::npos);
  const auto events = events_of(reply);
  REQUIRE(events.size() == kPieces.size() + 3);  // pieces, finish, usage, [DONE]
  CHECK(events.back() == "[DONE]");
  std::string text;
  for (size_t i = 0; i < kPieces.size(); ++i) {
    const auto e = json::parse(events[i]);
    CHECK(e["object"] == "text_completion");
    CHECK(e["choices"][0]["finish_reason"].is_null());
    text += e["choices"][0]["text"].get<std::string>();
  }
  CHECK(text == whole["choices"][0]["text"]);
  const auto finish = json::parse(events[kPieces.size()]);
  CHECK(finish["choices"][0]["finish_reason"] == "length");
  const auto usage = json::parse(events[kPieces.size() + 1]);
  CHECK(usage["choices"].empty());
  CHECK(usage["usage"]["total_tokens"] == 8);
}

TEST_CASE("openai api: a chat answer is the assistant's message, streamed as deltas") {
  Api api;
  const auto request = std::string(R"({"model": "tuned", "messages": [)") +
                       R"({"role": "system", "content": "Define words."},)" +
                       R"({"role": "user", "content": [{"type": "text", "text": "cat"}]}])";
  const auto whole = body_of(api.call("POST", "/v1/chat/completions", request + "}"));
  CHECK(whole["object"] == "chat.completion");
  CHECK(whole["id"].get<std::string>().rfind("chatcmpl-", 0) == 0);
  const auto& m = whole["choices"][0]["message"];
  CHECK(m["role"] == "assistant");
  CHECK(m["content"] == "a small domesticated feline.");  // the space after "Assistant:" left out
  CHECK(api.model.seen.at(0).prompt == "System: Define words.\nUser: cat\nAssistant:");

  const auto events =
      events_of(api.call("POST", "/v1/chat/completions", request + R"(, "stream": true})"));
  REQUIRE(events.size() >= 3);
  const auto first = json::parse(events[0]);
  CHECK(first["object"] == "chat.completion.chunk");
  CHECK(first["choices"][0]["delta"]["role"] == "assistant");
  std::string text;
  for (size_t i = 0; i + 2 < events.size(); ++i)
    text += json::parse(events[i])["choices"][0]["delta"].value("content", "");
  CHECK(text == m["content"]);
  CHECK(json::parse(events[events.size() - 2])["choices"][0]["finish_reason"] == "length");
}

TEST_CASE("openai api: the plain chat template, and messages it refuses") {
  CHECK(gt::chat_prompt(json::parse(R"([{"role": "developer", "content": "Be brief."},
      {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
      {"role": "user", "content": "Bye"}])")) ==
        "System: Be brief.\nUser: Hi\nAssistant: Hello.\nUser: Bye\nAssistant:");
  const auto refused = [](const char* messages) {
    try {
      gt::chat_prompt(json::parse(messages));
    } catch (const gt::InvalidRequest& e) {
      return e.param;
    }
    return std::string("accepted");
  };
  CHECK(refused("[]") == "messages");
  CHECK(refused(R"({"role": "user"})") == "messages");
  CHECK(refused(R"([{"content": "x"}])") == "messages[0]");
  CHECK(refused(R"([{"role": "user", "content": "x"}, {"role": "tool", "content": "y"}])") ==
        "messages[1].role");
  CHECK(refused(R"([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}])") ==
        "messages[0]");
  CHECK(refused(R"([{"role": "user", "content": 5}])") == "messages[0]");
}

TEST_CASE("openai api: every request it cannot serve is refused with its status and field") {
  Api api;
  struct Case {
    const char* body;
    int status;
    const char* param;
  };
  const Case cases[] = {
      {R"({"prompt": "x"})", 400, "model"},
      {R"({"model": "other", "prompt": "x"})", 404, "model"},
      {R"({"model": "tuned"})", 400, "prompt"},
      {R"({"model": "tuned", "prompt": [1, 2]})", 400, "prompt"},
      {R"({"model": "tuned", "prompt": "x", "n": 2})", 400, "n"},
      {R"({"model": "tuned", "prompt": "x", "echo": true})", 400, "echo"},
      {R"({"model": "tuned", "prompt": "x", "logprobs": 2})", 400, "logprobs"},
      {R"({"model": "tuned", "prompt": "x", "presence_penalty": 0.5})", 400, "presence_penalty"},
      {R"({"model": "tuned", "prompt": "x", "max_tokens": 0})", 400, "max_tokens"},
      {R"({"model": "tuned", "prompt": "x", "max_tokens": 2.5})", 400, "max_tokens"},
      {R"({"model": "tuned", "prompt": "x", "temperature": 3})", 400, "temperature"},
      {R"({"model": "tuned", "prompt": "x", "temperature": "hot"})", 400, "temperature"},
      {R"({"model": "tuned", "prompt": "x", "top_p": 0})", 400, "top_p"},
      {R"({"model": "tuned", "prompt": "x", "seed": -1})", 400, "seed"},
      {R"({"model": "tuned", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]})", 400, "stop"},
      {R"({"model": "tuned", "prompt": "x", "stop": [1]})", 400, "stop"},
      {R"({"model": "tuned", "prompt": "x", "stream": "yes"})", 400, "stream"},
      {R"([1, 2])", 400, ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body);
    const auto reply = api.call("POST", "/v1/completions", c.body);
    CHECK(status_of(reply) == c.status);
    CHECK(error_param(reply) == c.param);
    CHECK(body_of(reply)["error"]["message"].get<std::string>().size() > 5);
  }
  const auto long_prompt = json{{"model", "tuned"}, {"prompt", std::string(2000, 'x')}}.dump();
  CHECK(error_param(api.call("POST", "/v1/completions", long_prompt)) == "prompt");
  CHECK(api.model.seen.empty());  // nothing refused reached the generator

  auto reply = api.call("POST", "/v1/completions", "{\"model\":");
  CHECK(status_of(reply) == 400);
  CHECK(body_of(reply)["error"]["message"].get<std::string>().find("not JSON") !=
        std::string::npos);
  reply = api.call("GET", "/v1/completions", "");
  CHECK(status_of(reply) == 405);
  CHECK(reply.find("Allow: POST") != std::string::npos);
  CHECK(status_of(api.call("POST", "/v1/models", "")) == 405);
  CHECK(status_of(api.call("GET", "/v1/embeddings", "")) == 404);
}

TEST_CASE("openai api: /v1/models lists the one model") {
  Api api;
  const auto list = body_of(api.call("GET", "/v1/models", ""));
  CHECK(list["object"] == "list");
  REQUIRE(list["data"].size() == 1);
  CHECK(list["data"][0]["id"] == "tuned");
  CHECK(body_of(api.call("GET", "/v1/models/tuned", ""))["object"] == "model");
  CHECK(status_of(api.call("GET", "/v1/models/other", "")) == 404);
}

TEST_CASE("openai api: with a key, only requests bearing it are served") {
  Api api(gt::OpenAiOptions{"s3cret"});
  for (const std::string header :
       {"", "Authorization: Bearer wrong\r\n", "Authorization: Bearer s3cre\r\n",
        "Authorization: s3cret\r\n", "Authorization: Bearer s3cretX\r\n"}) {
    CAPTURE(header);
    const auto reply = api.call("GET", "/v1/models", "", header);
    CHECK(status_of(reply) == 401);
    CHECK(reply.find("WWW-Authenticate: Bearer") != std::string::npos);
    CHECK(body_of(reply)["error"]["code"] == "invalid_api_key");
  }
  CHECK(status_of(api.call("GET", "/v1/models", "", "Authorization: Bearer s3cret\r\n")) == 200);
}

TEST_CASE("openai api: a reader that hangs up mid-stream stops the generation, others go on") {
  Api api;
  api.model.pause_ms = 150;
  const std::string body = R"({"model": "tuned", "prompt": "p", "stream": true})";
  const int fd = connect_raw(api.server.port());
  send_all(fd, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\n\r\n" + body);
  char buf[4096];
  REQUIRE(recv(fd, buf, sizeof buf, 0) > 0);  // the head and maybe the first event
  close(fd);
  for (int i = 0; i < 100 && !api.model.stopped_early; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(api.model.stopped_early);
  CHECK(api.model.pieces_written < int(kPieces.size()));
  api.model.pause_ms = 0;
  CHECK(status_of(api.call("GET", "/v1/models", "")) == 200);
  CHECK(status_of(api.call("POST", "/v1/completions", R"({"model": "tuned", "prompt": "p"})")) ==
        200);
}

TEST_CASE("http server: a streamed answer without handler threads is a 500, not a hang") {
  gt::HttpServer server("127.0.0.1", 0, [](const gt::HttpRequest&) {
    gt::HttpAnswer a;
    a.content_type = "text/event-stream";
    a.stream = [](const gt::BodyWriter& write) { write("data: x\n\n"); };
    return a;
  });
  CHECK(status_of(raw_exchange(server.port(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n")) == 500);
}
