// gtune node --role client: a data owner's client in its own process, against a server node
// (and an emulator builder, an attacker in an audit), with its scheduler beside it or joining
// a scheduler node that drives several clients.
#include <spdlog/spdlog.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>

#include "actors/client.hpp"
#include "actors/scheduler.hpp"
#include "apps/node_parts.hpp"
#include "apps/reconnector.hpp"
#include "apps/run_plan.hpp"
#include "apps/run_report.hpp"
#include "common/error.hpp"

namespace gt::cli {
namespace {

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

}  // namespace

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
  const std::function<caf::expected<server_actor>()> connect_to_server = [&sys, &opt, host = host,
                                                                          port = port] {
    return connect_server(sys, opt.network, host, port);
  };
  const auto server =
      connect_at_start<server_actor>(opt, "the server at " + opt.connect, connect_to_server);
  spdlog::info("client {}: connected to {}", clients.front().name, opt.connect);
  emulator_builder_actor builder;
  std::function<caf::expected<emulator_builder_actor>()> connect_builder;
  if (!opt.builder.empty()) {
    auto [bhost, bport] = host_port(opt.builder, "--builder");
    opt.network.check(bhost, "--builder");
    connect_builder = [&sys, &opt, bhost = bhost, bport = bport] {
      return connect_party<emulator_builder_actor>(sys, "builder", opt.network, bhost, bport);
    };
    builder = connect_at_start<emulator_builder_actor>(
        opt, "the emulator builder at " + opt.builder, connect_builder);
    spdlog::info("client {}: emulator builder at {}", clients.front().name, opt.builder);
  }
  scheduler_actor scheduler;
  const std::function<caf::expected<scheduler_actor>()> connect_scheduler = [&] {
    return connect_party<scheduler_actor>(sys, "scheduler", opt.network, scheduler_host,
                                          scheduler_port);
  };
  if (!opt.scheduler.empty()) {
    scheduler = connect_at_start<scheduler_actor>(opt, "the scheduler at " + opt.scheduler,
                                                  connect_scheduler);
  }
  auto metrics = std::make_shared<Metrics>();
  const auto metrics_server = opt.metrics.serve(metrics);  // once the node is up
  const auto out = !opt.out.empty() ? opt.out : cfg.run.out;
  PlanRun run;
  run.clients = &clients;
  run.server = server;
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

}  // namespace gt::cli
