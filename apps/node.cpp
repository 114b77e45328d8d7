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
#include "actors/attacker_relay.hpp"
#include "actors/emulator_builder.hpp"
#include "actors/scheduler.hpp"
#include "actors/server.hpp"
#include "apps/attacker_side.hpp"
#include "apps/commands.hpp"
#include "apps/metrics_options.hpp"
#include "apps/network_options.hpp"
#include "apps/reconnector.hpp"
#include "apps/run_options.hpp"
#include "apps/run_plan.hpp"
#include "apps/run_report.hpp"
#include "apps/service_lifetime.hpp"
#include "common/error.hpp"

namespace gt::cli {
namespace {

struct NodeOptions {
  RunOptions run;
  std::string role, listen = "127.0.0.1:0", connect, builder, attacker, scheduler, port_file, out;
  int64_t shard = -1;  // with --scheduler: which of scheduler.clients this client is; -1 = none
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

// The attacker node at --attacker, for a server (its tap), a scheduler (its scores) or a
// client (an audit: its truths), behind a relay that reaches it again after a restart (within
// network.reconnect_seconds). The relay ends with this object, before the actor system.
class AttackerLink {
 public:
  AttackerLink(caf::actor_system& sys, const NodeOptions& opt, const RunConfig& cfg) {
    if (opt.attacker.empty()) return;
    auto [host, port] = host_port(opt.attacker, "--attacker");
    opt.network.check(host, "--attacker");
    std::function<caf::expected<attacker_actor>()> connect = [&sys, &opt, host = host,
                                                              port = port] {
      return connect_party<attacker_actor>(sys, "attacker", opt.network, host, port);
    };
    auto a = connect();
    if (!a)
      throw Error("cannot reach the attacker at " + opt.attacker + ": " +
                  connect_error_text(a.error()));
    const auto where = "the attacker at " + opt.attacker;
    caf::actor reconnector;
    if (cfg.network.reconnect_seconds > 0)
      reconnector = spawn_reconnector(sys, where, any_party(connect),
                                      std::chrono::seconds(cfg.network.reconnect_seconds));
    relay_ = sys.spawn(attacker_relay, *a, reconnector, where);
  }
  AttackerLink(const AttackerLink&) = delete;
  AttackerLink& operator=(const AttackerLink&) = delete;
  ~AttackerLink() {
    if (relay_) caf::anon_send_exit(relay_, caf::exit_reason::user_shutdown);
  }
  const attacker_actor& actor() const { return relay_; }

 private:
  attacker_actor relay_;
};

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
  const auto bound = publish_party(attacker, "attacker", opt.network, host, port,
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
  const auto bound = publish_party(builder, "builder", opt.network, host, port,
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

bool uses_emulators(const RunConfig& cfg) {
  return plan_uses(cfg, StrategyKind::offsite) || plan_uses(cfg, StrategyKind::offline) ||
         plan_uses(cfg, StrategyKind::privatize) ||
         (cfg.scheduler.budget_bytes > 0 && needs_emulator(to_string(cfg.scheduler.fallback)));
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
  const auto bound = publish_party(scheduler, "scheduler", opt.network, host, port,
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

// The client this node is: with --shard I, client I of scheduler.clients as `gtune simulate`
// makes it (named <run.name>-I, every scheduler.clients-th training example from the I-th);
// otherwise run.name with all its data. The server runs the backbone: this process holds the
// adapters only.
ClientSide this_client(const RunConfig& cfg, const NodeOptions& opt) {
  constexpr bool hold_backbone = false;
  if (opt.shard < 0) return make_client_side(cfg, 0, 1, hold_backbone);
  if (opt.scheduler.empty())
    throw Error("--shard: only for a client that joins a scheduler node (--scheduler HOST:PORT)");
  if (opt.shard >= cfg.scheduler.clients)
    throw Error("--shard " + std::to_string(opt.shard) + ": the run has " +
                std::to_string(cfg.scheduler.clients) + " shard(s) (scheduler.clients), 0 to " +
                std::to_string(cfg.scheduler.clients - 1));
  return make_client_side(cfg, opt.shard, cfg.scheduler.clients, hold_backbone);
}

// A client that joined the scheduler node at --scheduler: its actor serves the scheduler's
// orders until `finish`. A scheduler lost mid-run is reached again (with run.checkpoint_dir
// and network.reconnect_seconds): the client starts over from its checkpoint with a model
// loaded afresh, as a restarted process would, and joins the restarted scheduler, which goes
// on from its own checkpoint. Returns the client's run JSON; gt::Error when the scheduler
// refuses it or is lost for good, or the client fails.
std::string serve_scheduler(caf::actor_system& sys, const NodeOptions& opt, const RunConfig& cfg,
                            PlanRun& run, scheduler_actor scheduler,
                            const std::function<caf::expected<scheduler_actor>()>& reconnect,
                            const std::function<void()>& refresh_parties) {
  const bool can_rejoin = !cfg.run.checkpoint_dir.empty() && cfg.network.reconnect_seconds > 0;
  for (;;) {
    auto& side = run.clients->front();
    caf::scoped_actor self{sys};
    auto parts = client_parts(cfg, side, run);
    parts.on_finish = [waiter = caf::actor{self}](const std::string& json) {
      caf::anon_send(waiter, finish_atom_v, json);
    };
    auto client = sys.spawn(client_behavior, parts, client_plan(cfg, side, run.work_dir));
    self->monitor(scheduler);
    self->monitor(client);
    const auto stop = [&](const std::string& why) {
      caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
      return Error(why);
    };
    std::string refused;
    self->request(scheduler, std::chrono::seconds(30), join_atom_v, client, side.name,
                  static_cast<double>(side.train->size()))
        .receive([&](std::string& reason) { refused = reason; },
                 [&](caf::error& err) { refused = describe(err); });
    if (!refused.empty())
      throw stop("the scheduler at " + opt.scheduler + " refused client " + side.name + ": " +
                 refused);
    spdlog::info("client {}: joined the scheduler at {}", side.name, opt.scheduler);
    std::string results, failure;
    bool scheduler_lost = false, client_down = false;
    while (results.empty() && failure.empty())
      self->receive(
          [&](finish_atom, std::string& json) { results = std::move(json); },
          [&](caf::down_msg& dm) {
            if (dm.source == scheduler.address()) {
              scheduler_lost = true;
              failure =
                  "lost the scheduler at " + opt.scheduler + " before the run ended (" +
                  describe_exit(dm.reason) +
                  (dm.reason == caf::exit_reason::user_shutdown ? ": its log says why)" : ")");
            } else if (dm.source == client.address()) {
              client_down = true;
              // It stops when its step report finds the scheduler gone; the scheduler's own
              // down message says so too.
              if (dm.reason != caf::sec::request_receiver_down)
                failure = "client " + side.name + " stopped (its error is above)";
            }
          });
    if (results.empty()) {
      if (!scheduler_lost || !can_rejoin) throw stop(failure);
      // The client actor goes before a new one takes up the checkpoint.
      caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
      while (!client_down)
        self->receive([&](caf::down_msg& dm) { client_down |= dm.source == client.address(); });
      spdlog::warn("client {}: {}; joining it again when it is back, then resuming from {}",
                   side.name, failure, cfg.run.checkpoint_dir);
      auto again =
          reach_again<scheduler_actor>("the scheduler at " + opt.scheduler, reconnect,
                                       std::chrono::seconds(cfg.network.reconnect_seconds));
      if (!again) throw Error(describe(again.error()));
      scheduler = *again;
      side = this_client(cfg, opt);  // the model as loaded: the checkpoint holds the rest
      refresh_parties();             // the server or builder the stopped actor had reached again
      continue;
    }
    // The reply to `finish` is on its way: the scheduler node exits once it has every
    // client's, so its going is the sign that ours arrived (a minute at most).
    for (bool gone = false; !gone;)
      self->receive([&](caf::down_msg& dm) { gone = dm.source == scheduler.address(); },
                    caf::after(std::chrono::seconds(60)) >>
                        [&] {
                          spdlog::warn("client {}: the scheduler still runs a minute after the end",
                                       side.name);
                          gone = true;
                        });
    caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
    return results;
  }
}

void run_client_node(const NodeOptions& opt) {
  auto cfg = opt.run.load();
  auto [host, port] = host_port(opt.connect, "--connect");
  opt.network.check(host, "--connect");
  if (uses_emulators(cfg) && opt.builder.empty())
    throw Error(
        "node --role client: the plan tunes against an emulator (offsite/offline): give "
        "the emulator builder's --builder HOST:PORT");
  if (cfg.scheduler.clients > 1 && opt.scheduler.empty())
    throw Error("node --role client: one client per process (scheduler.clients = " +
                std::to_string(cfg.scheduler.clients) +
                "); start one client node per client and a scheduler node (--role scheduler) "
                "they join with --scheduler, or use `gtune simulate`");
  std::string scheduler_host;
  uint16_t scheduler_port = 0;
  if (!opt.scheduler.empty()) {
    std::tie(scheduler_host, scheduler_port) = host_port(opt.scheduler, "--scheduler");
    opt.network.check(scheduler_host, "--scheduler");
  }
  std::vector<ClientSide> clients{this_client(cfg, opt)};
  ActorConfig acfg;
  opt.network.configure(acfg);
  caf::actor_system sys{acfg};
  auto server = connect_server(sys, opt.network, host, port);
  if (!server)
    throw Error("cannot reach the server at " + opt.connect + ": " +
                connect_error_text(server.error()));
  spdlog::info("client {}: connected to {}", clients.front().name, opt.connect);
  emulator_builder_actor builder;
  std::function<caf::expected<emulator_builder_actor>()> connect_builder;
  if (!opt.builder.empty()) {
    auto [bhost, bport] = host_port(opt.builder, "--builder");
    opt.network.check(bhost, "--builder");
    connect_builder = [&sys, &opt, bhost = bhost, bport = bport] {
      return connect_party<emulator_builder_actor>(sys, "builder", opt.network, bhost, bport);
    };
    auto b = connect_builder();
    if (!b)
      throw Error("cannot reach the emulator builder at " + opt.builder + ": " +
                  connect_error_text(b.error()));
    builder = *b;
    spdlog::info("client {}: emulator builder at {}", clients.front().name, opt.builder);
  }
  scheduler_actor scheduler;
  const std::function<caf::expected<scheduler_actor>()> connect_scheduler = [&] {
    return connect_party<scheduler_actor>(sys, "scheduler", opt.network, scheduler_host,
                                          scheduler_port);
  };
  if (!opt.scheduler.empty()) {
    auto s = connect_scheduler();
    if (!s)
      throw Error("cannot reach the scheduler at " + opt.scheduler + ": " +
                  connect_error_text(s.error()));
    scheduler = *s;
  }
  auto metrics = std::make_shared<Metrics>();
  const auto metrics_server = opt.metrics.serve(metrics);  // once the node is up
  const auto out = !opt.out.empty() ? opt.out : cfg.run.out;
  PlanRun run;
  run.clients = &clients;
  run.server = *server;
  run.builder = builder;
  const AttackerLink attacker(sys, opt, cfg);
  run.audit = attacker.actor();  // an audit: the true tokens go to the attacker
  run.work_dir = transfer_dir(cfg, out);
  run.control = cfg.scheduler.control;
  run.show_progress = !opt.run.quiet;
  run.metrics = metrics;
  if (cfg.network.reconnect_seconds > 0) {
    const auto patience = std::chrono::seconds(cfg.network.reconnect_seconds);
    run.reconnector =
        spawn_reconnector(sys, "the server at " + opt.connect,
                          any_party<server_actor>([&sys, &opt, host = host, port = port] {
                            return connect_server(sys, opt.network, host, port);
                          }),
                          patience);
    if (connect_builder)
      run.builder_reconnector = spawn_reconnector(sys, "the emulator builder at " + opt.builder,
                                                  any_party(connect_builder), patience);
  }
  // Whatever happens, the reconnectors go: the actor system waits for every actor.
  const auto stop_reconnector = [&] {
    for (const auto& r : {run.reconnector, run.builder_reconnector})
      if (r) caf::anon_send_exit(r, caf::exit_reason::user_shutdown);
  };
  std::string results;
  try {
    if (!scheduler) {
      results = execute_plan(sys, cfg, run);
    } else {
      const auto start = std::chrono::steady_clock::now();
      // A restarted client actor starts from the parties as they are now: the stopped one
      // may have reached a restarted server or builder again; one not reachable now is
      // reached again by the new actor's reconnectors.
      const auto refresh_parties = [&, host = host, port = port] {
        if (auto s = connect_server(sys, opt.network, host, port)) run.server = *s;
        if (connect_builder)
          if (auto b = connect_builder()) run.builder = *b;
      };
      const auto client =
          serve_scheduler(sys, opt, cfg, run, scheduler, connect_scheduler, refresh_parties);
      const double wall =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      results = combine_results(to_toml(cfg), {nlohmann::json::parse(client)}, {}, wall).dump(1);
    }
  } catch (...) {
    stop_reconnector();
    throw;
  }
  stop_reconnector();
  print_summary(results);
  if (!out.empty()) write_outputs(out, results, clients);
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
