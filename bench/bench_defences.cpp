// Benchmark: what each privacy defence costs per training step, as a ratio to undefended
// online (issue 15), all variants interleaved in one run on the same batches of the run's
// data. Every party is built as `gtune simulate` builds it (apps/parties.*) from one run
// configuration (default config/examples/online.toml) plus each variant's overrides; every
// message goes through encode/decode, and the server's work is counted in the step.
//   undefended          online with int8 a1, no privacy objective
//   dcor                + token-level distance correlation (strategy.dcor_lambda = 0.1)
//   defaults            the configuration as written (online.toml: dCor, adversary, decoys)
//   g2-noise            defaults + Gaussian noise on g2 (strategy.g2_noise = 3)
//   a1-noise            defaults + Gaussian noise on a1 (strategy.noise_std = 0.5)
//   local-backward      defaults, g1 estimated through the emulator (strategy.backward = local)
//   clusters            defaults + coarsened inputs (privacy.token_clusters = 512)
//   privatize           one step of the privatize phase (the client alone, emulator as backbone)
// Steady state: the client's inverter is fitted on the first batch only
// (privacy.adversary_fit_steps = 1), then frozen, as in the online phase after privatizing.
// The privatize phase's one-off cost is its steps times its step time, plus the emulator.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "apps/parties.hpp"
#include "bench/bench_util.hpp"
#include "common/error.hpp"
#include "config/run_config.hpp"
#include "models/emulator.hpp"
#include "protocols/codec.hpp"
#include "strategies/client_channel.hpp"

namespace {

using gt::bench::Clock;

struct Options {
  std::string config = GT_SOURCE_DIR "/config/examples/online.toml";
  int steps = 10;  // timed steps per variant
  int warmup = 2;  // untimed steps per variant first (allocator, inverter fit)
  std::vector<std::string> sets;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw gt::Error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--config")
      o.config = value();
    else if (a == "--steps")
      o.steps = std::stoi(value());
    else if (a == "--warmup")
      o.warmup = std::stoi(value());
    else if (a == "--set")
      o.sets.push_back(value());
    else
      throw gt::Error(
          "usage: bench_defences [--config RUN.toml] [--steps N] [--warmup N] "
          "[--set section.key=value]...");
  }
  if (o.steps < 1 || o.warmup < 0) throw gt::Error("--steps >= 1 and --warmup >= 0 required");
  return o;
}

struct Variant {
  std::string name, strategy;
  std::vector<std::string> sets;
};

const std::vector<Variant>& variants() {
  static const std::vector<Variant> v{
      {"undefended", "online", {"strategy.dcor_lambda=0", "privacy.adversary_weight=0"}},
      {"dcor", "online", {"strategy.dcor_lambda=0.1", "privacy.adversary_weight=0"}},
      {"defaults", "online", {}},
      {"g2-noise", "online", {"strategy.g2_noise=3"}},
      {"a1-noise", "online", {"strategy.noise_std=0.5"}},
      {"local-backward", "online", {"strategy.backward=local"}},
      {"clusters", "online", {"privacy.token_clusters=512"}},
      {"privatize", "privatize", {}},
  };
  return v;
}

template <class T>
T wire(const T& msg, int64_t& bytes) {
  const auto encoded = gt::encode(msg);
  bytes += int64_t(encoded.bytes.size());
  return gt::decode(encoded);
}

// A variant's client, with its own adapters and optimizer, and its server session.
struct Party {
  Variant variant;
  gt::cli::ClientSide side;
  std::unique_ptr<gt::ClientChannel> channel;
  std::vector<double> seconds;
  int64_t up = 0, down = 0, steps = 0;
};

Party make_party(const gt::RunConfig& base, const Variant& v, gt::SplitServer& server,
                 const gt::BuilderParts& builder) {
  auto cfg = base;
  gt::apply_overrides(cfg, v.sets);
  Party p{v, gt::cli::make_client_side(cfg), nullptr, {}};
  const auto settings = gt::cli::strategy_settings(cfg);
  gt::Backbone emulator{nullptr};
  const auto recipe = gt::emulator_recipe(v.strategy, settings);
  if (!recipe.empty())
    emulator = gt::build_emulator(builder.full, builder.recipes.at(recipe).emulator);
  p.channel = std::make_unique<gt::ClientChannel>(
      p.side.trainer, gt::make_client_strategy(v.strategy, p.side.trainer, settings, emulator));
  int64_t ignored = 0;
  p.channel->set_session(server.open(wire(p.channel->hello(v.name), ignored)).header.session);
  return p;
}

// One training step, client and server, every message through the codec.
void step(Party& p, gt::SplitServer& server, const gt::LmBatch& batch) {
  auto next = p.channel->begin_step({batch, {}});
  while (true) {
    if (std::holds_alternative<gt::StepOutcome>(next)) break;
    if (auto* f = std::get_if<gt::ForwardRequest>(&next)) {
      auto reply = server.forward(wire(*f, p.up));
      next = p.channel->on_reply(wire(reply, p.down));
    } else if (auto* b = std::get_if<gt::BackwardRequest>(&next)) {
      auto reply = server.backward(wire(*b, p.up));
      next = p.channel->on_reply(wire(reply, p.down));
    } else {
      throw gt::Error("bench_defences: pipelined steps are not benchmarked here");
    }
  }
  ++p.steps;
}

}  // namespace

int main(int argc, char** argv) try {
  const auto o = parse(argc, argv);
  torch::set_num_threads(1);
  auto cfg = gt::load_run_config(o.config);
  gt::apply_overrides(cfg, {"privacy.adversary_fit_steps=1", "strategy.micro_batches=1",
                            "offsite.distill_steps=0", "offline.distill_steps=0"});
  gt::apply_overrides(cfg, o.sets);
  std::printf(
      "bench_defences: %s, %s; one torch thread; %d warm-up + %d timed steps per variant, "
      "interleaved\nmachine load (1/5/15 min): %s\n",
      o.config.c_str(), gt::bench::now_string().c_str(), o.warmup, o.steps,
      gt::bench::loadavg().c_str());
  auto server = gt::cli::make_server_side(cfg, "server");
  const auto builder = gt::cli::make_builder_side(cfg, "/tmp");
  std::vector<Party> parties;
  for (const auto& v : variants()) parties.push_back(make_party(cfg, v, *server, builder));
  const auto& data = *parties.front().side.train;
  const auto batch_size = size_t(cfg.training.batch);
  for (int s = 0; s < o.warmup + o.steps; ++s) {
    std::vector<size_t> rows;
    for (size_t r = 0; r < batch_size; ++r)
      rows.push_back((size_t(s) * batch_size + r) % data.size());
    const auto batch = data.batch(rows);
    for (auto& p : parties) {
      const auto t0 = Clock::now();
      step(p, *server, batch);
      if (s >= o.warmup) p.seconds.push_back(gt::bench::seconds_since(t0));
    }
  }
  const double base = gt::bench::median(parties.front().seconds);
  std::printf(
      "\n| variant | median s/step | x undefended | up B/step | down B/step |\n"
      "|---|---|---|---|---|\n");
  for (const auto& p : parties) {
    const double s = gt::bench::median(p.seconds);
    std::printf("| %s | %.3f | %.2f | %lld | %lld |\n", p.variant.name.c_str(), s, s / base,
                static_cast<long long>(p.up / p.steps), static_cast<long long>(p.down / p.steps));
  }
  const double privatize = gt::bench::median(parties.back().seconds);
  std::printf(
      "\nThe privatize phase once: %lld steps x %.3f s = %.1f s, as much as %.0f "
      "undefended online steps (plus the emulator's download).\n",
      static_cast<long long>(cfg.privacy.privatize_steps), privatize,
      double(cfg.privacy.privatize_steps) * privatize,
      double(cfg.privacy.privatize_steps) * privatize / base);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_defences: %s\n", e.what());
  return 1;
}
