// What a run did, step by step: loss, bytes on the wire by link/direction/kind,
// seconds; evaluations; totals. Written as results.json.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "protocols/codec.hpp"

namespace gt {

struct StepRecord {
  int64_t step = 0;
  double loss = 0, dcor = 0, a1_quant_error = 0, seconds = 0;
  std::map<WireStats::Key, int64_t> bytes;  // this step's bytes
};

struct EvalRecord {
  int64_t step = 0;  // after this many optimizer steps
  double loss = 0, perplexity = 0;
  int64_t tokens = 0;
};

class RunLog {
 public:
  // Records a step; its bytes are the growth of `stats` since the previous record.
  void add_step(StepRecord record, const WireStats& stats);
  void add_eval(EvalRecord record) { evals_.push_back(record); }
  const std::vector<StepRecord>& steps() const { return steps_; }
  const std::vector<EvalRecord>& evals() const { return evals_; }

  // Bytes of training steps (evaluation traffic excluded) in a direction ("" = both).
  int64_t step_bytes(const std::string& direction = "") const;
  // results.json: {"config": ..., "steps": [...], "evals": [...], "totals": {...}}.
  std::string to_json(const std::string& config_toml, const WireStats& stats,
                      double wall_seconds) const;

 private:
  std::vector<StepRecord> steps_;
  std::vector<EvalRecord> evals_;
  std::map<WireStats::Key, int64_t> seen_;  // cumulative bytes at the last record
};

}  // namespace gt
