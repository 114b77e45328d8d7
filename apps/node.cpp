// gtune node: one party in its own process. The server publishes its actor on
// a TCP port through CAF's middleman; a client connects to it and runs its plan.
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <thread>

#include "actors/server.hpp"
#include "apps/commands.hpp"
#include "apps/metrics_options.hpp"
#include "apps/network_options.hpp"
#include "apps/reconnector.hpp"
#include "apps/run_options.hpp"
#include "apps/run_plan.hpp"
#include "apps/run_report.hpp"
#include "common/error.hpp"

namespace gt::cli {
namespace {

std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) {
  g_stop = true;
}

struct Options {
  RunOptions run;
  std::string role, listen = "127.0.0.1:0", connect, port_file, out;
  MetricsOptions metrics;
  NetworkOptions network;
};

std::pair<std::string, uint16_t> host_port(const std::string& s, const char* option) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos)
    throw Error(std::string(option) + ": expected HOST:PORT, got '" + s + "'");
  const auto digits = s.substr(colon + 1);
  const auto bad = [&] {
    return Error(std::string(option) + ": '" + digits + "' is not a port number");
  };
  // All digits: stoul alone would take "80x" as 80, " 80" as 80 and "-1" as ULONG_MAX.
  if (digits.empty() || digits.size() > 5 ||
      digits.find_first_not_of("0123456789") != std::string::npos)
    throw bad();
  const auto port = std::stoul(digits);
  if (port > 65535) throw bad();
  return {s.substr(0, colon), static_cast<uint16_t>(port)};
}

void run_server(const Options& opt) {
  auto cfg = opt.run.load();
  auto [host, port] = host_port(opt.listen, "--listen");
  opt.network.check(host, "--listen");
  auto metrics = std::make_shared<Metrics>();
  ActorConfig acfg;
  opt.network.configure(acfg);
  caf::actor_system sys{acfg};
  auto options = server_options(cfg);
  options.metrics = metrics;
  auto server = sys.spawn(configured_server_behavior, make_server_side(cfg, "server"),
                          std::make_shared<WireStats>(), options);
  const auto bound = publish_server(server, opt.network, host, port, [metrics](auto&) {
    metrics->add_refused("connection", "tls");
  });
  const auto metrics_server = opt.metrics.serve(metrics);  // once the node is up
  if (!opt.port_file.empty()) {
    std::ofstream(opt.port_file + ".tmp") << bound << "\n";
    std::rename((opt.port_file + ".tmp").c_str(), opt.port_file.c_str());
  }
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  spdlog::info("server: shutting down");
  caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
}

void run_client_node(const Options& opt) {
  auto cfg = opt.run.load();
  auto [host, port] = host_port(opt.connect, "--connect");
  opt.network.check(host, "--connect");
  if (plan_uses(cfg, StrategyKind::offsite) || plan_uses(cfg, StrategyKind::offline) ||
      cfg.scheduler.clients > 1)
    throw Error(
        "node --role client: offsite/offline phases and several clients run in `gtune simulate` "
        "for now");
  std::vector<ClientSide> clients{make_client_side(cfg)};
  ActorConfig acfg;
  opt.network.configure(acfg);
  caf::actor_system sys{acfg};
  auto server = connect_server(sys, opt.network, host, port);
  if (!server)
    throw Error("cannot reach the server at " + opt.connect + ": " +
                connect_error_text(server.error()));
  spdlog::info("client {}: connected to {}", cfg.run.name, opt.connect);
  auto metrics = std::make_shared<Metrics>();
  const auto metrics_server = opt.metrics.serve(metrics);  // once the node is up
  const auto out = !opt.out.empty() ? opt.out : cfg.run.out;
  PlanRun run;
  run.clients = &clients;
  run.server = *server;
  run.work_dir = transfer_dir(cfg, out);
  run.control = cfg.scheduler.control;
  run.show_progress = !opt.run.quiet;
  run.metrics = metrics;
  if (cfg.network.reconnect_seconds > 0)
    run.reconnector = spawn_reconnector(
        sys, "the server at " + opt.connect,
        [&sys, &opt, host = host, port = port] {
          return connect_server(sys, opt.network, host, port);
        },
        std::chrono::seconds(cfg.network.reconnect_seconds));
  auto results = execute_plan(sys, cfg, run);
  if (run.reconnector) caf::anon_send_exit(run.reconnector, caf::exit_reason::user_shutdown);
  print_summary(results);
  if (!out.empty()) write_outputs(out, results, clients);
  opt.metrics.hold(metrics_server);
}

}  // namespace

void add_node(CLI::App& app) {
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("node", "Run one party (server or client) in this process");
  cmd->add_option("--role", opt->role, "which party this process is")
      ->required()
      ->check(CLI::IsMember({"server", "client"}));
  opt->run.add_to(*cmd);
  cmd->add_option("--listen", opt->listen,
                  "server: HOST:PORT to listen on (port 0 = any free port)")
      ->capture_default_str();
  cmd->add_option("--port-file", opt->port_file, "server: write the bound port to this file");
  cmd->add_option("--connect", opt->connect, "client: the server's HOST:PORT");
  cmd->add_option("--out", opt->out, "client: directory for results.json and adapters.safetensors");
  opt->metrics.add_to(*cmd);
  opt->network.add_to(*cmd);
  cmd->callback([opt] {
    if (opt->role == "server") return run_server(*opt);
    if (opt->connect.empty()) throw Error("node --role client needs --connect HOST:PORT");
    run_client_node(*opt);
  });
}

}  // namespace gt::cli
