// See http_server.hpp.
#include "control/http_server.hpp"

#include <array>
#include <atomic>
#include <future>
#include <optional>
#include <thread>

#include "common/error.hpp"
#include "control/beast.hpp"

namespace gt {

// What every connection shares: the handler, its threads (none: the I/O thread) and whether
// the server is stopping.
struct HttpServerShared {
  Handler handler;
  std::chrono::milliseconds timeout;
  std::unique_ptr<boost::asio::thread_pool> workers;
  std::atomic<bool> stopping{false};
};

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
  Session(tcp::socket socket, const HttpServerShared& shared)
      : stream_(std::move(socket)), shared_(shared), timeout_(shared.timeout) {
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
      if (auto answer = read_failure_answer(ec)) return send(*answer);
      return close();
    }
    const auto& req = parser_.get();
    HttpRequest request{std::string(req.method_string()), std::string(req.target()), req.body(),
                        std::string(req[http::field::authorization])};
    version_ = req.version();
    if (!shared_.workers) return answer(call_handler(shared_.handler, request));
    net::post(*shared_.workers, [self = shared_from_this(), request = std::move(request)] {
      auto answer = call_handler(self->shared_.handler, request);
      if (answer.stream) return self->stream(answer);
      net::post(self->stream_.get_executor(),
                [self, answer = std::move(answer)] { self->answer(answer); });
    });
  }

  void answer(const HttpAnswer& answer) {
    if (answer.stream)
      return send(error_answer(500, "a streamed answer needs the server's handler threads"));
    send(answer);
  }

  template <class Message>
  void set_head(Message& m, const HttpAnswer& answer) {
    m.version(version_);
    m.result(static_cast<unsigned>(answer.status));
    m.set(http::field::server, "gtune");
    m.keep_alive(false);
    for (const auto& [name, value] : answer.headers) m.set(name, value);
  }

  void send(const HttpAnswer& answer) {
    set_head(response_, answer);
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

  // On a handler thread: the head, then each piece the producer writes as one chunk, then the
  // last chunk. Each write happens on the I/O thread while this thread waits for it.
  void stream(const HttpAnswer& answer) {
    http::response<http::empty_body> head;
    set_head(head, answer);
    head.set(http::field::content_type, answer.content_type);
    head.set(http::field::cache_control, "no-cache");
    head.chunked(true);
    http::response_serializer<http::empty_body> serializer{head};
    bool open =
        write_and_wait([&](auto done) { http::async_write_header(stream_, serializer, done); });
    const BodyWriter writer = [&](const std::string& piece) {
      if (shared_.stopping) open = false;
      if (!open || piece.empty()) return open;
      open = write_and_wait([&](auto done) {
        net::async_write(stream_, http::make_chunk(net::buffer(piece)), done);
      });
      return open;
    };
    try {
      answer.stream(writer);
    } catch (...) {
      // The status is out already: ending the body early is all that is left to say.
    }
    if (open)
      write_and_wait([&](auto done) { net::async_write(stream_, http::make_chunk_last(), done); });
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->linger(); });
  }

  // Starts `write(done)` on the I/O thread and waits until it is done (the stream's timeout
  // bounds that, and the server's destructor keeps the I/O thread until the handlers are
  // done); false when it failed.
  template <class Write>
  bool write_and_wait(Write write) {
    auto result = std::make_shared<std::promise<bool>>();
    auto finished = result->get_future();
    net::post(stream_.get_executor(), [this, self = shared_from_this(), result, &write] {
      stream_.expires_after(timeout_);
      write([result](beast::error_code ec, std::size_t) { result->set_value(!ec); });
    });
    return finished.get();
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
  const HttpServerShared& shared_;
  std::chrono::milliseconds timeout_;
  unsigned version_ = 11;
  beast::flat_buffer buffer_;
  http::request_parser<http::string_body> parser_;
  http::response<http::string_body> response_;
  std::array<char, 4096> scratch_{};
  std::size_t drained_ = 0;
};

}  // namespace

struct HttpServer::Impl {
  HttpServerShared shared;
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
        std::make_shared<Session>(std::move(socket), shared)->start();
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
                       std::chrono::milliseconds read_timeout, int handler_threads)
    : impl_(std::make_unique<Impl>()) {
  impl_->shared.handler = std::move(handler);
  impl_->shared.timeout = read_timeout;
  if (handler_threads > 0)
    impl_->shared.workers = std::make_unique<net::thread_pool>(std::size_t(handler_threads));
  impl_->listen(address, port);
  impl_->accept();
  impl_->thread = std::thread([impl = impl_.get()] { impl->serve(); });
}

HttpServer::~HttpServer() {
  impl_->shared.stopping = true;
  // Handlers first: a stream's writes need the I/O thread. No new connection meanwhile.
  net::post(impl_->io, [impl = impl_.get()] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
  });
  if (impl_->shared.workers) impl_->shared.workers->join();
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
