// A scheduler's resumable state, so that a scheduler node killed mid-run and started again
// goes on with the plan where it was, its clients joining it again: the plan's position,
// every client's last step report, the FedAvg average being handed out, the budget and
// attack policies' state, switches and pause, and the results of clients already finished.
// One JSON file (plus the average, binary, beside it), written atomically.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "protocols/scheduling.hpp"

namespace gt {

struct SchedulerProgress {
  // phase: `phase` is running; fedavg: `phase` has ended and its adapters are being averaged;
  // finish: every phase has ended and the clients give their results.
  std::string stage = "phase";
  size_t phase = 0;
  std::vector<PhaseOrder> phases;
  std::vector<std::pair<std::string, double>> clients;  // name, FedAvg weight; in run order
  std::string current;                                  // strategy running now
  std::map<std::string, std::string> pending;           // switches not yet taken
  std::vector<nlohmann::json> switches;
  bool paused = false, budget_spent = false, attack_alarmed = false;
  AttackAlarm attack;
  std::map<std::string, StepReport> status;  // each client's last step report
  int64_t steps_reported = 0;
  double wall_seconds = 0;                      // of the run so far, every process included
  std::map<std::string, std::string> results;   // finish replies received (client's JSON)
  std::optional<std::vector<uint8_t>> average;  // the FedAvg average being handed out
};

class SchedulerCheckpoint {
 public:
  // <dir>/scheduler.json; `fingerprint` names the run's training settings (one
  // "key = value" per line): a checkpoint of other settings is refused.
  SchedulerCheckpoint(const std::string& dir, std::string fingerprint);
  const std::string& path() const { return path_; }

  // `durable`: on disk before it replaces the last one (phase boundaries), not only in the
  // page cache (enough against a killed process: every step report).
  void save(const SchedulerProgress& progress, bool durable) const;
  // nullopt when there is none; throws gt::Error naming the file when it is unreadable or of
  // other settings.
  std::optional<SchedulerProgress> load() const;

 private:
  std::string path_, average_path_, fingerprint_;
};

}  // namespace gt
