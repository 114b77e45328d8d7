// From the runs of an experiment to what a reader compares: one row per (cell, scored task),
// written as results.csv, report.md (tables per task and per design, the targets) and gnuplot
// plots (accuracy vs. best-attack ROUGE-L, accuracy vs. bytes).
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "experiment/experiment_config.hpp"

namespace gt {

inline constexpr double kNoValue = std::numeric_limits<double>::quiet_NaN();

// What `gtune experiment` measured around a cell's run (not in its results.json).
struct CellMeasurement {
  bool ok = false;
  std::string error;       // why the run failed, when !ok
  double seconds = 0;      // the whole run: setup, attacks, training, evaluation
  double peak_rss_mb = 0;  // peak resident memory of the run's process (all parties)
};

struct ExperimentRow {
  std::string design, train_task, task;  // train_task: the cell's task ("all" or one name)
  uint64_t seed = 0;
  std::string strategy;  // strategy.kind of the run
  double acc = kNoValue, acc_norm = kNoValue, zero_shot_acc = kNoValue;
  double delta_points = kNoValue;  // 100 * (acc - the baseline design's acc), same task/seed
  // Attacks that do not know the defence (every attack but adaptive_*):
  std::string best_attack;               // highest-scoring reconstruction attack (mean over steps)
  double best_rouge_l = kNoValue;        // its ROUGE-L F1; NaN when nothing could be inverted
  double a1_rouge_l = kNoValue;          // best attack that reads a1 (embedding / learned a1)
  double learned_a1_rouge_l = kNoValue;  // learned inversion of a1: the attacker's strength
  // The worst attacked step: the step whose best attack's mean ROUGE-L F1 is highest.
  int64_t worst_step = -1;
  std::string worst_step_attack;
  double worst_step_rouge_l = kNoValue;
  // The adaptive attacker (knows the defence, not the client's secrets), at its worst step.
  double adaptive_rouge_l = kNoValue;
  double membership_auc = kNoValue;  // on returned adapters (offsite / offline)
  int64_t steps = 0;
  double bytes_up_per_step = 0, bytes_down_per_step = 0;
  int64_t bytes_total = 0;  // every training byte: steps, emulator, adapters, session
  double client_mb = 0;     // parameters, gradients, optimizer state, emulator held by the client
  double peak_rss_mb = 0, train_seconds = 0, run_seconds = 0;
  double eval_loss = kNoValue;
  // Definitions generated for held-out WordNet words (evaluation.generation_examples), ROUGE-L
  // against WordNet's: the tuned model (first client) and the pretrained one.
  double generation_rouge_l = kNoValue, pretrained_generation_rouge_l = kNoValue;
  std::string correct;        // per test item of `task`: '1' right, '0' wrong (first client)
  std::string status = "ok";  // or the failure
};

// The rows of one cell: one per task its results.json scored (or one "failed" row).
std::vector<ExperimentRow> experiment_rows(const ExperimentCell& cell,
                                           const nlohmann::json& results,
                                           const CellMeasurement& measured);
std::vector<ExperimentRow> failed_rows(const ExperimentCell& cell, const CellMeasurement& measured);

// Fills delta_points against `baseline` (same train task, task and seed); no-op for "".
void fill_deltas(std::vector<ExperimentRow>& rows, const std::string& baseline);

std::string results_csv(const std::vector<ExperimentRow>& rows);

// The designs a [[sweep]] expanded into, in the order of its values: one frontier.
struct FrontierSweep {
  std::string name, key;
  std::vector<std::string> designs, values;
};

struct ReportContext {
  std::string title, command, machine, date;
  std::string baseline, undefended;
  std::vector<std::string> designs;  // in grid order
  std::vector<FrontierSweep> sweeps;
};
std::string report_markdown(const std::vector<ExperimentRow>& rows, const ReportContext& ctx);

// Per design, means over tasks and seeds: "design acc rouge bytes_total" lines for gnuplot.
std::string plot_points(const std::vector<ExperimentRow>& rows,
                        const std::vector<std::string>& designs);
// A gnuplot script reading `points_file` and writing the two PNGs into `dir`.
std::string plot_script(const std::string& points_file, const std::string& dir);

}  // namespace gt
