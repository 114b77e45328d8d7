// The privacy/utility frontier of `gtune experiment`: each [[sweep]] of a privacy knob is one
// curve of accuracy against the worst attacked step's best ROUGE-L, with the best trade named.
#pragma once

#include <string>
#include <vector>

#include "experiment/experiment_config.hpp"
#include "experiment/experiment_report.hpp"

namespace gt {

// The grid's sweeps, each with the designs it expanded into.
std::vector<FrontierSweep> frontier_sweeps(const ExperimentConfig& cfg);

// The best trade: among the sweeps' points whose accuracy is within `max_loss_points` of the
// undefended design (paired point estimate), the one with the lowest worst-step ROUGE-L (ties:
// the more accurate). Empty when no point qualifies or nothing ran.
std::string best_trade(const std::vector<ExperimentRow>& rows, const ReportContext& ctx,
                       double max_loss_points = 1.5);

// "## Frontier" for report.md: per sweep and value, accuracy with its interval, the difference
// against the undefended design, the worst step and its attack, the adaptive attacker, the
// held-out loss; then the best trade. Empty without sweeps.
std::string frontier_markdown(const std::vector<ExperimentRow>& rows, const ReportContext& ctx);

// gnuplot data: one block per sweep ("rouge accuracy value" per point, in the sweep's order),
// then one block of the designs outside sweeps ("rouge accuracy name").
std::string frontier_points(const std::vector<ExperimentRow>& rows, const ReportContext& ctx);

// gnuplot commands drawing `points_file` into dir/frontier.png.
std::string frontier_plot_script(const std::string& points_file, const std::string& dir,
                                 const ReportContext& ctx);

}  // namespace gt
