// A minimal HTTP/1.1 server for small JSON APIs (Boost.Beast under the hood, kept out of this
// header). One request per connection, every answer is JSON, a text the handler chose, or a
// body streamed in chunks (server-sent events); it serves on its own thread until destroyed.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace gt {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // "/status", query string included
  std::string body;
  std::string authorization;  // the Authorization header ("Bearer ..."), "" when none
};

// Sends one piece of a streamed body at once; false when the client has gone (or the server is
// stopping): the producer should stop.
using BodyWriter = std::function<bool(const std::string& piece)>;

struct HttpAnswer {
  int status = 200;
  nlohmann::json body;
  // A non-JSON answer (e.g. Prometheus' text format): sent verbatim when content_type is set.
  std::string content_type = {};
  std::string text = {};
  // A streamed answer: status and content_type go first, then whatever `stream` writes, in
  // chunks as it writes them. Needs handler threads (HttpServer's handler_threads > 0).
  std::function<void(const BodyWriter&)> stream = {};
  std::vector<std::pair<std::string, std::string>> headers = {};  // more header fields
};

// Called on the server's thread, one request at a time, or with handler_threads on one of
// those, several at once; exceptions become 500.
using Handler = std::function<HttpAnswer(const HttpRequest&)>;

// Largest request body accepted; larger ones get 413.
inline constexpr std::size_t kMaxRequestBody = 64 * 1024;

class HttpServer {
 public:
  // Listens on address:port (port 0 = any free port); throws gt::Error naming
  // the address when it cannot. A client gets `read_timeout` to send its request (and to
  // take each piece of an answer). With handler_threads > 0 the handler runs on that many
  // threads of its own, so a slow answer (a generation) stalls no other connection.
  HttpServer(const std::string& address, uint16_t port, Handler handler,
             std::chrono::milliseconds read_timeout = std::chrono::seconds(5),
             int handler_threads = 0);
  ~HttpServer();  // stops serving (a stream's writer returns false), joins the threads
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;    // the bound port
  std::string url() const;  // "http://127.0.0.1:9470"

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gt
