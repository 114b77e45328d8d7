// See design_summary.hpp.
#include "experiment/design_summary.hpp"

#include <algorithm>
#include <map>

#include "experiment/report_format.hpp"

namespace gt {

using namespace report_format;

std::vector<const ExperimentRow*> rows_of(const std::vector<ExperimentRow>& rows,
                                          const std::string& design) {
  std::vector<const ExperimentRow*> out;
  for (const auto& r : rows)
    if (r.design == design && r.status == "ok") out.push_back(&r);
  return out;
}

DesignSummary summarize(const std::vector<ExperimentRow>& rows, const std::string& design) {
  DesignSummary s;
  s.design = design;
  const auto mine = rows_of(rows, design);
  if (mine.empty()) return s;
  s.ran = true;
  s.strategy = mine.front()->strategy;
  s.acc = mean(values(mine, [](const auto& r) { return r.acc; }));
  s.delta = mean(values(mine, [](const auto& r) { return r.delta_points; }));
  s.rouge = mean(values(mine, [](const auto& r) { return r.best_rouge_l; }));
  s.a1_rouge = mean(values(mine, [](const auto& r) { return r.a1_rouge_l; }));
  s.learned_a1 = mean(values(mine, [](const auto& r) { return r.learned_a1_rouge_l; }));
  for (const auto* r : mine) {
    if (has(r->worst_step_rouge_l) && (!has(s.worst) || r->worst_step_rouge_l > s.worst)) {
      s.worst = r->worst_step_rouge_l;
      s.worst_attack = r->worst_step_attack;
    }
    if (has(r->adaptive_rouge_l))
      s.adaptive =
          has(s.adaptive) ? std::max(s.adaptive, r->adaptive_rouge_l) : r->adaptive_rouge_l;
    if (!r->correct.empty()) s.items[r->task][r->seed] = r->correct;
  }
  s.auc = mean(values(mine, [](const auto& r) { return r.membership_auc; }));
  s.eval_loss = mean(values(mine, [](const auto& r) { return r.eval_loss; }));
  s.generation = mean(values(mine, [](const auto& r) { return r.generation_rouge_l; }));
  s.pretrained_generation =
      mean(values(mine, [](const auto& r) { return r.pretrained_generation_rouge_l; }));
  s.up = mean(values(mine, [](const auto& r) { return r.bytes_up_per_step; }));
  s.down = mean(values(mine, [](const auto& r) { return r.bytes_down_per_step; }));
  s.total = mean(values(mine, [](const auto& r) { return double(r.bytes_total); }));
  s.steps = mean(values(mine, [](const auto& r) { return double(r.steps); }));
  s.client_mb = mean(values(mine, [](const auto& r) { return r.client_mb; }));
  s.rss = mean(values(mine, [](const auto& r) { return r.peak_rss_mb; }));
  s.train_s = mean(values(mine, [](const auto& r) { return r.train_seconds; }));
  s.run_s = mean(values(mine, [](const auto& r) { return r.run_seconds; }));
  std::map<std::string, int> votes;  // the attack that wins most often
  for (const auto* r : mine)
    if (!r->best_attack.empty()) ++votes[r->best_attack];
  int most = 0;
  for (const auto& [a, n] : votes)
    if (n > most) most = n, s.best_attack = a;
  return s;
}

}  // namespace gt
