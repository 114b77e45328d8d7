// See run_plan.hpp.
#include "apps/run_plan.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "actors/scheduler.hpp"
#include "common/error.hpp"
#include "control/address.hpp"
#include "control/control_api.hpp"
#include "data/lm_dataset.hpp"
#include "strategies/centralized.hpp"
#include "strategies/run_log.hpp"

namespace gt::cli {
namespace {

// The HTTP control API, answering through the scheduler actor.
std::unique_ptr<HttpServer> start_control(caf::actor_system& sys, const std::string& address,
                                          scheduler_actor scheduler,
                                          const std::set<std::string>& switchable) {
  if (address.empty()) return nullptr;
  auto at = parse_host_port(address, "scheduler.control");
  ControlActions actions;
  actions.strategies.assign(switchable.begin(), switchable.end());
  auto ask = [&sys, scheduler](auto... msg) {
    caf::scoped_actor self{sys};
    std::string out;
    self->request(scheduler, std::chrono::seconds(10), msg...)
        .receive([&](std::string& reply) { out = std::move(reply); },
                 [&](caf::error& err) { out = "scheduler: " + describe(err); });
    return out;
  };
  actions.status = [ask] { return nlohmann::json::parse(ask(status_atom_v)); };
  actions.switch_to = [ask](const std::string& to) { return ask(switch_atom_v, to); };
  actions.pause = [ask] { return ask(pause_atom_v); };
  actions.resume = [ask] { return ask(resume_atom_v); };
  try {
    auto server = std::make_unique<HttpServer>(at.host, at.port, control_routes(actions));
    std::printf("control   %s (gtune ctl status|switch|pause|resume --address %s:%u)\n",
                server->url().c_str(), at.host.c_str(), unsigned(server->port()));
    std::fflush(stdout);
    return server;
  } catch (const Error& e) {
    spdlog::warn("control API off: {}", e.what());  // the run itself does not need it
    return nullptr;
  }
}

}  // namespace

ActorConfig::ActorConfig() {
  register_protocol(*this);
  // Work sharing: CAF's default work-stealing workers poll when idle and took
  // 9-14% of a training step from the tensor compute on 2 cores (docs/performance.md).
  set("scheduler.policy", caf::atom("sharing"));
  // Peers of another protocol version are refused in CAF's handshake, before any message.
  set("middleman.app-identifiers",
      std::vector<std::string>{"gtune-protocol-" + std::to_string(kProtocolVersion)});
  // A peer that sends nothing (not even heartbeats) for a minute is gone: its requests fail
  // and a client node reconnects, instead of waiting out the 10-minute reply timeout.
  set("middleman.heartbeat-interval", caf::timespan{std::chrono::seconds(5)});
  set("middleman.connection-timeout", caf::timespan{std::chrono::seconds(60)});
  load<caf::io::middleman>();
}

ClientParts client_parts(const RunConfig& cfg, const ClientSide& side, const PlanRun& run) {
  ClientParts parts;
  parts.model = side.trainer;
  parts.pretrained = side.pretrained;
  parts.settings = strategy_settings(cfg);
  parts.train = side.train;
  parts.valid = side.valid;
  parts.server = run.server;
  parts.builder = run.builder;
  parts.stats = std::make_shared<WireStats>();
  parts.audit = run.audit;
  parts.metrics = run.metrics;
  parts.reconnector = run.reconnector;
  parts.builder_reconnector = run.builder_reconnector;
  return parts;
}

SchedulerPlan scheduler_plan(const RunConfig& cfg, bool emulators, bool show_progress) {
  SchedulerPlan plan;
  plan.config_toml = to_toml(cfg);
  plan.fedavg = cfg.scheduler.fedavg;
  plan.budget_bytes = cfg.scheduler.budget_bytes;
  plan.fallback = to_string(cfg.scheduler.fallback);
  plan.attack_threshold = cfg.scheduler.attack_threshold;
  for (const char* s : {"split", "online", "gradfree", "offsite", "offline", "privatize"})
    if (!needs_emulator(s) || emulators) plan.switchable.insert(s);
  plan.show_progress = show_progress;
  if (!cfg.run.checkpoint_dir.empty()) {  // a restarted run goes on where it was
    plan.checkpoint = std::make_shared<const SchedulerCheckpoint>(cfg.run.checkpoint_dir,
                                                                  training_fingerprint(cfg));
    plan.resume = plan.checkpoint->load();
  }
  return plan;
}

std::string run_scheduler(caf::actor_system& sys, const scheduler_actor& scheduler,
                          const std::string& control, const std::set<std::string>& switchable) {
  auto control_api = start_control(sys, control, scheduler, switchable);
  caf::scoped_actor self{sys};
  std::string results, failure;
  self->request(scheduler, caf::infinite, run_atom_v)
      .receive([&](std::string& json) { results = std::move(json); },
               [&](caf::error& err) { failure = reason_of(err); });
  if (!failure.empty()) throw Error("run failed: " + failure);
  return results;
}

std::string execute_plan(caf::actor_system& sys, const RunConfig& cfg, const PlanRun& run) {
  auto& sides = *run.clients;
  std::vector<client_actor> clients;
  std::vector<std::string> names;
  auto plan = scheduler_plan(cfg, bool(run.builder), run.show_progress);
  for (auto& side : sides) {
    clients.push_back(sys.spawn(client_behavior, client_parts(cfg, side, run),
                                client_plan(cfg, side, run.work_dir)));
    names.push_back(side.name);
    plan.client_weights.push_back(double(side.train->size()));
  }
  plan.phases = phase_orders(cfg, sides.front().train->size());
  const auto switchable = plan.switchable;
  auto scheduler = sys.spawn(scheduler_behavior, plan, clients, names);
  if (run.audit) caf::anon_send(run.audit, watch_atom_v, scheduler);  // live attack scores
  std::string results, failure;
  try {
    results = run_scheduler(sys, scheduler, cfg.scheduler.control, switchable);
  } catch (const Error& e) {
    failure = e.what();
  }
  for (auto& c : clients) caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(scheduler, caf::exit_reason::user_shutdown);
  if (!failure.empty()) throw Error(failure);
  return results;
}

std::string run_centralized(const RunConfig& cfg, ClientSide& c, bool show_progress) {
  CentralizedTrainer trainer(c.seg(), c.trainer->optimizer, cfg.optimizer.grad_clip);
  WireStats stats;
  RunLog log;
  const std::string link = c.name + "-server";
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
  log.begin_phase(0, "centralized", stats);
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
    rec.strategy = "centralized";
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
  log.end_phase(stats, wall);
  auto client = log.to_json(stats, wall);
  client["client"] = c.name;
  return combine_results(to_toml(cfg), {client}, {}, wall).dump(1);
}

}  // namespace gt::cli
