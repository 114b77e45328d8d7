// A minimal HTTP/1.1 server for small JSON APIs on loopback (Boost.Beast under
// the hood, kept out of this header). One request per connection, every answer
// is JSON (or a text the handler chose); it serves on its own thread until destroyed.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace gt {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // "/status", query string included
  std::string body;
};

struct HttpAnswer {
  int status = 200;
  nlohmann::json body;
  // A non-JSON answer (e.g. Prometheus' text format): sent verbatim when content_type is set.
  std::string content_type = {};
  std::string text = {};
};

// Called on the server's thread, one request at a time; exceptions become 500.
using Handler = std::function<HttpAnswer(const HttpRequest&)>;

// Largest request body accepted; larger ones get 413.
inline constexpr std::size_t kMaxRequestBody = 64 * 1024;

class HttpServer {
 public:
  // Listens on address:port (port 0 = any free port); throws gt::Error naming
  // the address when it cannot. A client gets `read_timeout` to send its request.
  HttpServer(const std::string& address, uint16_t port, Handler handler,
             std::chrono::milliseconds read_timeout = std::chrono::seconds(5));
  ~HttpServer();  // stops serving and joins the thread
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;    // the bound port
  std::string url() const;  // "http://127.0.0.1:9470"

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gt
