// One design's runs summarised for the report: means over tasks and seeds, the worst attacked
// step, and the per-item outcomes the confidence intervals resample.
#pragma once

#include <string>
#include <vector>

#include "experiment/bootstrap.hpp"
#include "experiment/experiment_report.hpp"

namespace gt {

struct DesignSummary {
  std::string design, strategy, best_attack;
  double acc = kNoValue, delta = kNoValue, rouge = kNoValue, a1_rouge = kNoValue, auc = kNoValue;
  // Strict privacy: the worst attacked step over every run of the design, and the adaptive
  // attacker's worst step; the attacker's strength (learned inversion of a1, mean).
  double worst = kNoValue, adaptive = kNoValue, learned_a1 = kNoValue;
  std::string worst_attack;     // the attack that scored `worst`
  double eval_loss = kNoValue;  // held-out loss after training, mean
  // Generated definitions' ROUGE-L against WordNet's, means: tuned and pretrained.
  double generation = kNoValue, pretrained_generation = kNoValue;
  ItemOutcomes items;  // task -> seed -> per-item outcomes, for intervals
  double up = kNoValue, down = kNoValue, total = kNoValue, steps = kNoValue, client_mb = kNoValue,
         rss = kNoValue, train_s = kNoValue, run_s = kNoValue;
  bool ran = false;
};

DesignSummary summarize(const std::vector<ExperimentRow>& rows, const std::string& design);

// Rows of one design that ran, over tasks and seeds.
std::vector<const ExperimentRow*> rows_of(const std::vector<ExperimentRow>& rows,
                                          const std::string& design);

// f applied to each row.
template <class F>
std::vector<double> values(const std::vector<const ExperimentRow*>& rows, F f) {
  std::vector<double> out;
  for (const auto* r : rows) out.push_back(f(*r));
  return out;
}

}  // namespace gt
