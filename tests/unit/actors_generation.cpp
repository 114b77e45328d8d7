// Split generation (issue 18): the client's adapters here, the backbone and its KV cache on the
// server, a1 and a2 through the codec (and through the server actor): the same tokens as
// generating in one place with an fp32 wire; the server's caches freed at the end and bounded.
#include <chrono>
#include <string>
#include <vector>

#include "actors/server.hpp"
#include "common/error.hpp"
#include "models/decoder.hpp"
#include "models/generation.hpp"
#include "monitoring/metrics.hpp"
#include "protocols/interfaces.hpp"
#include "strategies/generation_client.hpp"
#include "tests/actor_test_support.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/reference_batch.hpp"

namespace {

using gt::test::fixture_dir;
using gt::test::reference_batch;

gt::SessionHello hello_for(const gt::Segments& seg) {
  return gt::generation_hello(seg, "c");
}

// The server's answer to `req`, each message encoded and decoded as on the wire.
gt::GenerateReply through_codec(gt::SplitServer& server, const gt::GenerateRequest& req) {
  return gt::decode(gt::encode(server.generate(gt::decode(gt::encode(req)))));
}

}  // namespace

TEST_CASE("split generation: the server's backbone and cache give the tokens of one place") {
  for (const std::string name : {"opt-tiny-s1", "llama-tiny-s1"}) {
    INFO(name);
    auto client_model = gt::load_decoder(fixture_dir(name));
    auto client = gt::split_model(client_model, {1, 1});
    gt::SplitServer server(gt::split_model(gt::load_decoder(fixture_dir(name)), {1, 1}), "s");
    const auto session = server.open(hello_for(client)).header.session;
    const auto b = reference_batch(name);  // right- and left-padded prompts
    gt::SamplingOptions o;
    o.max_tokens = 6;
    const auto here = gt::generate(client, b.ids, b.mask, o);

    gt::GenerationClient remote(session, gt::QuantScheme::none,
                                [&](gt::GenerateRequest r) { return through_codec(server, r); });
    const gt::BackboneStep step = [&](const torch::Tensor& a1, const torch::Tensor& mask) {
      return remote.step(a1, mask);
    };
    const auto split = gt::generate(client, step, b.ids, b.mask, o);
    CHECK(split.tokens == here.tokens);
    CHECK(split.finish == here.finish);
    CHECK(server.cache_bytes() > 0);  // the generation's cache, until it ends
    remote.end();
    CHECK(server.cache_bytes() == 0);
    // An ended generation is gone: going on with it is refused.
    gt::GenerateRequest late;
    late.header = gt::Header{gt::kProtocolVersion, session, 0};
    late.generation = 1;
    late.activations = gt::to_wire(torch::zeros({1, 1, client.cfg.hidden_size}));
    late.attention_mask = gt::to_wire(torch::ones({1, 1}, torch::kLong));
    CHECK_THROWS_WITH_AS(server.generate(late), doctest::Contains("unknown"), gt::ProtocolError);

    // int8 a1, as the online design sends it: how many greedy tokens change.
    gt::GenerationClient quantized(session, gt::QuantScheme::int8,
                                   [&](gt::GenerateRequest r) { return through_codec(server, r); });
    const auto int8 = gt::generate(
        client,
        [&](const torch::Tensor& a1, const torch::Tensor& m) { return quantized.step(a1, m); },
        b.ids, b.mask, o);
    size_t same = 0, total = 0;
    for (size_t r = 0; r < here.tokens.size(); ++r)
      for (size_t i = 0; i < here.tokens[r].size(); ++i, ++total)
        same += i < int8.tokens[r].size() && int8.tokens[r][i] == here.tokens[r][i];
    MESSAGE(name << ": int8 a1 keeps " << same << " of " << total << " greedy tokens");
    quantized.end();
  }
}

TEST_CASE("split generation: a step that would pass the cache limit is refused and keeps nothing") {
  auto model = gt::load_decoder(fixture_dir("opt-tiny-s1"));
  auto seg = gt::split_model(model, {1, 1});
  gt::SplitServer server(gt::split_model(gt::load_decoder(fixture_dir("opt-tiny-s1")), {1, 1}),
                         "s");
  const auto session = server.open(hello_for(seg)).header.session;
  server.set_cache_limit(1024);  // bytes: less than one prompt's keys and values
  const auto b = reference_batch("opt-tiny-s1");
  gt::GenerationClient remote(session, gt::QuantScheme::none,
                              [&](gt::GenerateRequest r) { return server.generate(r); });
  gt::SamplingOptions o;
  o.max_tokens = 2;
  CHECK_THROWS_WITH_AS(
      gt::generate(
          seg, [&](const torch::Tensor& a1, const torch::Tensor& m) { return remote.step(a1, m); },
          b.ids, b.mask, o),
      doctest::Contains("server.max_cache_mb"), gt::ProtocolError);
  CHECK(server.cache_bytes() == 0);
}

TEST_CASE("split generation: through the server actor, requests from the session's owner") {
  gt::test::QuietLogs quiet;
  gt::test::ActorConfig cfg;
  caf::actor_system sys{cfg};
  auto model = gt::load_decoder(fixture_dir("opt-tiny-s1"));
  auto client = gt::split_model(model, {1, 1});
  auto split = std::make_shared<gt::SplitServer>(
      gt::split_model(gt::load_decoder(fixture_dir("opt-tiny-s1")), {1, 1}), "server");
  auto stats = std::make_shared<gt::WireStats>();
  gt::ServerOptions options;
  options.metrics = std::make_shared<gt::Metrics>();
  auto server = sys.spawn(gt::configured_server_behavior, split, stats, options);
  caf::scoped_actor self{sys};
  constexpr auto kTimeout = std::chrono::seconds(60);
  uint64_t session = 0;
  self->request(server, kTimeout, gt::encode(hello_for(client)))
      .receive([&](gt::Encoded<gt::SessionAccept>& a) { session = gt::decode(a).header.session; },
               [&](caf::error& e) { FAIL(gt::describe(e)); });
  REQUIRE(session != 0);
  gt::GenerationClient remote(session, gt::QuantScheme::none, [&](gt::GenerateRequest r) {
    gt::GenerateReply reply;
    self->request(server, kTimeout, gt::encode(r))
        .receive([&](gt::Encoded<gt::GenerateReply>& rep) { reply = gt::decode(rep); },
                 [&](caf::error& e) { throw gt::Error(gt::describe(e)); });
    return reply;
  });
  const auto b = reference_batch("opt-tiny-s1");
  gt::SamplingOptions o;
  o.max_tokens = 5;
  const auto here = gt::generate(client, b.ids, b.mask, o);
  const auto remote_run = gt::generate(
      client, [&](const torch::Tensor& a1, const torch::Tensor& m) { return remote.step(a1, m); },
      b.ids, b.mask, o);
  CHECK(remote_run.tokens == here.tokens);
  const auto during = options.metrics->text();
  CHECK(during.find("\ngtune_generations 1\n") != std::string::npos);
  remote.end();
  CHECK(split->cache_bytes() == 0);
  // The prompt's 3 x 10 positions, then 4 steps of one new token a row (5 tokens, no stop).
  const auto after = options.metrics->text();
  CHECK(after.find("\ngtune_generation_positions_total 42\n") != std::string::npos);
  CHECK(after.find("\ngtune_generations 0\n") != std::string::npos);
  CHECK(after.find("\ngtune_generation_cache_bytes 0\n") != std::string::npos);
  // Counted as generation traffic: the prompt and one message per new token each way.
  int64_t up = 0, down = 0;
  for (const auto& [key, count] : stats->snapshot()) {
    if (std::get<2>(key) == "generate_up") up += count.messages;
    if (std::get<2>(key) == "generate_down") down += count.messages;
  }
  CHECK(up == down);
  CHECK(up >= 2);
  caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
}
