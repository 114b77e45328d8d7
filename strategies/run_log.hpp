// What a run did, step by step: loss, bytes on the wire by link/direction/kind,
// seconds; evaluations; phases; totals. Part of results.json.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "protocols/codec.hpp"

namespace gt {

struct StepRecord {
  int64_t step = 0;
  std::string strategy;
  double loss = 0, dcor = 0, a1_quant_error = 0, seconds = 0;
  std::map<WireStats::Key, int64_t> bytes;  // this step's bytes
  double inverter_accuracy = -1;            // the client's own inverter on a1; -1: none
};

struct EvalRecord {
  int64_t step = 0;  // after this many optimizer steps
  double loss = 0, perplexity = 0;
  int64_t tokens = 0;
};

// One phase of the plan as this client ran it.
struct PhaseRecord {
  int64_t index = 0;
  std::string strategy;                   // as planned
  std::vector<std::string> strategies;    // as run, in order (a switch adds one)
  int64_t first_step = 0, last_step = 0;  // optimizer steps, inclusive (first > last: none)
  double seconds = 0;
  std::map<WireStats::Key, int64_t> bytes;  // everything sent during the phase, setup included
};

// Per-step traffic: activations and gradients (and the centralized raw data).
// Sessions, evaluations, emulator transfers and adapter uploads are not.
bool is_step_kind(const std::string& kind);

class RunLog {
 public:
  // Records a step; its bytes are the growth of `stats` since the previous record.
  void add_step(StepRecord record, const WireStats& stats);
  void add_eval(EvalRecord record) { evals_.push_back(record); }
  // A step begun again (its server was lost): the step traffic `stats` grew by since the last
  // record is its failed attempt's, counted apart (totals.retried_step_bytes), not the step's.
  void note_retry(const WireStats& stats);
  // Bracket a phase; end_phase records the bytes `stats` grew by since begin_phase.
  void begin_phase(int64_t index, const std::string& strategy, const WireStats& stats);
  void note_strategy(const std::string& strategy);  // a switch inside the current phase
  PhaseRecord& end_phase(const WireStats& stats, double seconds);
  const std::vector<PhaseRecord>& phases() const { return phases_; }
  const std::vector<StepRecord>& steps() const { return steps_; }
  const std::vector<EvalRecord>& evals() const { return evals_; }

  // Bytes of training steps (evaluation traffic excluded) in a direction ("" = both).
  int64_t step_bytes(const std::string& direction = "") const;
  // {"steps": [...], "evals": [...], "phases": [...], "totals": {...}}.
  nlohmann::json to_json(const WireStats& stats, double wall_seconds) const;

  // Everything recorded, for a checkpoint; from_state(state()) records the same.
  nlohmann::json state() const;
  static RunLog from_state(const nlohmann::json& state);  // throws nlohmann::json errors

 private:
  std::vector<StepRecord> steps_;
  std::vector<EvalRecord> evals_;
  std::vector<PhaseRecord> phases_;
  std::map<WireStats::Key, int64_t> phase_start_;  // cumulative bytes when the phase began
  std::map<WireStats::Key, int64_t> seen_;         // cumulative bytes at the last record
  std::map<WireStats::Key, int64_t> retried_;      // step traffic of attempts begun again
};

}  // namespace gt
