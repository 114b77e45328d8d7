// gtune experiment: every design side by side. Runs a grid of simulations (designs x tasks x
// seeds, experiment/experiment_config.hpp), each as its own `gtune simulate` process so that
// its memory is measured alone and a failure stays in its cell, then writes report.md,
// results.csv and plots. Finished cells are kept: rerunning after a crash runs only the rest.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "apps/child_process.hpp"
#include "apps/commands.hpp"
#include "common/error.hpp"
#include "config/run_config.hpp"
#include "experiment/experiment_config.hpp"
#include "experiment/experiment_report.hpp"
#include "experiment/frontier.hpp"
#include "models/device.hpp"

namespace gt::cli {
namespace {

namespace fs = std::filesystem;

struct ExperimentOptions {
  std::string config, out;
  std::string device;  // "" = each cell's configuration decides (run.device)
  bool quick = false, fresh = false;
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_file(const fs::path& path, const std::string& text) {
  {
    std::ofstream out(path.string() + ".tmp");
    out << text;
    if (!out) throw error_at(path.string(), "cannot write");
  }
  fs::rename(path.string() + ".tmp", path);  // never half a file
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// Every cell's effective configuration (as TOML), loaded before anything runs: a typo fails in
// a second, not after an hour. A finished run is reused only when its configuration is the same.
std::map<std::string, std::string> check_cells(const ExperimentConfig& exp,
                                               const std::vector<ExperimentCell>& cells) {
  const auto base = load_run_config(exp.base);
  std::map<std::string, std::string> effective;
  for (const auto& c : cells) {
    auto cfg = base;
    try {
      apply_overrides(cfg, c.overrides);
    } catch (const Error& e) {
      throw Error(exp.source + ": design \"" + c.design + "\" (task " + c.task + ", seed " +
                  std::to_string(c.seed) + "): " + e.what());
    }
    effective[c.id] = to_toml(cfg);
  }
  return effective;
}

std::string machine_text() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  return model + ", " + std::to_string(sysconf(_SC_NPROCESSORS_ONLN)) + " cores";
}

std::string utc_now() {
  const auto t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return buf;
}

// Runs one cell (or reuses its finished run) and returns its rows.
std::vector<ExperimentRow> run_cell(const ExperimentConfig& exp, const ExperimentCell& cell,
                                    const std::string& effective_config, const fs::path& dir,
                                    bool fresh, const std::string& tag) {
  const auto results_path = dir / "results.json", measured_path = dir / "measured.json";
  CellMeasurement m;
  if (!fresh && fs::exists(results_path) && fs::exists(measured_path) &&
      same_run_config(read_file(dir / "config.toml"), effective_config)) {
    const auto j = nlohmann::json::parse(read_file(measured_path));
    m = {true, "", j.at("seconds").get<double>(), j.at("peak_rss_mb").get<double>()};
    std::printf("%s %s: finished earlier, reused\n", tag.c_str(), cell.id.c_str());
    std::fflush(stdout);
    return experiment_rows(cell, nlohmann::json::parse(read_file(results_path)), m);
  }
  fs::remove_all(dir);
  fs::create_directories(dir);
  write_file(dir / "overrides.txt", joined(cell.overrides));
  write_file(dir / "config.toml", effective_config);  // what a rerun compares
  std::vector<std::string> args{"simulate",   "--config", exp.base,    "--out",
                                dir.string(), "--quiet",  "--metrics", "0"};
  for (const auto& o : cell.overrides) args.insert(args.end(), {"--set", o});
  std::printf("%s %s: running (log %s)\n", tag.c_str(), cell.id.c_str(), (dir / "log.txt").c_str());
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  const auto exit = wait_child(spawn_self(args, (dir / "log.txt").string()));
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  m.peak_rss_mb = double(exit.peak_rss_kb) / 1024.0;
  m.ok = exit.status == 0 && fs::exists(results_path);
  if (!m.ok) {
    m.error = "exit status " + std::to_string(exit.status) + ", see " + (dir / "log.txt").string();
    std::printf("%s %s: FAILED (%s)\n", tag.c_str(), cell.id.c_str(), m.error.c_str());
    return failed_rows(cell, m);
  }
  write_file(measured_path,
             nlohmann::json{{"seconds", m.seconds}, {"peak_rss_mb", m.peak_rss_mb}}.dump(1));
  auto rows = experiment_rows(cell, nlohmann::json::parse(read_file(results_path)), m);
  double acc = 0;
  for (const auto& r : rows) acc += r.acc / double(rows.size());
  std::printf("%s %s: done in %.0f s; accuracy %.3f, best attack %s %.3f\n", tag.c_str(),
              cell.id.c_str(), m.seconds, acc,
              rows.front().best_attack.empty() ? "none" : rows.front().best_attack.c_str(),
              std::isnan(rows.front().best_rouge_l) ? 0.0 : rows.front().best_rouge_l);
  std::fflush(stdout);
  return rows;
}

bool make_plots(const fs::path& out, const ReportContext& ctx) {
  write_file(out / "plots.gp",
             plot_script("points.dat", ".") + frontier_plot_script("frontier.dat", ".", ctx));
  if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
    spdlog::warn(
        "gnuplot is not installed (Debian: gnuplot-nox): no PNG plots; the data and "
        "script are in {}",
        out.string());
    return false;
  }
  const auto cmd = "cd '" + out.string() + "' && gnuplot plots.gp";
  if (std::system(cmd.c_str()) != 0) {
    spdlog::warn("gnuplot failed; see {}/plots.gp", out.string());
    return false;
  }
  return true;
}

void run_experiment(const ExperimentOptions& opt) {
  if (!opt.device.empty()) parse_device(opt.device, "--device");  // before any cell runs
  const auto exp = load_experiment_config(opt.config);
  auto cells = experiment_cells(exp, opt.quick);
  const fs::path out = fs::absolute(opt.out);
  // Shared by the cells: the attacker's inversion models are fitted once per setting.
  for (auto& c : cells) {
    c.overrides.insert(c.overrides.begin(),
                       "attacker.cache_dir=" + (out / "attacker-cache").string());
    c.overrides.push_back("scheduler.control=");  // cells run one at a time; no control port
    if (!opt.device.empty()) c.overrides.push_back("run.device=" + opt.device);
  }
  const auto effective = check_cells(exp, cells);
  fs::create_directories(out / "runs");
  std::printf("experiment %s: %zu designs x %zu tasks x %zu seeds = %zu runs%s, into %s\n",
              opt.config.c_str(), exp.designs.size(), exp.tasks.size(), exp.seeds.size(),
              cells.size(), opt.quick ? " (quick)" : "", out.c_str());
  std::fflush(stdout);
  std::vector<ExperimentRow> rows;
  bool failed = false;
  for (size_t i = 0; i < cells.size(); ++i) {
    const auto tag = "[" + std::to_string(i + 1) + "/" + std::to_string(cells.size()) + "]";
    auto cell_rows = run_cell(exp, cells[i], effective.at(cells[i].id), out / "runs" / cells[i].id,
                              opt.fresh, tag);
    for (const auto& r : cell_rows) failed |= r.status != "ok";
    rows.insert(rows.end(), cell_rows.begin(), cell_rows.end());
  }
  fill_deltas(rows, exp.baseline);
  ReportContext ctx;
  ctx.title = "GuardedTuning: designs side by side (" + fs::path(opt.config).filename().string() +
              (opt.quick ? ", quick" : "") + ")";
  ctx.command = "gtune experiment --config " + opt.config + " --out " + opt.out +
                (opt.quick ? " --quick" : "") +
                (opt.device.empty() ? "" : " --device " + opt.device);
  ctx.machine = machine_text();
  ctx.date = utc_now();
  ctx.baseline = exp.baseline;
  ctx.undefended = exp.undefended;
  for (const auto& d : exp.designs) ctx.designs.push_back(d.name);
  ctx.sweeps = frontier_sweeps(exp);
  write_file(out / "results.csv", results_csv(rows));
  write_file(out / "points.dat", plot_points(rows, ctx.designs));
  if (!ctx.sweeps.empty()) write_file(out / "frontier.dat", frontier_points(rows, ctx));
  write_file(out / "report.md", report_markdown(rows, ctx));
  make_plots(out, ctx);
  std::printf("report    %s/report.md, %s/results.csv, plots in %s\n", out.c_str(), out.c_str(),
              out.c_str());
  if (failed) {
    std::fprintf(stderr, "gtune: error: some runs failed (see report.md)\n");
    throw ExitStatus{2};
  }
}

}  // namespace

void add_experiment(CLI::App& app) {
  auto opt = std::make_shared<ExperimentOptions>();
  auto* cmd = app.add_subcommand(
      "experiment", "Run every design side by side (a grid of simulations) and write a report");
  cmd->add_option("--config", opt->config, "experiment file (e.g. config/examples/compare.toml)")
      ->required();
  cmd->add_option("--out", opt->out, "directory for report.md, results.csv, plots and runs/")
      ->required();
  cmd->add_flag("--quick", opt->quick, "add the file's quick overrides (a smoke test)");
  cmd->add_flag("--fresh", opt->fresh, "run every cell again, even those finished before");
  cmd->add_option("--device", opt->device,
                  "where every run computes: cpu, cuda or cuda:N (sets run.device in each cell)");
  cmd->callback([opt] { run_experiment(*opt); });
}

}  // namespace gt::cli
