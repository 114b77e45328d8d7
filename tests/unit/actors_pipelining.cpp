// Pipelined micro-batches through the real client and server actors: several requests of a
// step in flight at once, the same training as unpipelined, and a server lost in the middle of
// a pipelined step: the step is begun again and the run is the uninterrupted one.
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "actors/client.hpp"
#include "actors/server.hpp"
#include "models/lora.hpp"
#include "protocols/interfaces.hpp"
#include "tests/actor_test_support.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/test_paths.hpp"

namespace {

constexpr auto kTimeout = std::chrono::seconds(120);

using Config = gt::test::ActorConfig;
using gt::test::QuietLogs;

std::string model_dir() {
  return gt::test::fixture("hf-reference/opt-tiny-s1");
}

// Rows of 9 tokens, each row its own from its index, with 4 to 9 real tokens.
struct Rows : gt::BatchSource {
  int64_t vocab = 0;
  size_t n = 0;
  Rows(int64_t vocab, size_t n) : vocab(vocab), n(n) {}
  size_t size() const override { return n; }
  gt::LmBatch batch(const std::vector<size_t>& indices) const override {
    constexpr int64_t T = 9;
    auto ids = torch::empty({int64_t(indices.size()), T}, torch::kLong);
    auto mask = torch::ones_like(ids);
    for (size_t r = 0; r < indices.size(); ++r) {
      auto gen = torch::make_generator<torch::CPUGeneratorImpl>(1000 + indices[r]);
      ids[int64_t(r)] = torch::randint(3, vocab, {T}, gen, torch::kLong);
      mask[int64_t(r)].slice(0, 4 + int64_t(indices[r] % 6)).fill_(0);
    }
    return {ids, mask, ids.masked_fill(mask.eq(0), -100)};
  }
};

// A stand-in for the server that passes everything on to `server` until the die_at-th forward
// request, which it swallows as it quits: a server lost with requests in flight.
caf::behavior mortal_proxy(caf::event_based_actor* self, gt::server_actor server, int die_at) {
  auto forwards = std::make_shared<int>(0);
  return {
      [=](gt::Encoded<gt::SessionHello>& m) { return self->delegate(server, std::move(m)); },
      [=](gt::Encoded<gt::ForwardRequest>& m) -> caf::delegated<gt::Encoded<gt::ForwardReply>> {
        if (++*forwards == die_at) {
          self->quit(caf::exit_reason::user_shutdown);
          return {};
        }
        return self->delegate(server, std::move(m));
      },
      [=](gt::Encoded<gt::BackwardRequest>& m) { return self->delegate(server, std::move(m)); },
      [=](gt::Encoded<gt::SessionBye>& m) { return self->delegate(server, std::move(m)); },
  };
}

using vanish_atom = caf::atom_constant<caf::atom("vanish")>;

// A stand-in for a remote server whose node goes down while nothing is in flight: after
// `vanish`, whatever the client sends is lost without an answer, as CAF 0.17 loses messages to
// a dead node's actors (the client hears of the loss from a down message only).
caf::behavior vanishing_proxy(caf::event_based_actor* self, gt::server_actor server) {
  auto gone = std::make_shared<bool>(false);
  auto unanswered = std::make_shared<std::vector<caf::response_promise>>();
  auto lose = [=] {
    unanswered->push_back(self->make_response_promise());
    return unanswered->back();
  };
  return {
      [=](vanish_atom) { *gone = true; },
      [=](gt::Encoded<gt::SessionHello>& m) -> caf::result<gt::Encoded<gt::SessionAccept>> {
        if (*gone) return lose();
        return self->delegate(server, std::move(m));
      },
      [=](gt::Encoded<gt::ForwardRequest>& m) -> caf::result<gt::Encoded<gt::ForwardReply>> {
        if (*gone) return lose();
        return self->delegate(server, std::move(m));
      },
      [=](gt::Encoded<gt::BackwardRequest>& m) -> caf::result<gt::Encoded<gt::BackwardReply>> {
        if (*gone) return lose();
        return self->delegate(server, std::move(m));
      },
      [=](gt::Encoded<gt::SessionBye>& m) {
        if (!*gone) self->send(server, std::move(m));
      },
  };
}

struct Run {
  std::vector<double> losses;  // per step, then the final held-out loss
  gt::NamedTensors adapters;
  std::map<std::string, int64_t> up;  // messages sent, by kind
};

// `steps` online steps (int8 a1, g2 as `g2`, dCor, noise) of one client actor against a server
// actor; with die_at > 0 the client first talks to a mortal proxy and reconnects to the server.
// With vanish_after > 0 the first server is a vanishing proxy instead, which goes down while
// the client waits for the scheduler's answer to its report of step `vanish_after`.
Run run(int64_t micro_batches, int steps, int die_at = 0,
        gt::QuantScheme g2 = gt::QuantScheme::int8, int vanish_after = 0) {
  QuietLogs quiet;
  Config cfg;
  caf::actor_system sys{cfg};
  auto full = gt::load_decoder(model_dir());
  gt::set_trainable(*full, gt::TrainMode::frozen);
  auto split = std::make_shared<gt::SplitServer>(gt::split_model(full, {1, 1}), "server");
  auto server = sys.spawn(gt::configured_server_behavior, split, std::make_shared<gt::WireStats>(),
                          gt::ServerOptions{});

  gt::ClientParts parts;
  auto mine = gt::load_decoder(model_dir());
  parts.model = std::make_shared<gt::ClientModel>();
  parts.model->seg = gt::split_model(mine, {1, 1});
  gt::set_trainable(*mine, gt::TrainMode::frozen);
  gt::set_trainable(*parts.model->seg.input, gt::TrainMode::full);
  gt::set_trainable(*parts.model->seg.output, gt::TrainMode::full);
  parts.model->optimizer = std::make_shared<torch::optim::SGD>(
      gt::unique_parameters({parts.model->seg.input.get(), parts.model->seg.output.get()}),
      torch::optim::SGDOptions(0.05));
  parts.pretrained = std::make_shared<gt::NamedTensors>();
  parts.settings.online = {gt::QuantScheme::int8, gt::QuantScheme::none, g2, gt::QuantScheme::none};
  parts.settings.privacy.dcor_weight = 0.1;
  parts.settings.noise_std = 0.01;
  parts.settings.seed = 7;
  parts.settings.micro_batches = micro_batches;
  const auto vocab = parts.model->seg.cfg.vocab_size;
  parts.train = std::make_shared<Rows>(vocab, 20);
  parts.valid = std::make_shared<Rows>(vocab, 6);
  parts.stats = std::make_shared<gt::WireStats>();
  std::vector<caf::actor> helpers;
  parts.server = server;
  caf::actor proxy;
  if (die_at > 0 || vanish_after > 0) {
    proxy =
        die_at > 0 ? sys.spawn(mortal_proxy, server, die_at) : sys.spawn(vanishing_proxy, server);
    parts.server = caf::actor_cast<gt::server_actor>(proxy);
    helpers.push_back(proxy);
    // Spawn arguments rather than captures: CAF 0.17 dereferences a null argument tuple for
    // an actor spawned without any, which UBSan reports.
    auto reconnector = sys.spawn(
        [](gt::server_actor server) -> caf::behavior {
          return {
              [=](gt::reconnect_atom) { return caf::actor_cast<caf::strong_actor_ptr>(server); }};
        },
        server);
    parts.reconnector = reconnector;
    helpers.push_back(reconnector);
  }
  auto stats = parts.stats;
  auto model = parts.model;
  gt::ClientPlan plan;
  plan.name = "c";
  plan.batch = 5;
  plan.eval_batch = 8;
  plan.seed = 1;
  auto client = sys.spawn(gt::client_behavior, parts, plan);
  // The scheduler's part: one phase, every step report answered "go on". The vanishing proxy
  // goes down before the answer to step vanish_after's report, while nothing is in flight.
  auto scheduler = sys.spawn(
      [](caf::event_based_actor* self, gt::client_actor client, int64_t steps, caf::actor proxy,
         int64_t vanish_after) -> caf::behavior {
        return {
            [=](gt::StepReport& report) {
              if (vanish_after > 0 && report.step == vanish_after) {
                self->send(proxy, vanish_atom::value);
                self->send(
                    caf::actor_cast<caf::actor>(client),
                    caf::down_msg{proxy.address(), caf::exit_reason::remote_link_unreachable});
              }
              return std::string();
            },
            [=](gt::run_atom) -> caf::result<std::string> {
              auto rp = self->make_response_promise<std::string>();
              self->request(client, caf::infinite, gt::PhaseOrder{0, "online", steps})
                  .then([rp](std::string& reply) mutable { rp.deliver(reply); },
                        [rp](caf::error& err) mutable { rp.deliver(err); });
              return rp;
            },
        };
      },
      client, int64_t{steps}, proxy, int64_t{vanish_after});
  helpers.push_back(scheduler);

  Run r;
  caf::scoped_actor self{sys};
  std::string failure;
  self->request(scheduler, kTimeout, gt::run_atom_v)
      .receive([](std::string&) {}, [&](caf::error& err) { failure = gt::describe(err); });
  CHECK_MESSAGE(failure.empty(), failure);
  self->request(client, kTimeout, gt::finish_atom_v)
      .receive(
          [&](std::string& json) {
            const auto j = nlohmann::json::parse(json);
            for (const auto& s : j["steps"]) r.losses.push_back(s["loss"].get<double>());
            r.losses.push_back(j["evals"].back()["loss"].get<double>());
          },
          [&](caf::error& err) { FAIL(gt::describe(err)); });
  for (const auto& [key, count] : stats->snapshot())
    if (std::get<1>(key) == "up") r.up[std::get<2>(key)] += count.messages;
  for (const auto& [name, value] : gt::trainable_adapters(model->seg))
    r.adapters[name] = value.detach().clone();
  for (auto& a : helpers) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
  return r;
}

}  // namespace

TEST_CASE(
    "pipelining: a pipelined run through the client and server actors equals an unpipelined one") {
  constexpr int steps = 4;
  // fp32 g2: rounding-level differences stay rounding-level (SGD). int8 g2: where a chunk's a2
  // differs from the whole batch's in the last bit, a g2 code may round the other way and move
  // by one quantization step; the runs then agree to ~1e-4, not ~1e-6.
  for (auto [g2, tol] : {std::pair{gt::QuantScheme::none, 1e-5}, {gt::QuantScheme::int8, 2e-4}}) {
    CAPTURE(int(g2));
    const auto one = run(1, steps, 0, g2), three = run(3, steps, 0, g2);
    REQUIRE(one.losses.size() == steps + 1);
    REQUIRE(three.losses.size() == one.losses.size());
    for (size_t i = 0; i < one.losses.size(); ++i) {
      CAPTURE(i);
      CHECK(three.losses[i] == doctest::Approx(one.losses[i]).epsilon(tol));
    }
    double worst = 0;
    for (const auto& [name, t] : one.adapters)
      worst = std::max(worst, (t - three.adapters.at(name)).abs().max().item<double>());
    INFO("max |adapter difference| = " << worst);
    CHECK(worst <= tol);
    // Batches of 5 rows in 3 micro-batches: three forwards and three backwards a step.
    CHECK(one.up.at("activations_up") == steps);
    CHECK(three.up.at("activations_up") == 3 * steps);
    CHECK(three.up.at("gradients_up") == 3 * steps);
    CHECK(three.up.at("activations_up.eval") == one.up.at("activations_up.eval"));
  }
}

TEST_CASE("pipelining: a server lost in the middle of a pipelined step: the step is begun again") {
  constexpr int steps = 3;
  const auto whole = run(3, steps);
  // Forwards: 1 evaluation, 3 for step 1, then the second chunk of step 2 is lost.
  const auto lost = run(3, steps, 1 + 3 + 2);
  REQUIRE(lost.losses.size() == whole.losses.size());
  for (size_t i = 0; i < whole.losses.size(); ++i) CHECK(lost.losses[i] == whole.losses[i]);
  for (const auto& [name, t] : whole.adapters) {
    const auto& tensor_name = name;
    CAPTURE(tensor_name);
    CHECK(torch::equal(t, lost.adapters.at(name)));
  }
  CHECK(lost.up.at("activations_up") > whole.up.at("activations_up"));  // step 2's again
}

TEST_CASE("pipelining: a server that goes down between requests is reached again at the next one") {
  constexpr int steps = 3;
  const auto whole = run(1, steps);
  // Step 1's backward is answered, then the server's node is down: step 2's forward would be
  // lost without an answer if the client sent it.
  const auto vanished = run(1, steps, 0, gt::QuantScheme::int8, 1);
  REQUIRE(vanished.losses.size() == whole.losses.size());
  for (size_t i = 0; i < whole.losses.size(); ++i) CHECK(vanished.losses[i] == whole.losses[i]);
  for (const auto& [name, t] : whole.adapters) {
    const auto& tensor_name = name;
    CAPTURE(tensor_name);
    CHECK(torch::equal(t, vanished.adapters.at(name)));
  }
}
