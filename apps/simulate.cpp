// gtune simulate: a multi-party fine-tuning run on one machine. The client and
// server are actors in one actor system (default) or, with --processes, each
// in its own process talking over 127.0.0.1 through CAF's middleman.
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "actors/attacker.hpp"
#include "actors/emulator_builder.hpp"
#include "actors/server.hpp"
#include "apps/attacker_side.hpp"
#include "apps/child_process.hpp"
#include "apps/commands.hpp"
#include "apps/generation_eval.hpp"
#include "apps/metrics_options.hpp"
#include "apps/run_audit.hpp"
#include "apps/run_options.hpp"
#include "apps/run_plan.hpp"
#include "apps/run_report.hpp"
#include "apps/simulation.hpp"
#include "apps/task_eval.hpp"
#include "common/error.hpp"
#include "models/emulator.hpp"
#include "models/safetensors.hpp"
#include "strategies/emulator_distillation.hpp"

namespace gt::cli {
namespace {

struct SimulateOptions {
  RunOptions run;
  bool processes = false;
  std::string out;
  MetricsOptions metrics;
};

// "online" or "offline 30 steps -> online 30 steps, 2 clients, FedAvg".
std::string plan_text(const RunConfig& cfg) {
  const auto plan = gt::run_plan(cfg);
  std::string out;
  if (plan.size() == 1) {
    out = std::string("strategy ") + to_string(plan[0].strategy);
  } else {
    for (const auto& p : plan)
      out += (out.empty() ? "plan " : " -> ") + std::string(to_string(p.strategy)) + " " +
             std::to_string(p.steps > 0 ? p.steps : p.epochs) +
             (p.steps > 0 ? " steps" : " epochs");
  }
  if (cfg.scheduler.clients > 1) out += ", " + std::to_string(cfg.scheduler.clients) + " clients";
  if (cfg.scheduler.fedavg) out += ", FedAvg";
  if (cfg.scheduler.budget_bytes > 0)
    out += ", budget " + std::to_string(cfg.scheduler.budget_bytes) + " bytes then " +
           to_string(cfg.scheduler.fallback);
  return out;
}

void print_plan(const RunConfig& cfg, const ClientSide& c, const char* mode) {
  std::printf("run       %s: %s, %s\n", cfg.run.name.c_str(), plan_text(cfg).c_str(), mode);
  std::printf(
      "model     %s (%s, %lld layers), cut n_in=%lld n_out=%lld, %s training, %lld trainable "
      "parameters\n",
      cfg.model.path.c_str(), c.seg().cfg.model_type.c_str(),
      static_cast<long long>(c.seg().cfg.num_layers), static_cast<long long>(cfg.model.n_in),
      static_cast<long long>(cfg.model.n_out), cfg.model.train.c_str(),
      static_cast<long long>(c.trainable_parameters));
  if (plan_uses(cfg, StrategyKind::online) && cfg.strategy.backward == "local")
    std::printf("wire      online: a1 %s, a2 %s, no gradients (local backward); dcor lambda %g\n",
                cfg.strategy.quantize_a1.c_str(), cfg.strategy.quantize_a2.c_str(),
                cfg.strategy.dcor_lambda);
  else if (plan_uses(cfg, StrategyKind::online))
    std::printf("wire      online: a1 %s, a2 %s, g2 %s, g1 %s; dcor lambda %g\n",
                cfg.strategy.quantize_a1.c_str(), cfg.strategy.quantize_a2.c_str(),
                cfg.strategy.quantize_g2.c_str(), cfg.strategy.quantize_g1.c_str(),
                cfg.strategy.dcor_lambda);
  std::printf("data      %s per client; %lld steps of %lld per client\n", c.data_summary.c_str(),
              static_cast<long long>(planned_steps(cfg, c.train->size())),
              static_cast<long long>(cfg.training.batch));
  std::fflush(stdout);
}

bool needs_builder(const RunConfig& cfg) {
  return plan_uses(cfg, StrategyKind::offsite) || plan_uses(cfg, StrategyKind::offline) ||
         plan_uses(cfg, StrategyKind::privatize);
}

// IP leakage and utility of every emulator the builder made, on the first client's held-out set.
nlohmann::json emulator_reports(const std::vector<EmulatorReport>& reports,
                                const BuilderParts& builder, const ClientSide& client) {
  auto out = nlohmann::json::array();
  for (const auto& r : reports) {
    auto emulator = load_emulator(r.path, client.seg().cfg, client.seg().dtype).backbone;
    emulator->to(client.seg().device());  // as the client holds it
    int64_t memory = 0;  // what the client holds in memory (int8 weights arrive dequantized)
    for (const auto& p : emulator->parameters()) memory += p.numel() * p.element_size();
    const auto& full = builder.full;  // pretrained adapters and the real backbone
    out.push_back(
        {{"strategy", r.strategy},
         {"description", r.description},
         {"file_bytes", r.file_bytes},
         {"memory_bytes", memory},
         {"distill_mse", r.distill_mse},
         {"full_pretrained_loss", lm_loss_through(full, full.backbone, *client.valid)},
         {"emulator_pretrained_loss", lm_loss_through(full, emulator, *client.valid)},
         {"full_tuned_loss", lm_loss_through(client.seg(), full.backbone, *client.valid)},
         {"emulator_tuned_loss", lm_loss_through(client.seg(), emulator, *client.valid)}});
  }
  return out;
}

std::string run_in_process(const RunConfig& cfg, std::vector<ClientSide>& clients,
                           const std::string& out, bool progress,
                           const std::shared_ptr<Metrics>& metrics) {
  auto split_server = make_server_side(cfg, "server");
  auto reports = std::make_shared<std::vector<EmulatorReport>>();
  std::optional<BuilderParts> builder;
  std::string results, attacks;
  std::shared_ptr<Eavesdropper> eavesdropper;
  if (cfg.attacker.enabled) eavesdropper = make_attacker_side(cfg, progress);
  {
    ActorConfig acfg;
    caf::actor_system sys{acfg};
    attacker_actor attacker;
    if (eavesdropper) attacker = sys.spawn<caf::detached>(attacker_behavior, eavesdropper, metrics);
    auto options = server_options(cfg);
    options.plugged_dir = out;  // plugged-<client>.safetensors, as the model owner keeps them
    options.tap = attacker;
    auto server =
        sys.spawn(configured_server_behavior, split_server, std::make_shared<WireStats>(), options);
    PlanRun run;
    run.audit = attacker;
    run.clients = &clients;
    run.server = server;
    run.work_dir = transfer_dir(cfg, out);
    run.show_progress = progress;
    run.control = cfg.scheduler.control;
    run.metrics = metrics;
    if (needs_builder(cfg)) {
      builder = make_builder_side(cfg, run.work_dir);
      run.builder = sys.spawn<caf::detached>(emulator_builder_behavior, *builder, reports);
    }
    results = execute_plan(sys, cfg, run);
    if (attacker) attacks = ask_report(sys, attacker);
    caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
    if (attacker) caf::anon_send_exit(attacker, caf::exit_reason::user_shutdown);
    if (run.builder) caf::anon_send_exit(run.builder, caf::exit_reason::user_shutdown);
  }  // every actor has finished: their state can be read
  if (!attacks.empty()) {
    auto j = nlohmann::json::parse(results);
    j["attacks"] = nlohmann::json::parse(attacks);
    results = j.dump(1);
  }
  // A temporary transfer directory goes once the results are made (the emulator reports read
  // the emulators in it), whether or not making them succeeds.
  struct RemoveOnExit {
    std::filesystem::path dir;
    ~RemoveOnExit() {
      std::error_code ignored;
      if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
    }
  } temporary;
  if (cfg.emulator.work_dir.empty() && out.empty())
    temporary.dir = std::filesystem::path(transfer_dir(cfg, out)).parent_path();
  auto j = nlohmann::json::parse(results);
  if (!reports->empty()) j["emulators"] = emulator_reports(*reports, *builder, clients.front());
  const auto& attacks_cfg = cfg.attacker.attacks;
  if (needs_builder(cfg) && cfg.attacker.enabled &&
      std::find(attacks_cfg.begin(), attacks_cfg.end(), "membership_inference") !=
          attacks_cfg.end()) {
    if (progress) spdlog::info("attacker: membership inference on the returned adapters");
    j["membership"] =
        membership_report(cfg, clients, planned_steps(cfg, clients.front().train->size()));
  }
  return j.dump(1);
}

void run_in_processes(const SimulateOptions& opt, const std::string& out) {
  const auto common = opt.run.as_args();
  const auto port_file = out + "/server.port";
  std::filesystem::remove(port_file);
  // The client process serves the run's metrics (--metrics); the server process none.
  auto server_args =
      std::vector<std::string>{"node",        "--role",  "server",    "--listen", "127.0.0.1:0",
                               "--port-file", port_file, "--metrics", "0"};
  server_args.insert(server_args.end(), common.begin(), common.end());
  const pid_t server = spawn_self(server_args);
  // The server writes its port once it listens.
  std::string port;
  for (int i = 0; i < 600 && port.empty(); ++i) {
    std::ifstream in(port_file);
    if (!(in >> port)) port.clear(), std::this_thread::sleep_for(std::chrono::milliseconds(100));
    int status = 0;
    if (port.empty() && waitpid(server, &status, WNOHANG) == server)
      throw Error("the server process exited early");
  }
  if (port.empty()) {
    kill(server, SIGTERM);
    throw Error("the server process did not start listening within 60 s");
  }
  std::filesystem::remove(port_file);
  auto client_args = std::vector<std::string>{
      "node", "--role", "client", "--connect", "127.0.0.1:" + port, "--out", out};
  client_args.insert(client_args.end(), common.begin(), common.end());
  if (opt.run.quiet) client_args.push_back("--quiet");
  client_args.insert(client_args.end(), {"--metrics", opt.metrics.address, "--metrics-hold",
                                         std::to_string(opt.metrics.hold_seconds)});
  const int client_status = wait_child(spawn_self(client_args)).status;
  kill(server, SIGTERM);
  wait_child(server);
  if (client_status != 0)
    throw Error("the client process failed (exit status " + std::to_string(client_status) + ")");
}

void run_simulation(const SimulateOptions& opt) {
  auto cfg = opt.run.load();
  const auto out = !opt.out.empty() ? opt.out : cfg.run.out;
  if (opt.processes) {
    if (plan_uses(cfg, StrategyKind::centralized))
      throw Error("--processes: the centralized baseline runs in one place; use split or online");
    if (needs_builder(cfg) || cfg.scheduler.clients > 1)
      throw Error(
          "--processes: offsite/offline phases and several clients run in one process for now "
          "(drop --processes)");
    const auto dir =
        out.empty() ? std::filesystem::temp_directory_path() / ("gtune-" + std::to_string(getpid()))
                    : std::filesystem::path(out);
    std::filesystem::create_directories(dir);
    run_in_processes(opt, dir.string());  // the client process prints the summary
    if (out.empty())
      std::filesystem::remove_all(dir);
    else
      std::printf("results   %s/results.json, %s/adapters.safetensors\n", out.c_str(), out.c_str());
    return;
  }
  auto metrics = std::make_shared<Metrics>();
  const auto metrics_server = opt.metrics.serve(metrics);
  const auto results = simulate_in_process(cfg, out, !opt.run.quiet, metrics);
  print_summary(results.dump());
  if (!out.empty())
    std::printf("results   %s/results.json, %s/adapters.safetensors\n", out.c_str(), out.c_str());
  opt.metrics.hold(metrics_server);
}

}  // namespace

nlohmann::json simulate_in_process(const RunConfig& cfg, const std::string& out, bool progress,
                                   std::shared_ptr<Metrics> metrics) {
  std::vector<ClientSide> clients;
  for (int64_t i = 0; i < cfg.scheduler.clients; ++i)
    clients.push_back(make_client_side(cfg, i, cfg.scheduler.clients));
  const bool centralized = plan_uses(cfg, StrategyKind::centralized);
  print_plan(cfg, clients.front(),
             centralized ? "whole model in one place (no actors)"
                         : "scheduler, clients and server actors in one process");
  const auto results = centralized ? run_centralized(cfg, clients.front(), progress)
                                   : run_in_process(cfg, clients, out, progress, metrics);
  auto j = nlohmann::json::parse(results);
  if (auto tasks = evaluate_tasks(cfg, clients, progress); !tasks.is_null()) j["tasks"] = tasks;
  if (auto g = evaluate_generation(cfg, clients, progress); !g.is_null()) j["generation"] = g;
  int64_t emulator_bytes = 0;  // the largest emulator the client held
  for (const auto& e : j.value("emulators", nlohmann::json::array()))
    emulator_bytes = std::max(emulator_bytes, e["memory_bytes"].get<int64_t>());
  j["client_memory"] = client_memory(clients.front(), emulator_bytes);
  if (!out.empty()) write_outputs(out, j.dump(1), clients);
  return j;
}

void add_simulate(CLI::App& app) {
  auto opt = std::make_shared<SimulateOptions>();
  auto* cmd = app.add_subcommand("simulate",
                                 "Run a multi-party fine-tuning (client + server) on this machine");
  opt->run.add_to(*cmd);
  cmd->add_flag("--processes", opt->processes,
                "each party in its own process, talking over 127.0.0.1");
  cmd->add_option("--out", opt->out,
                  "directory for results.json and adapters.safetensors (overrides run.out)");
  opt->metrics.add_to(*cmd);
  cmd->callback([opt] { run_simulation(*opt); });
}

}  // namespace gt::cli
