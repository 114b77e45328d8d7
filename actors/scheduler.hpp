// The scheduler actor (operator): runs a plan of phases over its clients,
// optionally averages their adapters after each phase (FedAvg), and answers
// every client's step report with a directive, which is where operator
// commands (switch, pause, resume) and policies (a communication budget) act.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <vector>

#include "common/progress.hpp"
#include "protocols/interfaces.hpp"

namespace gt {

struct SchedulerPlan {
  std::vector<PhaseOrder> phases;
  std::string config_toml;  // into results.json
  bool fedavg = false;
  std::vector<double> client_weights;  // FedAvg weights (training samples per client)
  int64_t budget_bytes = 0;     // training bytes of all clients before the fallback; 0 = none
  double attack_threshold = 0;  // best attack ROUGE-L that switches to the fallback; 0 = off
  std::string fallback = "gradfree";
  std::set<std::string> switchable;  // strategies a switch may name
  bool show_progress = true;
};

struct ClientStatus {
  StepReport last;
  bool paused = false;  // its report waits for resume
  caf::typed_response_promise<std::string> held;
};

struct SchedulerState {
  SchedulerPlan plan;
  std::vector<client_actor> clients;
  std::vector<std::string> client_names;
  std::map<std::string, ClientStatus> status;
  caf::typed_response_promise<std::string> done;
  std::string state = "idle";  // idle | running | done | failed
  size_t phase = 0;
  std::string current;                         // strategy now running (planned or switched to)
  std::map<std::string, std::string> pending;  // client -> strategy to switch to at its next report
  bool paused = false;
  bool budget_spent = false, attack_alarmed = false;
  AttackAlarm attack;  // the attacker's best score so far
  std::vector<std::string> phase_replies;
  std::vector<nlohmann::json> switches;  // {"client", "after_step", "to", "by"}
  std::unique_ptr<Progress> progress;
  int64_t steps_reported = 0;
  std::chrono::steady_clock::time_point start;
  static inline const char* name = "gt.scheduler";
};

scheduler_actor::behavior_type scheduler_behavior(
    scheduler_actor::stateful_pointer<SchedulerState> self, SchedulerPlan plan,
    std::vector<client_actor> clients, std::vector<std::string> client_names);

// results.json from the clients' run JSONs: per client, per phase (summed over
// clients) and in total.
nlohmann::json combine_results(const std::string& config_toml,
                               const std::vector<nlohmann::json>& clients,
                               const std::vector<nlohmann::json>& switches, double wall_seconds);

}  // namespace gt
