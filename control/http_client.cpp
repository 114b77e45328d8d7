// See http_client.hpp.
#include "control/http_client.hpp"

#include "common/error.hpp"
#include "control/beast.hpp"

namespace gt {
namespace {

using namespace beast_io;

// Replies larger than this are refused; control answers are small.
constexpr std::size_t kMaxReplyBody = 8 << 20;

// Runs one asynchronous step (`start(done)`) to completion; the stream's
// deadline bounds it.
template <class Start>
beast::error_code run_step(net::io_context& io, Start start) {
  beast::error_code result;
  start([&result](beast::error_code ec, auto&&...) { result = ec; });
  io.restart();
  io.run();
  return result;
}

class Call {
 public:
  Call(const std::string& host, uint16_t port, std::chrono::seconds timeout)
      : host_(host),
        port_(port),
        where_(host + ":" + std::to_string(port)),
        timeout_(timeout),
        deadline_(std::chrono::steady_clock::now() + timeout) {}

  HttpAnswer send(const std::string& method, const std::string& target, const std::string& body) {
    connect();
    write(method, target, body);
    return read();
  }

 private:
  void connect() {
    beast::error_code ec;
    const auto endpoints = tcp::resolver(io_).resolve(host_, std::to_string(port_), ec);
    if (ec) fail(ec);
    stream_.expires_at(deadline_);
    if ((ec = run_step(io_, [&](auto done) { stream_.async_connect(endpoints, done); }))) fail(ec);
  }

  void write(const std::string& method, const std::string& target, const std::string& body) {
    http::request<http::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(http::field::host, where_);
    req.set(http::field::user_agent, "gtune");
    req.set(http::field::accept, "application/json");
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    req.keep_alive(false);
    req.body() = body;
    req.prepare_payload();
    stream_.expires_at(deadline_);
    if (auto ec = run_step(io_, [&](auto done) { http::async_write(stream_, req, done); }))
      fail(ec);
  }

  HttpAnswer read() {
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxReplyBody);
    stream_.expires_at(deadline_);
    if (auto ec =
            run_step(io_, [&](auto done) { http::async_read(stream_, buffer, parser, done); }))
      fail(ec);
    const auto& res = parser.get();
    const auto status = static_cast<int>(res.result_int());
    const std::string type(res[http::field::content_type]);
    if (type.rfind("text/plain", 0) == 0) return {status, nullptr, type, res.body()};
    auto json = nlohmann::json::parse(res.body(), nullptr, false);
    if (json.is_discarded())
      throw Error("the control API at " + where_ + " answered HTTP " + std::to_string(status) +
                  " with a body that is not JSON: '" + res.body().substr(0, 80) + "'");
    return {status, std::move(json), {}, {}};
  }

  [[noreturn]] void fail(const beast::error_code& ec) const {
    const auto api = "the control API at " + where_;
    if (ec == beast::error::timeout)
      throw Error(api + " did not answer within " + std::to_string(timeout_.count()) + " s");
    if (ec == net::error::connection_refused)
      throw Error("cannot reach " + api + ": connection refused — is a run with --control active?");
    if (ec == http::error::end_of_stream)
      throw Error(api + " closed the connection without an answer");
    if (ec.category() == http::make_error_code(http::error::bad_version).category())
      throw Error(api + " sent a malformed HTTP reply: " + ec.message());
    throw Error("cannot reach " + api + ": " + lowercase_first(ec.message()));
  }

  std::string host_;
  uint16_t port_;
  std::string where_;
  std::chrono::seconds timeout_;
  std::chrono::steady_clock::time_point deadline_;
  net::io_context io_{1};
  beast::tcp_stream stream_{io_};
};

}  // namespace

HttpAnswer http_call(const std::string& host, uint16_t port, const std::string& method,
                     const std::string& target, const std::string& body,
                     std::chrono::seconds timeout) {
  return Call(host, port, timeout).send(method, target, body);
}

}  // namespace gt
