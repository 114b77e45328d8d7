// See run_report.hpp.
#include "apps/run_report.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "models/adapter_io.hpp"

namespace gt::cli {

void write_outputs(const std::string& dir, const std::string& results_json,
                   const ClientSide& client) {
  std::filesystem::create_directories(dir);
  const auto path = dir + "/results.json";
  {
    std::ofstream out(path + ".tmp");
    out << results_json << "\n";
    if (!out) throw error_at(path, "cannot write");
  }
  std::filesystem::rename(path + ".tmp", path);  // never a half-written results file
  save_adapters(dir + "/adapters.safetensors", client.seg, true);
}

void print_summary(const std::string& results_json) {
  auto j = nlohmann::json::parse(results_json);
  const auto& evals = j["evals"];
  const auto& totals = j["totals"];
  std::printf("\n%-34s %s\n", "", "summary");
  if (!evals.empty()) {
    std::printf("%-34s %.4f (perplexity %.2f)\n", "held-out loss before",
                evals.front()["loss"].get<double>(), evals.front()["perplexity"].get<double>());
    std::printf("%-34s %.4f (perplexity %.2f)\n", "held-out loss after",
                evals.back()["loss"].get<double>(), evals.back()["perplexity"].get<double>());
  }
  std::printf("%-34s %lld\n", "steps", static_cast<long long>(totals["steps"].get<int64_t>()));
  std::printf("%-34s %.3f MB up, %.3f MB down\n", "training traffic",
              totals["step_bytes_up"].get<int64_t>() / 1e6,
              totals["step_bytes_down"].get<int64_t>() / 1e6);
  std::printf("%-34s %lld\n", "bytes per step",
              static_cast<long long>(totals["bytes_per_step"].get<int64_t>()));
  // Per message kind, over the whole run (evaluation traffic has kinds ending in ".eval").
  std::map<std::string, int64_t> by_kind;
  for (const auto& b : totals["all_bytes"])
    by_kind[b["direction"].get<std::string>() + " " + b["kind"].get<std::string>()] +=
        b["bytes"].get<int64_t>();
  for (const auto& [kind, bytes] : by_kind)
    std::printf("  %-32s %14lld bytes\n", kind.c_str(), static_cast<long long>(bytes));
  std::printf("%-34s %.1f s\n", "wall time", totals["wall_seconds"].get<double>());
}

}  // namespace gt::cli
