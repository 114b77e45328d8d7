// Running a plan: a scheduler and its clients against a server (and an
// emulator builder) that are local actors or remote ones; the operator's
// control API beside the scheduler; and the centralized baseline, which
// needs no actors.
#pragma once

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <set>
#include <string>
#include <vector>

#include "actors/scheduler.hpp"
#include "apps/parties.hpp"
#include "protocols/interfaces.hpp"

namespace gt::cli {

struct PlanRun {
  std::vector<ClientSide>* clients = nullptr;
  server_actor server;
  emulator_builder_actor builder;  // null when no strategy of the run needs one
  attacker_actor audit;            // simulation: where clients send their truths; may be null
  std::string work_dir;            // emulator downloads
  std::string control;             // HOST:PORT of the control API; "" = none
  bool show_progress = true;
  std::shared_ptr<Metrics> metrics;  // Prometheus metrics of the clients; may be null
  caf::actor reconnector;            // a node's way back to a lost server; may be null
  caf::actor builder_reconnector;    // ... and to a lost emulator builder; may be null
};

// Spawns the clients and the scheduler in `sys`, runs the plan, returns results.json.
// Throws gt::Error when the run fails (e.g. the server rejects it or dies).
std::string execute_plan(caf::actor_system& sys, const RunConfig& cfg, const PlanRun& run);

// What one client actor of `run` needs.
ClientParts client_parts(const RunConfig& cfg, const ClientSide& side, const PlanRun& run);
// The scheduler's plan from the configuration, less what its clients bring (phases of
// epochs, FedAvg weights). `emulators`: whether a switch may name offsite/offline.
SchedulerPlan scheduler_plan(const RunConfig& cfg, bool emulators, bool show_progress);
// Runs the plan on `scheduler` (serving the control API at `control` meanwhile, "" = none) and
// returns results.json; gt::Error when the run fails.
std::string run_scheduler(caf::actor_system& sys, const scheduler_actor& scheduler,
                          const std::string& control, const std::set<std::string>& switchable);

std::string run_centralized(const RunConfig& cfg, ClientSide& client, bool show_progress);

// An actor-system configuration with every protocol type registered.
struct ActorConfig : caf::actor_system_config {
  ActorConfig();
};

}  // namespace gt::cli
