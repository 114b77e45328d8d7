// See frontier.hpp.
#include "experiment/frontier.hpp"

#include <algorithm>
#include <sstream>

#include "experiment/bootstrap.hpp"
#include "experiment/design_summary.hpp"
#include "experiment/report_format.hpp"

namespace gt {
namespace {

using namespace report_format;

// The strict privacy figure of a design: its worst attacked step (the mean where no step was
// recorded; 0 where nothing crosses that could be inverted).
double frontier_rouge(const DesignSummary& s) {
  if (has(s.worst)) return s.worst;
  return has(s.rouge) ? s.rouge : 0.0;
}

// Accuracy difference against the undefended design in points: paired where both have items.
double points_vs(const DesignSummary& s, const DesignSummary* ref) {
  if (!ref || !ref->ran) return kNoValue;
  const auto gap = difference_interval(s.items, ref->items);
  return gap.valid ? 100 * gap.mean : 100 * (s.acc - ref->acc);
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? '\'' : c;
  return out + "\"";
}

}  // namespace

std::vector<FrontierSweep> frontier_sweeps(const ExperimentConfig& cfg) {
  std::vector<FrontierSweep> sweeps;
  for (const auto& d : cfg.designs) {
    if (d.sweep.empty()) continue;
    if (sweeps.empty() || sweeps.back().name != d.sweep)
      sweeps.push_back({d.sweep, d.sweep_key, {}, {}});
    sweeps.back().designs.push_back(d.name);
    sweeps.back().values.push_back(d.sweep_value);
  }
  return sweeps;
}

std::string best_trade(const std::vector<ExperimentRow>& rows, const ReportContext& ctx,
                       double max_loss_points) {
  const auto ref = summarize(rows, ctx.undefended);
  std::string best;
  double best_rouge = 0, best_points = 0;
  for (const auto& sweep : ctx.sweeps)
    for (const auto& d : sweep.designs) {
      const auto s = summarize(rows, d);
      const double points = points_vs(s, &ref);
      if (!s.ran || !has(points) || points < -max_loss_points) continue;
      const double rouge = frontier_rouge(s);
      if (best.empty() || rouge < best_rouge || (rouge == best_rouge && points > best_points))
        best = d, best_rouge = rouge, best_points = points;
    }
  return best;
}

std::string frontier_markdown(const std::vector<ExperimentRow>& rows, const ReportContext& ctx) {
  if (ctx.sweeps.empty()) return "";
  const auto ref = summarize(rows, ctx.undefended);
  const auto* reference = ref.ran ? &ref : nullptr;
  std::ostringstream out;
  out << "\n## Frontier\n\nEach sweep turns one privacy knob: accuracy against the worst "
         "attacked step's best attack (attacks that do not know the defence), plotted in "
         "`frontier.png`. Δ is paired against "
      << dash_or(ctx.undefended) << ".\n\n";
  out << "| sweep | setting | accuracy [95% CI] | Δ vs " << dash_or(ctx.undefended)
      << " (points) [95% CI] | worst step ROUGE-L | its attack | adaptive ROUGE-L | held-out "
         "loss |\n|---|---|---|---|---|---|---|---|\n";
  for (const auto& sweep : ctx.sweeps)
    for (size_t i = 0; i < sweep.designs.size(); ++i) {
      const auto s = summarize(rows, sweep.designs[i]);
      out << "| " << sweep.name << " | `" << sweep.key << " = " << sweep.values[i] << "` | ";
      if (!s.ran) {
        out << "failed | | | | | |\n";
        continue;
      }
      const auto acc = accuracy_interval(s.items);
      const auto gap = reference ? difference_interval(s.items, reference->items) : Interval{};
      out << (acc.valid ? fmt("%.3f", acc.mean) + " [" + fmt("%.3f", acc.lo) + ", " +
                              fmt("%.3f", acc.hi) + "]"
                        : dash_or(fmt("%.3f", s.acc)))
          << " | "
          << (gap.valid ? fmt("%+.1f", 100 * gap.mean) + " [" + fmt("%+.1f", 100 * gap.lo) + ", " +
                              fmt("%+.1f", 100 * gap.hi) + "]"
                        : dash_or(fmt("%+.1f", points_vs(s, reference))))
          << " | " << fmt("%.3f", frontier_rouge(s)) << " | " << dash_or(s.worst_attack) << " | "
          << dash_or(fmt("%.3f", s.adaptive)) << " | " << dash_or(fmt("%.3f", s.eval_loss))
          << " |\n";
    }
  const auto best = best_trade(rows, ctx);
  out << "\nBest trade: ";
  if (best.empty()) {
    out << "no point of any sweep keeps accuracy within 1.5 points of " << dash_or(ctx.undefended)
        << ".\n";
  } else {
    const auto s = summarize(rows, best);
    out << "**" << best << "**, the lowest worst-step ROUGE-L (" << fmt("%.3f", frontier_rouge(s))
        << ") among the points within 1.5 points of " << ctx.undefended << "'s accuracy ("
        << fmt("%+.1f", points_vs(s, reference)) << ").\n";
  }
  return out.str();
}

std::string frontier_points(const std::vector<ExperimentRow>& rows, const ReportContext& ctx) {
  std::ostringstream out;
  out << "# worst_step_rouge_l accuracy label: one block per sweep, then the other designs\n";
  std::vector<std::string> in_sweeps;
  for (const auto& sweep : ctx.sweeps) {
    out << "# sweep " << sweep.name << " (" << sweep.key << ")\n";
    for (size_t i = 0; i < sweep.designs.size(); ++i) {
      in_sweeps.push_back(sweep.designs[i]);
      const auto s = summarize(rows, sweep.designs[i]);
      if (!s.ran || !has(s.acc)) continue;
      out << fmt("%.4f", frontier_rouge(s)) << ' ' << fmt("%.4f", s.acc) << ' '
          << quoted(sweep.values[i]) << '\n';
    }
    out << "\n\n";
  }
  out << "# other designs\n";
  for (const auto& d : ctx.designs) {
    if (std::find(in_sweeps.begin(), in_sweeps.end(), d) != in_sweeps.end()) continue;
    const auto s = summarize(rows, d);
    if (!s.ran || !has(s.acc)) continue;
    out << fmt("%.4f", frontier_rouge(s)) << ' ' << fmt("%.4f", s.acc) << ' ' << quoted(d) << '\n';
  }
  return out.str();
}

std::string frontier_plot_script(const std::string& points_file, const std::string& dir,
                                 const ReportContext& ctx) {
  if (ctx.sweeps.empty()) return "";
  std::ostringstream out;
  out << "set terminal pngcairo size 900,720 font 'sans,11'\n"
         "unset logscale x\nset format x '%g'\nset xrange [0:1.05]\n"
         "set key below box noenhanced\n"
         "set output '"
      << dir << "/frontier.png'\n"
      << "set title 'Privacy/utility frontier: accuracy vs. the worst step (lower is more "
         "private)'\n"
         "set xlabel 'worst attacked step, best attack ROUGE-L F1'\n"
         "plot ";
  for (size_t i = 0; i < ctx.sweeps.size(); ++i) {
    const auto& sweep = ctx.sweeps[i];
    // Explicit colours: the label layers would otherwise take colours from the cycle too.
    out << "'" << points_file << "' index " << i << " using 1:2 with linespoints pt 7 ps 1.2 lc "
        << i + 1 << " title " << quoted(sweep.name + " (" + sweep.key + ")") << ", '' index " << i
        << " using 1:2:3 with labels offset 0.8,0.6 left noenhanced notitle, ";
  }
  out << "'" << points_file << "' index " << ctx.sweeps.size()
      << " using 1:2 with points pt 5 ps 1.2 lc rgb 'black' title 'other designs', '' index "
      << ctx.sweeps.size() << " using 1:2:3 with labels offset 0.8,-0.8 left noenhanced notitle\n";
  return out.str();
}

}  // namespace gt
