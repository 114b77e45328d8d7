// See http_server.hpp.
#include "control/http_server.hpp"

#include <array>
#include <optional>
#include <thread>

#include "common/error.hpp"
#include "control/beast.hpp"

namespace gt {
namespace {

using namespace beast_io;

// Bytes read and dropped after an answer before the connection is closed.
constexpr std::size_t kMaxDrain = 1 << 20;

HttpAnswer error_answer(int status, const std::string& reason) {
  return {status, {{"error", reason}}};
}

HttpAnswer call_handler(const Handler& handler, const HttpRequest& request) {
  try {
    auto answer = handler(request);
    if (answer.status < 100 || answer.status > 599)
      return error_answer(500, "handler returned HTTP status " + std::to_string(answer.status));
    return answer;
  } catch (const std::exception& e) {
    return error_answer(500, e.what());
  } catch (...) {
    return error_answer(500, "unknown failure in the request handler");
  }
}

bool is_http_error(const beast::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category();
}

// The answer to a request that could not be read, or nothing when the client
// went away or timed out (then the connection just closes).
std::optional<HttpAnswer> read_failure_answer(const beast::error_code& ec) {
  if (ec == http::error::body_limit)
    return error_answer(
        413, "request body exceeds the limit of " + std::to_string(kMaxRequestBody) + " bytes");
  if (ec == http::error::header_limit) return error_answer(431, "request header too large");
  if (ec == http::error::end_of_stream || ec == http::error::partial_message || !is_http_error(ec))
    return std::nullopt;
  return error_answer(400, "malformed HTTP request: " + ec.message());
}

// One connection: read one request, answer it, close.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const Handler& handler, std::chrono::milliseconds timeout)
      : stream_(std::move(socket)), handler_(handler), timeout_(timeout) {
    parser_.body_limit(kMaxRequestBody);
  }

  void start() {
    stream_.expires_after(timeout_);
    http::async_read(
        stream_, buffer_, parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

 private:
  void on_read(const beast::error_code& ec) {
    if (ec) {
      if (auto answer = read_failure_answer(ec)) return send(*answer, 11);
      return close();
    }
    const auto& req = parser_.get();
    const HttpRequest request{std::string(req.method_string()), std::string(req.target()),
                              req.body()};
    send(call_handler(handler_, request), req.version());
  }

  void send(const HttpAnswer& answer, unsigned version) {
    response_.version(version);
    response_.result(static_cast<unsigned>(answer.status));
    response_.set(http::field::server, "gtune");
    response_.keep_alive(false);
    if (answer.content_type.empty()) {
      response_.set(http::field::content_type, "application/json");
      response_.body() =
          answer.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    } else {
      response_.set(http::field::content_type, answer.content_type);
      response_.body() = answer.text;
    }
    response_.prepare_payload();
    stream_.expires_after(timeout_);
    http::async_write(
        stream_, response_,
        [self = shared_from_this()](beast::error_code, std::size_t) { self->linger(); });
  }

  // Half-close, then read what the client still sends: closing with unread
  // bytes would reset the connection and could destroy the answer in flight.
  void linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(timeout_);
    drain();
  }

  void drain() {
    stream_.async_read_some(net::buffer(scratch_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kMaxDrain) return self->close();
                              self->drain();
                            });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  const Handler& handler_;
  std::chrono::milliseconds timeout_;
  beast::flat_buffer buffer_;
  http::request_parser<http::string_body> parser_;
  http::response<http::string_body> response_;
  std::array<char, 4096> scratch_{};
  std::size_t drained_ = 0;
};

}  // namespace

struct HttpServer::Impl {
  Handler handler;
  std::chrono::milliseconds read_timeout;
  net::io_context io{1};
  tcp::acceptor acceptor{io};
  net::steady_timer retry{io};
  uint16_t port = 0;  // kept here: the acceptor belongs to the server thread
  std::string url;
  std::thread thread;

  void listen(const std::string& address, uint16_t port) {
    const auto where = address + ":" + std::to_string(port);
    beast::error_code ec;
    const auto ip = net::ip::make_address(address == "localhost" ? "127.0.0.1" : address, ec);
    if (ec) throw Error("cannot listen on " + where + ": '" + address + "' is not an IP address");
    const tcp::endpoint endpoint{ip, port};
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) throw Error("cannot listen on " + where + ": " + lowercase_first(ec.message()));
    this->port = acceptor.local_endpoint().port();
    const auto host = ip.is_v6() ? "[" + ip.to_string() + "]" : ip.to_string();
    url = "http://" + host + ":" + std::to_string(this->port);
  }

  void accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted) return;
      if (!ec) {
        std::make_shared<Session>(std::move(socket), handler, read_timeout)->start();
        return accept();
      }
      // E.g. out of file descriptors: back off instead of spinning.
      retry.expires_after(std::chrono::milliseconds(100));
      retry.async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec) accept();
      });
    });
  }

  void serve() {
    for (;;) {
      try {
        io.run();
        return;
      } catch (...) {
        // A failing session must not end the server; keep serving the others.
      }
    }
  }
};

HttpServer::HttpServer(const std::string& address, uint16_t port, Handler handler,
                       std::chrono::milliseconds read_timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->handler = std::move(handler);
  impl_->read_timeout = read_timeout;
  impl_->listen(address, port);
  impl_->accept();
  impl_->thread = std::thread([impl = impl_.get()] { impl->serve(); });
}

HttpServer::~HttpServer() {
  impl_->io.stop();
  impl_->thread.join();
}

uint16_t HttpServer::port() const {
  return impl_->port;
}

std::string HttpServer::url() const {
  return impl_->url;
}

}  // namespace gt
