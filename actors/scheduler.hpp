// The scheduler actor (operator): runs a plan of phases over its clients,
// optionally averages their adapters after each phase (FedAvg), and answers
// every client's step report with a directive, which is where operator
// commands (switch, pause, resume) and policies (a communication budget) act.
// Its clients live beside it (simulate) or join from their own processes (a
// scheduler node); it monitors them, and one that is lost may join again.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "actors/scheduler_checkpoint.hpp"
#include "common/progress.hpp"
#include "protocols/interfaces.hpp"

namespace gt {

struct SchedulerPlan {
  // Empty: make_phases makes them once every client has joined, from the first client's
  // training samples (a phase of epochs needs them).
  std::vector<PhaseOrder> phases;
  std::function<std::vector<PhaseOrder>(int64_t first_client_samples)> make_phases;
  std::string config_toml;  // into results.json
  bool fedavg = false;
  std::vector<double> client_weights;  // FedAvg weights of the clients given at spawn
  // Clients the run waits for (scheduler.clients); 0 = those given at spawn. The others join.
  size_t clients = 0;
  // How long a lost client may take to join again (it resumes from its checkpoint); 0: its
  // loss fails the run, and no_rejoin says why it cannot come back.
  std::chrono::seconds rejoin_patience{0};
  std::string no_rejoin;
  // A client joining under a taken name replaces the one there when that one does not answer
  // within this long (a restarted client whose old connection is not seen to close yet).
  std::chrono::milliseconds liveness_timeout{5000};
  int64_t budget_bytes = 0;     // training bytes of all clients before the fallback; 0 = none
  double attack_threshold = 0;  // best attack ROUGE-L that switches to the fallback; 0 = off
  std::string fallback = "gradfree";
  std::set<std::string> switchable;  // strategies a switch may name
  bool show_progress = true;
  // Where the scheduler keeps its resumable state (a node with run.checkpoint_dir); null:
  // none. `resume`: what the checkpoint held when this process started: the run goes on from
  // there once the clients it names have joined again.
  std::shared_ptr<const SchedulerCheckpoint> checkpoint;
  std::optional<SchedulerProgress> resume;
};

struct ClientStatus {
  StepReport last;
  bool paused = false;  // its report waits for resume
  caf::typed_response_promise<std::string> held;
};

// A client of the run: given at spawn or joined over the network.
struct SchedulerClient {
  std::string name;
  client_actor actor;
  double weight = 0;        // FedAvg weight: its training samples
  bool lost = false;        // its actor went down; it may join again under its name
  std::string lost_reason;  // why, for the error if it does not come back
  uint64_t generation = 0;  // counts its joins: a lost actor's late replies are dropped
};

// One request to every client (a phase order, FedAvg, finish) until each has answered; a
// client that joins again is asked again.
struct SchedulerRound {
  size_t left = 0;
  std::vector<std::function<void()>> ask;  // per client: send its request; empty once answered
};

struct SchedulerState {
  SchedulerPlan plan;
  std::vector<SchedulerClient> clients;
  bool order_by_name = false;  // clients that joined run in the order of their names
  std::map<std::string, ClientStatus> status;
  caf::typed_response_promise<std::string> done;
  std::string state = "idle";  // idle | waiting (for clients) | running | done | failed
  size_t phase = 0;
  std::string stage = "phase";                 // phase | fedavg | finish: see SchedulerProgress
  std::string current;                         // strategy now running (planned or switched to)
  std::map<std::string, std::string> pending;  // client -> strategy to switch to at its next report
  bool paused = false;
  bool budget_spent = false, attack_alarmed = false;
  AttackAlarm attack;  // the attacker's best score so far
  std::shared_ptr<SchedulerRound> round;
  bool finishing = false;                       // the round in flight is the last (finish)
  std::vector<nlohmann::json> switches;         // {"client", "after_step", "to", "by"}
  std::map<std::string, std::string> results;   // clients' finish replies so far
  std::optional<std::vector<uint8_t>> average;  // the FedAvg average being handed out
  bool resuming = false;   // restored from a checkpoint; the run goes on when all are back
  double wall_before = 0;  // seconds the run took in earlier processes
  std::unique_ptr<Progress> progress;
  int64_t steps_reported = 0;
  std::chrono::steady_clock::time_point start;
  static inline const char* name = "gt.scheduler";
};

// `clients` (with `client_names`, and plan.client_weights) run the plan as given; with
// plan.clients above their number the others join (a scheduler node). `run` starts the plan
// once all are there.
scheduler_actor::behavior_type scheduler_behavior(
    scheduler_actor::stateful_pointer<SchedulerState> self, SchedulerPlan plan,
    std::vector<client_actor> clients, std::vector<std::string> client_names);

// results.json from the clients' run JSONs: per client, per phase (summed over
// clients) and in total.
nlohmann::json combine_results(const std::string& config_toml,
                               const std::vector<nlohmann::json>& clients,
                               const std::vector<nlohmann::json>& switches, double wall_seconds);

}  // namespace gt
