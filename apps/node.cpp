// gtune node: one party in its own process. The server publishes its actor on
// a TCP port through CAF's middleman; a client connects to it and runs its plan,
// with its scheduler beside it or joining a scheduler node that drives several.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "actors/attacker.hpp"
#include "actors/emulator_builder.hpp"
#include "actors/scheduler.hpp"
#include "actors/server.hpp"
#include "apps/attacker_side.hpp"
#include "apps/commands.hpp"
#include "apps/node_parts.hpp"
#include "apps/run_plan.hpp"
#include "apps/run_report.hpp"
#include "apps/service_lifetime.hpp"
#include "common/error.hpp"

namespace gt::cli {
namespace {

// Every party's peers are held to a message size (server.max_message_mb, `factor` times it):
// a larger one is hung up on before it is read.
NetworkOptions limited(NetworkOptions net, const RunConfig& cfg, int64_t factor = 1) {
  net.max_message_bytes = static_cast<size_t>(factor * (cfg.server.max_message_mb << 20));
  return net;
}

void run_server(const NodeOptions& opt) {
  auto cfg = opt.run.load();
  auto [host, port] = host_port(opt.listen, "--listen");
  opt.network.check(host, "--listen");
  auto metrics = std::make_shared<Metrics>();
  ActorConfig acfg;
  opt.network.configure(acfg);
  caf::actor_system sys{acfg};
  auto options = server_options(cfg);
  options.metrics = metrics;
  if (const auto out = !opt.out.empty() ? opt.out : cfg.run.out; !out.empty())
    options.plugged_dir = out;
  const AttackerLink attacker(sys, opt, cfg);
  options.tap = attacker.actor();  // a curious model owner copies what it receives
  if (options.tap)
    spdlog::info("server: every message received is copied to the attacker at {}", opt.attacker);
  auto server = sys.spawn(configured_server_behavior, make_server_side(cfg, "server"),
                          std::make_shared<WireStats>(), options);
  auto network = opt.network;  // over TLS, messages past the limit are refused unread
  network.max_message_bytes = static_cast<size_t>(options.limits.max_message_bytes);
  const auto bound =
      publish_server(server, network, host, port, [metrics](const HandshakeFailure& f) {
        metrics->add_refused("connection", f.category == "too_large" ? "too_large" : "tls");
      });
  const auto metrics_server = opt.metrics.serve(metrics);  // once the node is up
  write_port_file(opt.port_file, bound);
  wait_for_signal();
  spdlog::info("server: shutting down");
  caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
  exit_if_shutdown_hangs("server");
}

// The curious model owner's attacker: fits its attacks, then attacks what the server's tap
// sends it; scores what clients in an audit send their truths for. On SIGTERM it writes
// attacks.json (to --out) and prints the best score of each attack.
void run_attacker(const NodeOptions& opt) {
  auto cfg = opt.run.load();
  auto [host, port] = host_port(opt.listen, "--listen");
  opt.network.check(host, "--listen");
  const auto out = !opt.out.empty() ? opt.out : cfg.run.out;
  auto metrics = std::make_shared<Metrics>();
  auto eavesdropper = make_attacker_side(cfg, !opt.run.quiet);
  ActorConfig acfg;
  opt.network.configure(acfg);
  caf::actor_system sys{acfg};
  auto attacker = sys.spawn<caf::detached>(attacker_behavior, eavesdropper, metrics);
  // Each tap message carries a request and its reply: room for both at the server's limit.
  const auto bound = publish_party(attacker, "attacker", limited(opt.network, cfg, 3), host, port,
                                   [metrics](auto&) { metrics->add_refused("connection", "tls"); });
  const auto metrics_server = opt.metrics.serve(metrics);
  write_port_file(opt.port_file, bound);
  wait_for_signal();
  const auto report = ask_report(sys, attacker);
  caf::anon_send_exit(attacker, caf::exit_reason::user_shutdown);
  if (report.empty()) throw Error("the attacker gave no report");
  if (!out.empty()) {
    std::filesystem::create_directories(out);
    std::ofstream(out + "/attacks.json") << nlohmann::json::parse(report).dump(1) << "\n";
    spdlog::info("attacker: wrote {}/attacks.json", out);
  }
  std::printf("%s\n", report.c_str());
  exit_if_shutdown_hangs("attacker");
}

// The model owner's emulator builder: builds each offline design's emulator on the first
// request and serves it in resumable chunks.
void run_builder(const NodeOptions& opt) {
  auto cfg = opt.run.load();
  auto [host, port] = host_port(opt.listen, "--listen");
  opt.network.check(host, "--listen");
  const auto out = !opt.out.empty() ? opt.out : cfg.run.out;
  auto metrics = std::make_shared<Metrics>();
  ActorConfig acfg;
  opt.network.configure(acfg);
  caf::actor_system sys{acfg};
  auto builder = sys.spawn<caf::detached>(emulator_builder_behavior,
                                          make_builder_side(cfg, transfer_dir(cfg, out)),
                                          std::make_shared<std::vector<EmulatorReport>>());
  const auto bound = publish_party(builder, "builder", limited(opt.network, cfg), host, port,
                                   [metrics](auto&) { metrics->add_refused("connection", "tls"); });
  const auto metrics_server = opt.metrics.serve(metrics);
  write_port_file(opt.port_file, bound);
  wait_for_signal();
  spdlog::info("builder: shutting down");
  caf::anon_send_exit(builder, caf::exit_reason::user_shutdown);
  exit_if_shutdown_hangs("builder");
}

// results.json, whole or not at all.
void write_results(const std::string& dir, const std::string& results) {
  std::filesystem::create_directories(dir);
  const auto path = dir + "/results.json";
  {
    std::ofstream out(path + ".tmp");
    out << results << "\n";
    if (!out) throw error_at(path, "cannot write");
  }
  std::filesystem::rename(path + ".tmp", path);
}

// The operator's scheduler as a node: waits for scheduler.clients client nodes to join, runs
// the plan over them (FedAvg across their processes) and writes results.json. A client lost
// mid-run may come back under its name within network.reconnect_seconds when clients keep
// checkpoints; otherwise its loss fails the run.
void run_scheduler_node(const NodeOptions& opt) {
  auto cfg = opt.run.load();
  auto [host, port] = host_port(opt.listen, "--listen");
  opt.network.check(host, "--listen");
  if (plan_uses(cfg, StrategyKind::centralized))
    throw Error(
        "node --role scheduler: the centralized baseline runs in one place (gtune simulate)");
  const auto out = !opt.out.empty() ? opt.out : cfg.run.out;
  auto metrics = std::make_shared<Metrics>();
  ActorConfig acfg;
  opt.network.configure(acfg);
  caf::actor_system sys{acfg};
  auto plan = scheduler_plan(cfg, uses_emulators(cfg), !opt.run.quiet);
  plan.clients = static_cast<size_t>(cfg.scheduler.clients);
  plan.make_phases = [cfg](int64_t samples) { return phase_orders(cfg, size_t(samples)); };
  if (cfg.run.checkpoint_dir.empty())
    plan.no_rejoin = "without run.checkpoint_dir a client cannot resume, so the run cannot go on";
  else if (cfg.network.reconnect_seconds <= 0)
    plan.no_rejoin = "network.reconnect_seconds = 0 leaves it no time to join again";
  else
    plan.rejoin_patience = std::chrono::seconds(cfg.network.reconnect_seconds);
  const auto switchable = plan.switchable;
  auto scheduler =
      sys.spawn(scheduler_behavior, plan, std::vector<client_actor>{}, std::vector<std::string>{});
  const auto bound = publish_party(scheduler, "scheduler", limited(opt.network, cfg), host, port,
                                   [metrics](auto&) { metrics->add_refused("connection", "tls"); });
  const auto metrics_server = opt.metrics.serve(metrics);
  const AttackerLink attacker(sys, opt, cfg);
  if (attacker.actor()) {  // its scores feed scheduler.attack_threshold
    caf::anon_send(attacker.actor(), watch_atom_v, scheduler);
    spdlog::info("scheduler: the attacker at {} reports its scores here", opt.attacker);
  }
  write_port_file(opt.port_file, bound);
  std::string results;
  try {
    results = run_scheduler(sys, scheduler, cfg.scheduler.control, switchable);
  } catch (...) {
    caf::anon_send_exit(scheduler, caf::exit_reason::user_shutdown);
    throw;
  }
  caf::anon_send_exit(scheduler, caf::exit_reason::user_shutdown);
  print_summary(results);
  if (!out.empty()) {
    write_results(out, results);
    std::printf("results   %s/results.json\n", out.c_str());
  }
  opt.metrics.hold(metrics_server);
}

}  // namespace

void add_node(CLI::App& app) {
  auto opt = std::make_shared<NodeOptions>();
  auto* cmd = app.add_subcommand(
      "node",
      "Run one party (server, emulator builder, attacker, scheduler or client) in this process");
  cmd->add_option("--role", opt->role, "which party this process is")
      ->required()
      ->check(CLI::IsMember({"server", "builder", "attacker", "scheduler", "client"}));
  opt->run.add_to(*cmd);
  cmd->add_option("--listen", opt->listen,
                  "server, builder, attacker, scheduler: HOST:PORT to listen on (port 0 = any free "
                  "port)")
      ->capture_default_str();
  cmd->add_option("--port-file", opt->port_file,
                  "server, builder, attacker, scheduler: write the bound port to this file");
  cmd->add_option("--connect", opt->connect, "client: the server's HOST:PORT");
  cmd->add_option("--builder", opt->builder,
                  "client: the emulator builder's HOST:PORT (plans with offsite/offline)");
  cmd->add_option("--scheduler", opt->scheduler,
                  "client: join the scheduler node at HOST:PORT, which runs the plan "
                  "(scheduler.clients may be > 1); without it the scheduler runs beside the "
                  "client");
  cmd->add_option("--shard", opt->shard,
                  "client with --scheduler: be client I of scheduler.clients as in `gtune "
                  "simulate` (named <run.name>-I, every scheduler.clients-th training example "
                  "from the I-th)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--wait", opt->wait_seconds,
                  "client, and any node with --attacker: keep trying to reach each peer for up "
                  "to this many seconds at start (backoff) instead of failing at once, for nodes "
                  "started together or restarted while a peer restarts")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--attacker", opt->attacker,
                  "server: copy every message received to the attacker at HOST:PORT (a curious "
                  "model owner); client: send it the true tokens to score (an audit); "
                  "scheduler: take its scores (scheduler.attack_threshold)");
  cmd->add_option(
      "--out", opt->out,
      "client: directory for results.json and adapters.safetensors; scheduler: "
      "results.json of all clients; builder: its emulators go to "
      "<out>/transfers/builder (or emulator.work_dir); attacker: attacks.json; server: "
      "each client's plugged adapters (offline designs), <out>/plugged-<client>.safetensors");
  opt->metrics.add_to(*cmd);
  opt->network.add_to(*cmd);
  cmd->callback([opt] {
    if (opt->role == "server") return run_server(*opt);
    if (opt->role == "builder") return run_builder(*opt);
    if (opt->role == "attacker") return run_attacker(*opt);
    if (opt->role == "scheduler") return run_scheduler_node(*opt);
    if (opt->connect.empty()) throw Error("node --role client needs --connect HOST:PORT");
    run_client_node(*opt);
  });
}

}  // namespace gt::cli
