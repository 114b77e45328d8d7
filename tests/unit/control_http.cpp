// The control API over real sockets on 127.0.0.1: routes reach the actions with
// the right arguments, every bad request gets its 4xx and a reason, and no
// client (garbage, oversized, silent) breaks or stalls the server.
#include <doctest/doctest.h>

#include <chrono>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "control/address.hpp"
#include "control/control_api.hpp"
#include "control/http_client.hpp"
#include "control/http_server.hpp"
#include "tests/raw_http.hpp"

namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using namespace gt::test;

constexpr auto kTimeout = std::chrono::seconds(5);
constexpr auto kReadTimeout = std::chrono::milliseconds(200);

// What the actions were called with, in order.
struct Calls {
  std::mutex mutex;
  std::vector<std::string> log;
  std::string refusal;  // what pause/resume/switch answer

  void add(const std::string& call) {
    std::lock_guard<std::mutex> lock(mutex);
    log.push_back(call);
  }
  std::vector<std::string> get() {
    std::lock_guard<std::mutex> lock(mutex);
    return log;
  }
};

gt::ControlActions actions(Calls& calls) {
  gt::ControlActions a;
  a.strategies = {"online", "gradfree", "offline"};
  a.status = [&calls] {
    calls.add("status");
    return json{{"strategy", "online"}, {"step", 7}};
  };
  a.switch_to = [&calls](const std::string& to) {
    calls.add("switch " + to);
    return calls.refusal;
  };
  a.pause = [&calls] {
    calls.add("pause");
    return calls.refusal;
  };
  a.resume = [&calls] {
    calls.add("resume");
    return calls.refusal;
  };
  return a;
}

struct ControlServer {
  Calls calls;
  gt::HttpServer server{"127.0.0.1", 0, gt::control_routes(actions(calls)), kReadTimeout};

  gt::HttpAnswer call(const std::string& method, const std::string& target,
                      const std::string& body = "") {
    return gt::http_call("127.0.0.1", server.port(), method, target, body, kTimeout);
  }
};

std::string error_of(const gt::HttpAnswer& a) {
  REQUIRE(a.body.is_object());
  REQUIRE(a.body.contains("error"));
  REQUIRE(a.body["error"].is_string());
  return a.body["error"].get<std::string>();
}

// A port on 127.0.0.1 with nothing listening: bound by a server, then released.
uint16_t closed_port() {
  gt::HttpServer s("127.0.0.1", 0, [](const gt::HttpRequest&) { return gt::HttpAnswer{}; });
  return s.port();
}

std::string post(const std::string& target, const std::string& body) {
  return "POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace

TEST_CASE("control api: status, switch, pause and resume reach the actions") {
  ControlServer s;
  auto status = s.call("GET", "/status");
  CHECK(status.status == 200);
  CHECK(status.body == json{{"strategy", "online"}, {"step", 7}});

  auto sw = s.call("POST", "/switch", R"({"to": "gradfree"})");
  CHECK(sw.status == 200);
  CHECK(sw.body == json{{"ok", true}, {"to", "gradfree"}});
  CHECK(s.call("POST", "/pause").body == json{{"ok", true}});
  CHECK(s.call("POST", "/resume?now=1").status == 200);  // a query string is ignored
  CHECK(s.calls.get() == std::vector<std::string>{"status", "switch gradfree", "pause", "resume"});
  CHECK(s.server.url() == "http://127.0.0.1:" + std::to_string(s.server.port()));
}

TEST_CASE("control api: an action's refusal is a 409 with its reason") {
  ControlServer s;
  s.calls.refusal = "already paused";
  auto a = s.call("POST", "/pause");
  CHECK(a.status == 409);
  CHECK(error_of(a) == "already paused");
  a = s.call("POST", "/switch", R"({"to": "offline"})");
  CHECK(a.status == 409);
  CHECK(error_of(a) == "already paused");
}

TEST_CASE(
    "control api: unknown paths, wrong methods and bad /switch bodies are 4xx with a reason") {
  ControlServer s;
  auto a = s.call("GET", "/nope");
  CHECK(a.status == 404);
  CHECK(error_of(a).find("GET /status, POST /switch, POST /pause, POST /resume") !=
        std::string::npos);

  a = s.call("POST", "/status");
  CHECK(a.status == 405);
  CHECK(error_of(a) == "/status accepts GET, not POST");
  a = s.call("GET", "/switch");
  CHECK(a.status == 405);
  CHECK(error_of(a) == "/switch accepts POST, not GET");

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "must be a JSON object"},
      {"{not json", "must be a JSON object"},
      {R"(["gradfree"])", "must be a JSON object"},
      {"{}", "missing \"to\""},
      {R"({"to": 3})", "\"to\" must be a string"},
      {R"({"to": "gradfree", "now": true})", "unknown key \"now\""},
      {R"({"to": "bogus"})", "unknown strategy 'bogus'"},
  };
  for (const auto& [body, want] : bad) {
    const auto& request_body = body;  // clang 14 cannot capture a structured binding
    CAPTURE(request_body);
    a = s.call("POST", "/switch", body);
    CHECK(a.status == 400);
    const auto reason = error_of(a);
    CHECK(reason.find(want) != std::string::npos);
    CHECK(reason.find("online, gradfree, offline") != std::string::npos);
  }
  CHECK(s.calls.get().empty());
}

TEST_CASE("control api: an action that is not provided is a 501") {
  gt::ControlActions none;
  gt::HttpServer server("127.0.0.1", 0, gt::control_routes(none), kReadTimeout);
  auto a = gt::http_call("127.0.0.1", server.port(), "POST", "/pause", "", kTimeout);
  CHECK(a.status == 501);
  CHECK(error_of(a) == "/pause is not available in this run");
}

TEST_CASE("control http: a handler that throws is a 500 with its message") {
  gt::HttpServer server(
      "127.0.0.1", 0,
      [](const gt::HttpRequest&) -> gt::HttpAnswer { throw std::runtime_error("scheduler gone"); },
      kReadTimeout);
  auto a = gt::http_call("127.0.0.1", server.port(), "GET", "/status", "", kTimeout);
  CHECK(a.status == 500);
  CHECK(error_of(a) == "scheduler gone");
}

TEST_CASE(
    "control http: garbage, oversized and silent clients get answers or timeouts, never a stall") {
  ControlServer s;
  const auto port = s.server.port();

  auto reply = raw_exchange(port, "GARBAGE NOT HTTP\r\n\r\n");
  CHECK(reply.rfind("HTTP/1.1 400 ", 0) == 0);
  CHECK(reply.find("malformed HTTP request") != std::string::npos);
  CHECK(reply.find("application/json") != std::string::npos);

  std::mt19937 rng(7);
  std::string noise(4096, '\0');
  for (auto& c : noise) c = static_cast<char>(rng());
  raw_exchange(port, noise);  // any answer, or none; the server must survive it

  // One byte over the limit: 413, and nothing reaches the actions.
  reply = raw_exchange(port, post("/switch", std::string(gt::kMaxRequestBody + 1, ' ')));
  CHECK(reply.rfind("HTTP/1.1 413 ", 0) == 0);
  // Exactly at the limit is fine.
  std::string body = R"({"to": "offline"})";
  body.resize(gt::kMaxRequestBody, ' ');
  reply = raw_exchange(port, post("/switch", body));
  CHECK(reply.rfind("HTTP/1.1 200 ", 0) == 0);

  // A client that connects and sends nothing: others are still served at once,
  // and the silent one is dropped after the read timeout.
  const int silent = connect_raw(port);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(s.call("GET", "/status").status == 200);
  CHECK(recv_all(silent).empty());  // EOF, not the 3 s receive timeout
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);
  close(silent);

  // Half a request, then silence: also dropped, and the server still serves.
  const int partial = connect_raw(port);
  send_all(partial, "POST /pause HTTP/1.1\r\nContent-Length: 10\r\n\r\n{\"a");
  CHECK(recv_all(partial).empty());
  close(partial);
  CHECK(s.call("POST", "/resume").status == 200);
  CHECK(s.calls.get() == std::vector<std::string>{"switch offline", "status", "resume"});
}

TEST_CASE(
    "control http: binding failures and unreachable servers are gt::Error naming the address") {
  gt::HttpServer first("127.0.0.1", 0, [](const gt::HttpRequest&) { return gt::HttpAnswer{}; });
  const auto taken = "127.0.0.1:" + std::to_string(first.port());
  auto bind = [](const std::string& host, uint16_t port) {
    gt::HttpServer s(host, port, [](const gt::HttpRequest&) { return gt::HttpAnswer{}; });
  };
  CHECK_THROWS_WITH_AS(bind("127.0.0.1", first.port()),
                       ("cannot listen on " + taken + ": address already in use").c_str(),
                       gt::Error);
  CHECK_THROWS_WITH_AS(bind("999.1.2.3", 80),
                       "cannot listen on 999.1.2.3:80: '999.1.2.3' is not an IP address",
                       gt::Error);

  const auto port = closed_port();
  const auto where = "127.0.0.1:" + std::to_string(port);
  CHECK_THROWS_WITH_AS(gt::http_call("127.0.0.1", port, "GET", "/status", "", kTimeout),
                       ("cannot reach the control API at " + where +
                        ": connection refused — is a run with --control active?")
                           .c_str(),
                       gt::Error);
}

TEST_CASE("control http: a reply that is not JSON is a gt::Error") {
  // A one-shot server that answers plain text.
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(listen(listener, 1) == 0);
  socklen_t len = sizeof addr;
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  std::thread server([listener] {
    const int fd = accept(listener, nullptr, nullptr);
    char buf[1024];
    (void)!recv(fd, buf, sizeof buf, 0);
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    close(fd);
  });
  CHECK_THROWS_WITH_AS(
      gt::http_call("127.0.0.1", ntohs(addr.sin_port), "GET", "/status", "", kTimeout),
      doctest::Contains("answered HTTP 200 with a body that is not JSON: 'hello'"), gt::Error);
  server.join();
  close(listener);
}

TEST_CASE("control address: HOST:PORT parsing and loopback") {
  auto hp = gt::parse_host_port("127.0.0.1:9470");
  CHECK(hp.host == "127.0.0.1");
  CHECK(hp.port == 9470);
  CHECK(gt::parse_host_port("localhost:0").port == 0);
  CHECK(gt::parse_host_port("10.1.2.3:65535").port == 65535);
  CHECK_THROWS_WITH_AS(gt::parse_host_port("127.0.0.1", "--address"),
                       "--address: expected HOST:PORT, got '127.0.0.1'", gt::Error);
  for (const std::string port : {"", "65536", "-1", "80x", " 80", "99999999"})
    CHECK_THROWS_WITH_AS(gt::parse_host_port("127.0.0.1:" + port, "--address"),
                         ("--address: '" + port + "' is not a port number (0-65535)").c_str(),
                         gt::Error);
  for (const std::string host : {"", "example.com", "1.2.3", "256.1.1.1", "::1"})
    CHECK_THROWS_WITH_AS(gt::parse_host_port(host + ":80", "--address"),
                         ("--address: '" + host + "' is not an IPv4 address or localhost").c_str(),
                         gt::Error);
  CHECK(gt::is_loopback("localhost"));
  CHECK(gt::is_loopback("127.0.0.1"));
  CHECK(gt::is_loopback("127.1.2.3"));
  CHECK(gt::is_loopback("::1"));
  CHECK_FALSE(gt::is_loopback("0.0.0.0"));
  CHECK_FALSE(gt::is_loopback("10.0.0.1"));
  CHECK_FALSE(gt::is_loopback("example.com"));
}
