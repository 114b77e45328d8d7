// See experiment_report.hpp.
#include "experiment/experiment_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "experiment/bootstrap.hpp"
#include "experiment/design_summary.hpp"
#include "experiment/frontier.hpp"
#include "experiment/report_format.hpp"

namespace gt {
namespace {

using namespace report_format;

// "online", or "offline->online" for a plan (repeats of one strategy collapsed).
std::string strategies_of(const nlohmann::json& results) {
  std::vector<std::string> seen;
  for (const auto& p : results.value("phases", nlohmann::json::array()))
    for (const auto& s : p.value("strategies", nlohmann::json::array()))
      if (seen.empty() || seen.back() != s.get<std::string>()) seen.push_back(s.get<std::string>());
  std::string out;
  for (const auto& s : seen) out += (out.empty() ? "" : "->") + s;
  return out;
}

bool reads_a1(const std::string& attack) {
  return attack == "embedding_inversion" || attack == "learned_inversion_a1";
}

bool is_adaptive(const std::string& attack) {
  return attack.rfind("adaptive_", 0) == 0;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

std::vector<ExperimentRow> failed_rows(const ExperimentCell& cell,
                                       const CellMeasurement& measured) {
  ExperimentRow r;
  r.design = cell.design;
  r.train_task = cell.task;
  r.task = cell.task;
  r.seed = cell.seed;
  r.run_seconds = measured.seconds;
  r.peak_rss_mb = measured.peak_rss_mb;
  r.status = "failed: " + measured.error;
  return {r};
}

std::vector<ExperimentRow> experiment_rows(const ExperimentCell& cell,
                                           const nlohmann::json& results,
                                           const CellMeasurement& measured) {
  ExperimentRow base;
  base.design = cell.design;
  base.train_task = cell.task;
  base.seed = cell.seed;
  base.strategy = strategies_of(results);
  base.run_seconds = measured.seconds;
  base.peak_rss_mb = measured.peak_rss_mb;
  const auto& totals = results.at("totals");
  base.steps = totals.at("steps").get<int64_t>();
  base.train_seconds = totals.at("wall_seconds").get<double>();
  base.eval_loss = totals.at("eval_loss_after").get<double>();
  const auto clients = std::max<int64_t>(1, totals.at("clients").get<int64_t>());
  const auto per_client_steps = std::max<int64_t>(1, base.steps / clients);
  // Per client and step: what one client sends and receives in a training step.
  base.bytes_up_per_step =
      double(totals.at("step_bytes_up").get<int64_t>()) / double(clients * per_client_steps);
  base.bytes_down_per_step =
      double(totals.at("step_bytes_down").get<int64_t>()) / double(clients * per_client_steps);
  for (const auto& b : totals.at("all_bytes")) {
    const auto kind = b.at("kind").get<std::string>();
    if (kind.size() < 5 || kind.compare(kind.size() - 5, 5, ".eval") != 0)
      base.bytes_total += b.at("bytes").get<int64_t>();
  }
  if (results.contains("generation")) {
    const auto& g = results["generation"];
    base.generation_rouge_l = g.at("tuned").at(0).at("rouge_l").get<double>();
    base.pretrained_generation_rouge_l = g.at("pretrained").at("rouge_l").get<double>();
  }
  if (results.contains("client_memory"))
    base.client_mb = double(results["client_memory"].at("total_bytes").get<int64_t>()) / 1e6;
  if (base.strategy == "centralized") {
    // The data owner hands over its text: nothing to attack, everything to read.
    base.best_attack = "raw text (no protection)";
    base.best_rouge_l = 1.0;
    base.a1_rouge_l = 1.0;
    base.worst_step_rouge_l = 1.0;
    base.worst_step = 0;
    base.worst_step_attack = base.best_attack;
    base.adaptive_rouge_l = 1.0;
  } else if (results.contains("attacks")) {
    const auto& attacks = results["attacks"];
    for (const auto& s : attacks.at("scores")) {
      const auto attack = s.at("attack").get<std::string>();
      const auto rouge = s.at("rouge_l").get<double>();
      if (is_adaptive(attack)) continue;  // reported in its own column
      if (!has(base.best_rouge_l) || rouge > base.best_rouge_l) {
        base.best_rouge_l = rouge;
        base.best_attack = attack;
      }
      if (reads_a1(attack) && (!has(base.a1_rouge_l) || rouge > base.a1_rouge_l))
        base.a1_rouge_l = rouge;
      if (attack == "learned_inversion_a1") base.learned_a1_rouge_l = rouge;
    }
    // Over strategies of a plan: the worst of them (privatize sends nothing to attack).
    const auto worst = attacks.value("worst_step", nlohmann::json::object());
    const auto adaptive = attacks.value("worst_step_adaptive", nlohmann::json::object());
    for (const auto& [strategy, w] : worst.items())
      if (!has(base.worst_step_rouge_l) ||
          w.at("rouge_l").get<double>() > base.worst_step_rouge_l) {
        base.worst_step_rouge_l = w.at("rouge_l").get<double>();
        base.worst_step = w.at("step").get<int64_t>();
        base.worst_step_attack = w.at("attack").get<std::string>();
      }
    for (const auto& [strategy, w] : adaptive.items())
      base.adaptive_rouge_l = std::max(has(base.adaptive_rouge_l) ? base.adaptive_rouge_l : 0.0,
                                       w.at("rouge_l").get<double>());
  }
  if (results.contains("membership")) {
    std::vector<double> aucs;
    for (const auto& m : results["membership"]) aucs.push_back(m.at("auc").get<double>());
    base.membership_auc = mean(aucs);
  }
  std::vector<ExperimentRow> rows;
  if (!results.contains("tasks")) {
    base.task = cell.task;
    rows.push_back(base);
    return rows;
  }
  for (const auto& t : results["tasks"].at("tasks")) {
    auto r = base;
    r.task = t.at("task").get<std::string>();
    r.zero_shot_acc = t.at("zero_shot").at("acc").get<double>();
    std::vector<double> acc, acc_norm;  // mean over clients
    for (const auto& c : t.at("tuned")) {
      acc.push_back(c.at("acc").get<double>());
      acc_norm.push_back(c.at("acc_norm").get<double>());
    }
    r.acc = mean(acc);
    r.acc_norm = mean(acc_norm);
    if (!t.at("tuned").empty()) r.correct = t.at("tuned")[0].value("correct", "");
    rows.push_back(r);
  }
  return rows;
}

void fill_deltas(std::vector<ExperimentRow>& rows, const std::string& baseline) {
  if (baseline.empty()) return;
  std::map<std::tuple<std::string, std::string, uint64_t>, double> reference;
  for (const auto& r : rows)
    if (r.design == baseline && has(r.acc)) reference[{r.train_task, r.task, r.seed}] = r.acc;
  for (auto& r : rows) {
    auto it = reference.find({r.train_task, r.task, r.seed});
    if (it != reference.end() && has(r.acc)) r.delta_points = 100 * (r.acc - it->second);
  }
}

std::string results_csv(const std::vector<ExperimentRow>& rows) {
  std::ostringstream out;
  out << "design,train_task,task,seed,strategy,accuracy,accuracy_norm,zero_shot_accuracy,"
         "delta_vs_baseline_points,best_attack,best_attack_rouge_l,a1_attack_rouge_l,"
         "learned_a1_rouge_l,worst_step,worst_step_attack,worst_step_rouge_l,adaptive_rouge_l,"
         "membership_auc,steps,bytes_up_per_step,bytes_down_per_step,bytes_total,client_memory_mb,"
         "peak_rss_mb,train_seconds,run_seconds,eval_loss,generation_rouge_l,"
         "pretrained_generation_rouge_l,status\n";
  for (const auto& r : rows)
    out << csv_field(r.design) << ',' << csv_field(r.train_task) << ',' << csv_field(r.task) << ','
        << r.seed << ',' << csv_field(r.strategy) << ',' << fmt("%.4f", r.acc) << ','
        << fmt("%.4f", r.acc_norm) << ',' << fmt("%.4f", r.zero_shot_acc) << ','
        << fmt("%.2f", r.delta_points) << ',' << csv_field(r.best_attack) << ','
        << fmt("%.4f", r.best_rouge_l) << ',' << fmt("%.4f", r.a1_rouge_l) << ','
        << fmt("%.4f", r.learned_a1_rouge_l) << ','
        << (r.worst_step >= 0 ? std::to_string(r.worst_step) : std::string()) << ','
        << csv_field(r.worst_step_attack) << ',' << fmt("%.4f", r.worst_step_rouge_l) << ','
        << fmt("%.4f", r.adaptive_rouge_l) << ',' << fmt("%.4f", r.membership_auc) << ',' << r.steps
        << ',' << fmt("%.0f", r.bytes_up_per_step) << ',' << fmt("%.0f", r.bytes_down_per_step)
        << ',' << r.bytes_total << ',' << fmt("%.1f", r.client_mb) << ','
        << fmt("%.0f", r.peak_rss_mb) << ',' << fmt("%.1f", r.train_seconds) << ','
        << fmt("%.1f", r.run_seconds) << ',' << fmt("%.4f", r.eval_loss) << ','
        << fmt("%.4f", r.generation_rouge_l) << ',' << fmt("%.4f", r.pretrained_generation_rouge_l)
        << ',' << csv_field(r.status) << '\n';
  return out.str();
}

namespace {

// "0.512" or "0.512 ± 0.010" over seeds.
std::string with_spread(const std::vector<double>& xs, const char* format) {
  const auto m = mean(xs), s = stddev(xs);
  if (!has(m)) return "–";
  return fmt(format, m) + (has(s) ? " ± " + fmt(format, s) : "");
}

std::string mb(double bytes) {
  return has(bytes) ? fmt("%.2f", bytes / 1e6) : "–";
}

}  // namespace

std::string report_markdown(const std::vector<ExperimentRow>& rows, const ReportContext& ctx) {
  std::ostringstream out;
  out << "# " << ctx.title << "\n\n";
  out << "Command: `" << ctx.command << "`  \nMachine: " << ctx.machine << "  \nDate: " << ctx.date
      << "\n\n";
  out << "Accuracy: 4-way multiple choice on the WordNet tasks' test split (lm-eval acc), after "
         "tuning on the tasks' train split; zero-shot is the pretrained model. Best attack: the "
         "highest mean ROUGE-L F1 between a reconstruction and the client's true text, over the "
         "attacks the curious server ran on what it received (centralized: the raw text itself; "
         "offsite/offline: nothing that crosses can be inverted, membership inference AUC "
         "instead). Bytes per step: what one client sends (up) and receives (down) per training "
         "step; total: every training byte of the run (emulators and adapter uploads included, "
         "held-out evaluation excluded). Client memory: parameters, gradients and optimizer state "
         "the client holds, plus its emulator (activations not counted); peak RSS: the whole "
         "simulation process (all parties).\n\n";

  out << "Privacy, measured strictly: every attack is fitted after the defence is fixed and "
         "runs on the client's first training step and every attacker.every-th step after it. "
         "Worst step: the attacked step whose best attack (over the attacks that do not know the "
         "defence) has the highest mean ROUGE-L F1, over every run of the design. Adaptive: an "
         "attacker that knows the defence and its settings (not the client's data, seed or "
         "weights) replays the client's privatization on public text with its own seed and fits "
         "its inverter through that shadow input adapter; its worst step. Accuracy: mean over "
         "tasks and seeds with a 95% bootstrap interval (test items and seeds resampled); "
         "differences are paired (the same draws for both designs).\n\n";

  std::vector<DesignSummary> summaries;
  for (const auto& d : ctx.designs) summaries.push_back(summarize(rows, d));
  const DesignSummary* undefended = nullptr;
  for (const auto& s : summaries)
    if (s.design == ctx.undefended && s.ran) undefended = &s;
  const auto interval = [](const Interval& i, double scale, const char* format) {
    if (!i.valid) return std::string("–");
    return fmt(format, scale * i.mean) + " [" + fmt(format, scale * i.lo) + ", " +
           fmt(format, scale * i.hi) + "]";
  };
  if (undefended && has(undefended->learned_a1))
    out << "Attacker strength: the learned inversion of a1 recovers ROUGE-L F1 "
        << fmt("%.3f", undefended->learned_a1) << " of the text under " << ctx.undefended
        << " (undefended; at least 0.95 is required for the privacy figures to count: "
        << (undefended->learned_a1 >= 0.95 ? "met" : "**not met**") << ").\n\n";

  out << "## Per design (mean over tasks and seeds)\n\n";
  out << "| design | strategy | accuracy [95% CI] | Δ vs " << dash_or(ctx.undefended)
      << " (points) [95% CI] | Δ vs " << dash_or(ctx.baseline)
      << " (points) | best attack | ROUGE-L | worst step ROUGE-L | adaptive ROUGE-L | a1 ROUGE-L "
         "| membership AUC | up B/step | down B/step | total MB | client MB | peak RSS MB | train "
         "s "
         "| run s |\n";
  out << "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& s : summaries) {
    if (!s.ran) {
      out << "| " << s.design << " | failed | | | | | | | | | | | | | | | | |\n";
      continue;
    }
    const auto acc = accuracy_interval(s.items);
    const auto gap = undefended && s.design != ctx.undefended
                         ? difference_interval(s.items, undefended->items)
                         : Interval{};
    out << "| " << s.design << " | " << s.strategy << " | "
        << (acc.valid ? interval(acc, 1, "%.3f") : fmt("%.3f", s.acc)) << " | "
        << interval(gap, 100, "%+.1f") << " | " << dash_or(fmt("%+.1f", s.delta)) << " | "
        << dash_or(s.best_attack) << " | " << dash_or(fmt("%.3f", s.rouge)) << " | "
        << dash_or(fmt("%.3f", s.worst)) << " | " << dash_or(fmt("%.3f", s.adaptive)) << " | "
        << dash_or(fmt("%.3f", s.a1_rouge)) << " | " << dash_or(fmt("%.3f", s.auc)) << " | "
        << fmt("%.0f", s.up) << " | " << fmt("%.0f", s.down) << " | " << mb(s.total) << " | "
        << fmt("%.1f", s.client_mb) << " | " << fmt("%.0f", s.rss) << " | "
        << fmt("%.1f", s.train_s) << " | " << fmt("%.1f", s.run_s) << " |\n";
  }

  if (std::any_of(summaries.begin(), summaries.end(),
                  [](const auto& s) { return has(s.generation); })) {
    out << "\n## Generated definitions (mean over seeds)\n\n"
           "Greedy definitions of held-out WordNet words (\"abandon (verb):\"), ROUGE-L F1 "
           "against WordNet's (evaluation.generation_examples).\n\n"
           "| design | pretrained | tuned | Δ |\n|---|---|---|---|\n";
    for (const auto& s : summaries)
      if (s.ran && has(s.generation))
        out << "| " << s.design << " | " << fmt("%.3f", s.pretrained_generation) << " | "
            << fmt("%.3f", s.generation) << " | "
            << fmt("%+.3f", s.generation - s.pretrained_generation) << " |\n";
  }

  std::vector<std::string> tasks;
  for (const auto& r : rows)
    if (std::find(tasks.begin(), tasks.end(), r.task) == tasks.end()) tasks.push_back(r.task);
  out << "\n## Per task (mean ± sd over seeds)\n\n";
  out << "| task | design | zero-shot | accuracy | acc_norm | Δ vs " << dash_or(ctx.baseline)
      << " (points) | best attack ROUGE-L |\n|---|---|---|---|---|---|---|\n";
  for (const auto& task : tasks)
    for (const auto& d : ctx.designs) {
      std::vector<const ExperimentRow*> mine;
      for (const auto& r : rows)
        if (r.task == task && r.design == d && r.status == "ok") mine.push_back(&r);
      if (mine.empty()) continue;
      out << "| " << task << " | " << d << " | "
          << with_spread(values(mine, [](const auto& r) { return r.zero_shot_acc; }), "%.3f")
          << " | " << with_spread(values(mine, [](const auto& r) { return r.acc; }), "%.3f")
          << " | " << with_spread(values(mine, [](const auto& r) { return r.acc_norm; }), "%.3f")
          << " | "
          << with_spread(values(mine, [](const auto& r) { return r.delta_points; }), "%+.1f")
          << " | "
          << with_spread(values(mine, [](const auto& r) { return r.best_rouge_l; }), "%.3f")
          << " |\n";
    }

  if (undefended) {
    const auto& ref = *undefended;
    out << "\n## Targets (against " << ctx.undefended << ")\n\n";
    out << "Issue 15's targets for a defended design: the worst step's best attack below 0.3 "
           "ROUGE-L F1, the adaptive attacker below 0.5, accuracy within 1.5 points of "
        << ctx.undefended << " (the point estimate; the interval says how sure), and at least "
        << "75% fewer bytes per step than " << ctx.undefended << ".\n\n";
    out << "| design | worst step < 0.3 | adaptive < 0.5 | accuracy within 1.5 points [95% CI] "
           "| bytes per step −75% (all training bytes / steps) |\n"
           "|---|---|---|---|---|\n";
    for (const auto& s : summaries) {
      if (!s.ran || s.design == ctx.undefended || s.strategy == "centralized") continue;
      const auto gap = difference_interval(s.items, ref.items);
      const double point = gap.valid ? 100 * gap.mean : 100 * (s.acc - ref.acc);
      // All training traffic over the steps: offline designs pay once, not per step.
      const double ref_step = ref.total / ref.steps, step = s.total / s.steps;
      const double cut = ref_step > 0 ? 100 * (1 - step / ref_step) : kNoValue;
      const auto verdict = [](bool ok) { return ok ? "yes" : "**no**"; };
      const auto privacy = [&](double v, double limit) {
        return has(v) ? fmt("%.3f ", v) + verdict(v < limit) : std::string("nothing crosses: yes");
      };
      out << "| " << s.design << " | " << privacy(s.worst, 0.3) << " | " << privacy(s.adaptive, 0.5)
          << " | " << fmt("%+.1f", point)
          << (gap.valid
                  ? " [" + fmt("%+.1f", 100 * gap.lo) + ", " + fmt("%+.1f", 100 * gap.hi) + "]"
                  : std::string())
          << " " << verdict(point >= -1.5) << " | "
          << (has(cut) ? fmt("%.1f%% ", cut) + verdict(cut >= 75) : std::string("–")) << " |\n";
    }
  }

  bool failed = false;
  for (const auto& r : rows) failed |= r.status != "ok";
  if (failed) {
    out << "\n## Failed runs\n\n";
    for (const auto& r : rows)
      if (r.status != "ok")
        out << "- " << r.design << " / " << r.train_task << " / seed " << r.seed << ": " << r.status
            << "\n";
  }
  out << frontier_markdown(rows, ctx);
  out << "\n## Plots\n\n"
      << (ctx.sweeps.empty() ? "" : "![frontier](frontier.png)\n")
      << "![accuracy vs attack](accuracy_vs_attack.png)\n"
         "![accuracy vs bytes](accuracy_vs_bytes.png)\n\nPer-run numbers: `results.csv`; each "
         "run's own results.json and log: `runs/<design>.<task>.s<seed>/`.\n";
  return out.str();
}

std::string plot_points(const std::vector<ExperimentRow>& rows,
                        const std::vector<std::string>& designs) {
  std::ostringstream out;
  out << "# design accuracy worst_step_rouge_l total_bytes (accuracy and bytes: means over tasks "
         "and seeds; ROUGE-L: the worst attacked step)\n";
  for (const auto& d : designs) {
    const auto s = summarize(rows, d);
    if (!s.ran || !has(s.acc)) continue;
    // Nothing to invert (offsite/offline): plotted at 0.
    // The strict figure: the worst attacked step (the mean where no step was recorded).
    const double rouge = has(s.worst) ? s.worst : s.rouge;
    out << '"' << d << "\" " << fmt("%.4f", s.acc) << ' ' << (has(rouge) ? fmt("%.4f", rouge) : "0")
        << ' ' << fmt("%.0f", s.total) << '\n';
  }
  return out.str();
}

std::string plot_script(const std::string& points_file, const std::string& dir) {
  std::ostringstream out;
  out << "# gnuplot script written by gtune experiment; rerun with: gnuplot plots.gp\n"
         "set terminal pngcairo size 900,600 font 'sans,11'\n"
         "set grid\n"
         "set key off\n"
         "set ylabel 'accuracy (mean over tasks)'\n"
         "set offsets graph 0.05, graph 0.15, graph 0.08, graph 0.08\n"
         "set output '"
      << dir << "/accuracy_vs_attack.png'\n"
      << "set title 'Utility vs. privacy: accuracy vs. the best attack at the worst step (lower "
         "is more private)'\n"
         "set xlabel 'worst-step reconstruction attack, ROUGE-L F1 (0 = nothing to invert)'\n"
         "set xrange [0:1.2]\n"
         "plot '"
      << points_file
      << "' using 3:2 with points pt 7 ps 1.5, '' using 3:2:1 with labels offset 1,0.8 left\n"
         "set output '"
      << dir << "/accuracy_vs_bytes.png'\n"
      << "set title 'Utility vs. cost: accuracy vs. training bytes on the wire (log scale)'\n"
         "set xlabel 'bytes per run (all training traffic)'\n"
         "set autoscale x\n"
         "set logscale x\n"
         "set format x '10^{%L}'\n"
         "plot '"
      << points_file
      << "' using ($4 > 0 ? $4 : 1):2 with points pt 7 ps 1.5, '' using ($4 > 0 ? $4 : 1):2:1 "
         "with labels offset 1,0.8 left\n";
  return out.str();
}

}  // namespace gt
