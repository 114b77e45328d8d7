// See run_client.hpp.
#include "apps/run_client.hpp"

#include <chrono>
#include <cmath>

#include "actors/client.hpp"
#include "common/error.hpp"
#include "data/lm_dataset.hpp"

namespace gt::cli {

ActorConfig::ActorConfig() {
  register_protocol(*this);
  // Work sharing: CAF's default work-stealing workers poll when idle and took
  // 9-14% of a training step from the tensor compute on 2 cores (docs/performance.md).
  set("scheduler.policy", caf::atom("sharing"));
  load<caf::io::middleman>();
}

std::string run_client(caf::actor_system& sys, const RunConfig& cfg, ClientSide& c,
                       server_actor server, bool show_progress) {
  ClientPlan plan;
  plan.name = cfg.run.name;
  plan.strategy = to_string(cfg.strategy.kind);
  plan.config_toml = to_toml(cfg);
  plan.steps = planned_steps(cfg, c.train->size());
  plan.batch = cfg.training.batch;
  plan.eval_every = cfg.training.eval_every;
  plan.seed = cfg.training.seed;
  plan.show_progress = show_progress;
  auto split_client = std::make_shared<SplitClient>(c.seg, c.optimizer, c.options);
  auto client = sys.spawn(client_behavior, split_client, c.train, c.valid, plan, server,
                          std::make_shared<WireStats>());
  caf::scoped_actor self{sys};
  std::string results, failure;
  self->request(client, caf::infinite, train_atom_v)
      .receive([&](std::string& json) { results = std::move(json); },
               [&](caf::error& err) { failure = describe(err); });
  if (!failure.empty()) throw Error("run failed: " + failure);
  return results;
}

std::string run_centralized(const RunConfig& cfg, ClientSide& c, bool show_progress) {
  CentralizedTrainer trainer(c.seg, c.optimizer, cfg.optimizer.grad_clip);
  WireStats stats;
  RunLog log;
  const std::string link = cfg.run.name + "-server";
  auto evaluate = [&] {
    double sum = 0;
    int64_t tokens = 0;
    for (size_t start = 0; start < c.valid->size(); start += 32) {
      std::vector<size_t> idx;
      for (size_t i = start; i < std::min(c.valid->size(), start + 32); ++i) idx.push_back(i);
      auto [s, t] = trainer.eval_loss(c.valid->batch(idx));
      sum += s;
      tokens += t;
    }
    EvalRecord r{trainer.steps_done(), tokens ? sum / tokens : 0, 0, tokens};
    r.perplexity = std::exp(r.loss);
    log.add_eval(r);
  };
  const auto steps = planned_steps(cfg, c.train->size());
  const auto start = std::chrono::steady_clock::now();
  evaluate();
  std::unique_ptr<Progress> progress;
  if (show_progress) progress = std::make_unique<Progress>(cfg.run.name, steps);
  auto order = epoch_order(c.train->size(), cfg.training.seed, 0);
  size_t cursor = 0;
  int64_t epoch = 0;
  for (int64_t step = 1; step <= steps; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<size_t> idx;
    while (static_cast<int64_t>(idx.size()) < cfg.training.batch) {
      if (cursor == order.size())
        order = epoch_order(c.train->size(), cfg.training.seed, ++epoch), cursor = 0;
      idx.push_back(order[cursor++]);
    }
    auto out = trainer.step(c.train->batch(idx), stats, link);
    StepRecord rec;
    rec.step = step;
    rec.loss = out.loss;
    rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log.add_step(rec, stats);
    if (progress) progress->update(step, "loss " + std::to_string(out.loss).substr(0, 5));
    if (cfg.training.eval_every > 0 && step % cfg.training.eval_every == 0 && step < steps)
      evaluate();
  }
  if (progress) progress->finish();
  evaluate();
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return log.to_json(to_toml(cfg), stats, wall);
}

}  // namespace gt::cli
