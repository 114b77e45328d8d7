// The server actor in a real actor system: bad messages are rejected with a reason and
// counted apart while it keeps serving; a client that dies loses its session.
#include <spdlog/spdlog.h>

#include <chrono>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "actors/server.hpp"
#include "models/decoder.hpp"
#include "models/segments.hpp"
#include "protocols/interfaces.hpp"
#include "tests/actor_test_support.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/test_paths.hpp"

namespace {

constexpr auto kTimeout = std::chrono::seconds(60);
constexpr int64_t B = 2, T = 5;

using Config = gt::test::ActorConfig;
using gt::test::QuietLogs;

// An actor system with one server over the tiny OPT cut at {1, 1}, and a scoped
// actor that plays the well-behaved client.
struct Env {
  QuietLogs quiet;
  Config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<gt::SplitServer> split;
  std::shared_ptr<gt::WireStats> stats = std::make_shared<gt::WireStats>();
  gt::ModelConfig model;
  gt::server_actor server;
  caf::scoped_actor self{sys};

  explicit Env(gt::ServerOptions options = {}) {
    auto seg =
        gt::split_model(gt::load_decoder(gt::test::fixture("hf-reference/opt-tiny-s1")), {1, 1});
    model = seg.cfg;
    split = std::make_shared<gt::SplitServer>(std::move(seg), "server");
    server = sys.spawn(gt::configured_server_behavior, split, stats, options);
  }
  ~Env() { caf::anon_send_exit(server, caf::exit_reason::user_shutdown); }

  gt::SessionHello hello(const std::string& client) const {
    gt::SessionHello h;
    h.client_name = client;
    h.strategy = "split";
    h.model_type = model.model_type;
    h.num_layers = model.num_layers;
    h.hidden_size = model.hidden_size;
    h.n_in = 1, h.n_out = 1;
    return h;
  }
};

// The reply's bytes, or gt::describe of the error that came back instead.
struct Outcome {
  std::vector<uint8_t> bytes;
  std::string error;
};

template <class Rep, class Req>
Outcome ask(Env& env, const gt::Encoded<Req>& msg) {
  Outcome out;
  env.self->request(env.server, kTimeout, msg)
      .receive([&](gt::Encoded<Rep>& rep) { out.bytes = std::move(rep.bytes); },
               [&](caf::error& err) {
                 out.error = gt::describe(err);
                 if (out.error.empty()) out.error = "(an error without description)";
               });
  return out;
}

uint64_t open_session(Env& env, const std::string& client) {
  const auto r = ask<gt::SessionAccept>(env, gt::encode(env.hello(client)));
  REQUIRE(r.error.empty());
  const auto accept = gt::decode(gt::Encoded<gt::SessionAccept>{r.bytes});
  CHECK(accept.server_name == "server");
  return accept.header.session;
}

gt::ForwardRequest forward_request(const Env& env, uint64_t session, int64_t step,
                                   bool keep_graph = true) {
  gt::ForwardRequest m;
  m.header = gt::Header{gt::kProtocolVersion, session, step};
  m.activations = gt::to_wire(torch::randn({B, T, env.model.hidden_size}));
  m.attention_mask = gt::to_wire(torch::ones({B, T}, torch::kLong));
  m.keep_graph = keep_graph;
  return m;
}

gt::BackwardRequest backward_request(const Env& env, uint64_t session, int64_t step) {
  return gt::BackwardRequest{gt::Header{gt::kProtocolVersion, session, step},
                             gt::to_wire(torch::randn({B, T, env.model.hidden_size}))};
}

int64_t counted(const Env& env, const std::string& link, const std::string& dir,
                const std::string& kind) {
  const auto snap = env.stats->snapshot();
  const auto it = snap.find(gt::WireStats::Key{link, dir, kind});
  return it == snap.end() ? 0 : it->second.bytes;
}

// One training round (forward with graph, backward) that must succeed; its bytes must be
// counted under the session's link, both ways.
void valid_round(Env& env, uint64_t session, const std::string& link, int64_t step) {
  CAPTURE(step);
  const auto up0 = counted(env, link, "up", "activations_up");
  const auto down0 = counted(env, link, "down", "activations_down");
  const auto gup0 = counted(env, link, "up", "gradients_up");
  const auto fwd = gt::encode(forward_request(env, session, step));
  const auto r = ask<gt::ForwardReply>(env, fwd);
  REQUIRE(r.error.empty());
  const auto reply = gt::decode(gt::Encoded<gt::ForwardReply>{r.bytes});
  CHECK(reply.header.session == session);
  CHECK(reply.header.step == step);
  const auto C = env.model.hidden_size;
  CHECK(torch::isfinite(gt::from_wire(reply.activations, "a2", {B, T, C})).all().item<bool>());
  CHECK(counted(env, link, "up", "activations_up") - up0 == int64_t(fwd.bytes.size()));
  CHECK(counted(env, link, "down", "activations_down") - down0 == int64_t(r.bytes.size()));

  const auto bwd = gt::encode(backward_request(env, session, step));
  const auto g = ask<gt::BackwardReply>(env, bwd);
  REQUIRE(g.error.empty());
  const auto g1 =
      gt::from_wire(gt::decode(gt::Encoded<gt::BackwardReply>{g.bytes}).gradient, "g1", {B, T, C});
  CHECK(g1.abs().sum().item<double>() > 0);
  CHECK(counted(env, link, "up", "gradients_up") - gup0 == int64_t(bwd.bytes.size()));
}

struct BadMessage {
  std::string name;
  std::function<Outcome(Env&)> send;
  std::string kind;    // message_kind of what was sent, as counted under "rejected"
  std::string reason;  // part of the error's description
};

}  // namespace

TEST_CASE("server actor: bad messages are rejected with a reason and the server keeps serving") {
  Env env;
  const auto good = open_session(env, "good");
  const std::string link = "good-server";
  CHECK(env.split->num_sessions() == 1);
  CHECK(counted(env, link, "up", "session_hello") > 0);
  valid_round(env, good, link, 0);

  std::mt19937 rng(7);
  // Sends make(env) encoded, or the bytes `mangle` makes of its encoding.
  auto forward = [](std::function<gt::ForwardRequest(Env&)> make,
                    std::function<void(std::vector<uint8_t>&)> mangle = {}) {
    return [make, mangle](Env& env) {
      auto enc = gt::encode(make(env));
      if (mangle) mangle(enc.bytes);
      return ask<gt::ForwardReply>(env, enc);
    };
  };
  std::vector<BadMessage> corpus{
      {"wrong version", forward([&](Env& e) {
         auto m = forward_request(e, good, 100);
         m.header.protocol_version = 99;
         return m;
       }),
       "activations_up", "protocol version 99"},
      {"truncated",
       forward([&](Env& e) { return forward_request(e, good, 100); },
               [](auto& b) { b.pop_back(); }),
       "activations_up", "truncated"},
      {"garbage",
       forward([&](Env& e) { return forward_request(e, good, 100); },
               [&](auto& b) {
                 for (auto& c : b) c = uint8_t(rng());
               }),
       "activations_up", "wrong tag"},
      {"unknown session", forward([](Env& e) { return forward_request(e, 4242, 100); }),
       "activations_up", "unknown session 4242"},
      {"a1 with the wrong hidden size", forward([&](Env& e) {
         auto m = forward_request(e, good, 100);
         m.activations = gt::to_wire(torch::randn({B, T, e.model.hidden_size + 1}));
         return m;
       }),
       "activations_up", "a1: shape"},
      {"mask with the wrong shape", forward([&](Env& e) {
         auto m = forward_request(e, good, 100);
         m.attention_mask = gt::to_wire(torch::ones({B, T, 1}, torch::kLong));
         return m;
       }),
       "activations_up", "attention_mask: shape"},
      {"backward without a pending forward",
       [&](Env& e) { return ask<gt::BackwardReply>(e, gt::encode(backward_request(e, good, 77))); },
       "gradients_up", "without a pending forward"},
      {"hello for a different model",
       [](Env& e) {
         auto h = e.hello("other");
         h.num_layers += 2;
         return ask<gt::SessionAccept>(e, gt::encode(h));
       },
       "session_hello", "is not the server's"},
      {"hello with another cut",
       [](Env& e) {
         auto h = e.hello("other");
         h.n_in = 2;
         return ask<gt::SessionAccept>(e, gt::encode(h));
       },
       "session_hello", "client cuts the model"},
  };

  int64_t step = 1;
  for (auto& bad : corpus) {
    CAPTURE(bad.name);
    const auto rejected0 = counted(env, "rejected", "up", bad.kind);
    const auto good_total0 = env.stats->total_bytes("up");
    const auto r = bad.send(env);
    CHECK(r.bytes.empty());
    CHECK(r.error.rfind("rejected", 0) == 0);
    CHECK_MESSAGE(r.error.find(bad.reason) != std::string::npos, r.error);
    const auto grew = counted(env, "rejected", "up", bad.kind) - rejected0;
    CHECK(grew > 0);
    CHECK(env.stats->total_bytes("up") - good_total0 == grew);  // counted nowhere else
    CHECK(env.split->num_sessions() == 1);
    valid_round(env, good, link, step++);
  }
  // Exact sizes: a rejected message is counted at the size it had on the wire.
  const auto rejected0 = counted(env, "rejected", "up", "activations_up");
  auto bad = gt::encode(forward_request(env, 999, 1));
  CHECK(!ask<gt::ForwardReply>(env, bad).error.empty());
  CHECK(counted(env, "rejected", "up", "activations_up") - rejected0 == int64_t(bad.bytes.size()));
  // A pending forward survives a rejected backward (g2 with the wrong shape).
  const auto fwd = ask<gt::ForwardReply>(env, gt::encode(forward_request(env, good, step)));
  REQUIRE(fwd.error.empty());
  auto g2 = backward_request(env, good, step);
  g2.gradient = gt::to_wire(torch::randn({B, T + 1, env.model.hidden_size}));
  const auto wrong = ask<gt::BackwardReply>(env, gt::encode(g2));
  CHECK(wrong.error.rfind("rejected", 0) == 0);
  CHECK_MESSAGE(wrong.error.find("g2: shape") != std::string::npos, wrong.error);
  CHECK(ask<gt::BackwardReply>(env, gt::encode(backward_request(env, good, step))).error.empty());
}

TEST_CASE("server actor: a client that dies loses its session, other sessions keep working") {
  Env env;
  const auto good = open_session(env, "good");
  valid_round(env, good, "good-server", 0);

  // A client actor that opens a session, reports its id and quits. (What it needs goes in as
  // spawn arguments: CAF 0.17 dereferences a null argument tuple for an actor spawned without
  // any, which UBSan reports.)
  const auto hello = gt::encode(env.hello("mortal"));
  auto reporter = caf::actor_cast<caf::actor>(env.self);
  env.sys.spawn(
      [](caf::event_based_actor* self, gt::server_actor server, gt::Encoded<gt::SessionHello> hello,
         caf::actor reporter) {
        self->request(server, kTimeout, hello).then([=](gt::Encoded<gt::SessionAccept>& accept) {
          self->send(reporter, accept);
          self->quit();
        });
      },
      env.server, hello, reporter);
  uint64_t mortal = 0;
  env.self->receive(
      [&](gt::Encoded<gt::SessionAccept>& accept) { mortal = gt::decode(accept).header.session; },
      caf::after(kTimeout) >> [] { FAIL("the helper client never opened its session"); });
  REQUIRE(mortal != 0);
  CHECK(mortal != good);

  // Poll through the server's mailbox: each reply orders our read of num_sessions after
  // everything the server did before it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::string why;
  while (std::chrono::steady_clock::now() < deadline) {
    why = ask<gt::ForwardReply>(env, gt::encode(forward_request(env, mortal, 0, false))).error;
    if (why.find("unknown session") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK_MESSAGE(why.find("unknown session " + std::to_string(mortal)) != std::string::npos, why);
  CHECK(env.split->num_sessions() == 1);
  CHECK(!env.split->has_session(mortal));
  CHECK(env.split->has_session(good));
  valid_round(env, good, "good-server", 1);

  // A goodbye ends a session too.
  env.self->send(env.server, gt::encode(gt::SessionBye{{gt::kProtocolVersion, good, 2}}));
  const auto after = ask<gt::ForwardReply>(env, gt::encode(forward_request(env, good, 2)));
  CHECK_MESSAGE(after.error.find("unknown session") != std::string::npos, after.error);
  CHECK(env.split->num_sessions() == 0);
  CHECK(counted(env, "good-server", "up", "session_bye") > 0);
}

// A session opened by another actor (`other`, alive while the session is used).
uint64_t foreign_session(Env& env, caf::scoped_actor& other, const std::string& client) {
  uint64_t id = 0;
  other->request(env.server, kTimeout, gt::encode(env.hello(client)))
      .receive([&](gt::Encoded<gt::SessionAccept>& a) { id = gt::decode(a).header.session; },
               [&](caf::error& err) { FAIL(gt::describe(err)); });
  return id;
}

TEST_CASE("server actor: limits and ownership are refused with a reason and counted") {
  gt::ServerOptions options;
  options.metrics = std::make_shared<gt::Metrics>();
  options.limits.max_sessions = 2;
  options.limits.max_batch_tokens = B * T;
  options.limits.max_message_bytes = 64 << 10;
  Env env(options);
  const auto good = open_session(env, "good");
  valid_round(env, good, "good-server", 0);

  // Another party's session may not be used, nor its terms changed.
  caf::scoped_actor other{env.sys};
  const auto theirs = foreign_session(env, other, "theirs");
  REQUIRE(theirs != 0);
  auto r = ask<gt::ForwardReply>(env, gt::encode(forward_request(env, theirs, 1)));
  CHECK_MESSAGE(
      r.error.find("session " + std::to_string(theirs) + " is not yours") != std::string::npos,
      r.error);
  auto takeover = env.hello("theirs");
  takeover.header.session = theirs;
  CHECK(ask<gt::SessionAccept>(env, gt::encode(takeover)).error.find("is not yours") !=
        std::string::npos);

  // Two sessions are open: a third is refused; the open ones keep working.
  r = ask<gt::SessionAccept>(env, gt::encode(env.hello("third")));
  CHECK_MESSAGE(r.error.find("the server is full: 2 sessions open (server.max_sessions)") !=
                    std::string::npos,
                r.error);
  valid_round(env, good, "good-server", 1);

  // A batch of more tokens than allowed, and a message over the size limit.
  auto big = forward_request(env, good, 2);
  big.activations = gt::to_wire(torch::randn({B, T + 1, env.model.hidden_size}));
  big.attention_mask = gt::to_wire(torch::ones({B, T + 1}, torch::kLong));
  r = ask<gt::ForwardReply>(env, gt::encode(big));
  CHECK_MESSAGE(r.error.find("exceeds 10 (server.max_batch_tokens)") != std::string::npos, r.error);
  auto huge = gt::encode(forward_request(env, good, 2));
  huge.bytes.resize(size_t(options.limits.max_message_bytes) + 1);
  r = ask<gt::ForwardReply>(env, huge);
  CHECK_MESSAGE(r.error.find("(server.max_message_mb)") != std::string::npos, r.error);
  valid_round(env, good, "good-server", 2);

  const auto text = options.metrics->text();
  CHECK(text.find("gtune_refused_total{kind=\"activations_up\",reason=\"not_owner\"} 1") !=
        std::string::npos);
  CHECK(text.find("gtune_refused_total{kind=\"session_hello\",reason=\"full\"} 1") !=
        std::string::npos);
  CHECK(text.find("gtune_refused_total{kind=\"activations_up\",reason=\"too_large\"} 2") !=
        std::string::npos);
  CHECK(text.find("gtune_sessions 2") != std::string::npos);
}

TEST_CASE("server actor: an idle session is dropped after the timeout") {
  gt::ServerOptions options;
  options.metrics = std::make_shared<gt::Metrics>();
  options.limits.session_timeout = std::chrono::seconds(1);
  Env env(options);
  const auto idle = open_session(env, "idle");
  valid_round(env, idle, "idle-server", 0);
  for (int i = 0; i < 50 && env.split->num_sessions() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(env.split->num_sessions() == 0);
  CHECK(options.metrics->text().find("gtune_session_timeouts_total 1") != std::string::npos);
  // Its client learns so from the next message, and may open a new session.
  const auto r = ask<gt::ForwardReply>(env, gt::encode(forward_request(env, idle, 1)));
  CHECK(r.error.find("unknown session " + std::to_string(idle)) != std::string::npos);
  const auto again = open_session(env, "idle");
  valid_round(env, again, "idle-server", 1);
}
