// See run_report.hpp.
#include "apps/run_report.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "models/adapter_io.hpp"

namespace gt::cli {

void write_outputs(const std::string& dir, const std::string& results_json,
                   const std::vector<ClientSide>& clients) {
  std::filesystem::create_directories(dir);
  const auto path = dir + "/results.json";
  {
    std::ofstream out(path + ".tmp");
    out << results_json << "\n";
    if (!out) throw error_at(path, "cannot write");
  }
  std::filesystem::rename(path + ".tmp", path);  // never a half-written results file
  save_adapters(dir + "/adapters.safetensors", clients.front().seg(), true);
  if (clients.size() > 1)
    for (const auto& c : clients)
      save_adapters(dir + "/adapters-" + c.name + ".safetensors", c.seg(), true);
}

void print_summary(const std::string& results_json) {
  auto j = nlohmann::json::parse(results_json);
  const auto& totals = j["totals"];
  std::printf("\n%-34s %s\n", "", "summary");
  std::printf("%-34s %.4f -> %.4f (perplexity %.2f -> %.2f)\n", "held-out loss",
              totals["eval_loss_before"].get<double>(), totals["eval_loss_after"].get<double>(),
              std::exp(totals["eval_loss_before"].get<double>()),
              std::exp(totals["eval_loss_after"].get<double>()));
  if (j["phases"].size() > 1 || totals["clients"].get<int64_t>() > 1 || !j["switches"].empty()) {
    std::printf("  %-5s %-22s %7s %13s %13s %13s %9s\n", "phase", "strategy", "steps", "up (B)",
                "down (B)", "other (B)", "loss");
    for (const auto& p : j["phases"]) {
      std::string strategies;
      for (const auto& s : p["strategies"])
        strategies += (strategies.empty() ? "" : "->") + s.get<std::string>();
      std::printf("  %-5lld %-22s %7lld %13lld %13lld %13lld %9.4f\n",
                  static_cast<long long>(p["index"].get<int64_t>() + 1), strategies.c_str(),
                  static_cast<long long>(p["steps"].get<int64_t>()),
                  static_cast<long long>(p["step_bytes_up"].get<int64_t>()),
                  static_cast<long long>(p["step_bytes_down"].get<int64_t>()),
                  static_cast<long long>(p["other_bytes"].get<int64_t>()),
                  p["eval_loss"].get<double>());
    }
  }
  std::printf("%-34s %lld (%lld client(s))\n", "steps",
              static_cast<long long>(totals["steps"].get<int64_t>()),
              static_cast<long long>(totals["clients"].get<int64_t>()));
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
  if (j.contains("emulators"))
    for (const auto& e : j["emulators"])
      std::printf(
          "%-34s %s: %.2f MB; standalone loss %.4f vs full model %.4f; tuned adapters "
          "%.4f on the emulator, %.4f plugged into the full model\n",
          "emulator", e["strategy"].get<std::string>().c_str(),
          e["file_bytes"].get<int64_t>() / 1e6, e["emulator_pretrained_loss"].get<double>(),
          e["full_pretrained_loss"].get<double>(), e["emulator_tuned_loss"].get<double>(),
          e["full_tuned_loss"].get<double>());
  if (j.contains("tasks"))
    for (const auto& t : j["tasks"]["tasks"]) {
      std::string tuned;
      for (const auto& c : t["tuned"]) {
        char buf[96];
        std::snprintf(buf, sizeof buf, "%s%.3f", tuned.empty() ? "" : ", ", c["acc"].get<double>());
        tuned += buf;
      }
      std::printf("%-34s %s: acc %.3f zero-shot -> %s tuned (acc_norm %.3f -> %.3f), %lld items\n",
                  "task", t["task"].get<std::string>().c_str(), t["zero_shot"]["acc"].get<double>(),
                  tuned.c_str(), t["zero_shot"]["acc_norm"].get<double>(),
                  t["tuned"][0]["acc_norm"].get<double>(),
                  static_cast<long long>(t["zero_shot"]["items"].get<int64_t>()));
    }
  if (j.contains("generation")) {
    const auto& g = j["generation"];
    std::string tuned;
    for (const auto& c : g["tuned"]) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "%s%.3f [%.3f, %.3f]", tuned.empty() ? "" : ", ",
                    c["rouge_l"].get<double>(), c["ci95"][0].get<double>(),
                    c["ci95"][1].get<double>());
      tuned += buf;
    }
    std::printf("%-34s ROUGE-L %.3f pretrained -> %s tuned, %lld held-out words\n",
                "generated definitions", g["pretrained"]["rouge_l"].get<double>(), tuned.c_str(),
                static_cast<long long>(g["examples"].get<int64_t>()));
    const auto& pre = g["pretrained"]["samples"];
    const auto& post = g["tuned"][0]["samples"];
    for (size_t i = 0; i < std::min<size_t>(2, post.size()); ++i)
      std::printf("  %s\n    WordNet:   %s\n    pretrained:%s\n    tuned:     %s\n",
                  post[i]["prompt"].get<std::string>().c_str(),
                  (" " + post[i]["reference"].get<std::string>()).c_str(),
                  pre[i]["text"].get<std::string>().c_str(),
                  post[i]["text"].get<std::string>().c_str());
  }
  if (j.contains("attacks"))
    for (const auto& a : j["attacks"]["scores"])
      std::printf(
          "%-34s %s on %s: ROUGE-L F1 %.3f (p10 %.3f, p90 %.3f), token accuracy %.3f, "
          "%zu samples\n",
          "attack", a["attack"].get<std::string>().c_str(),
          a["strategy"].get<std::string>().c_str(), a["rouge_l"].get<double>(),
          a["rouge_l_p10"].get<double>(), a["rouge_l_p90"].get<double>(),
          a["token_accuracy"].get<double>(), a["samples"].get<size_t>());
  if (j.contains("attacks"))  // the strict figures: the worst attacked step of each kind
    for (const char* kind : {"worst_step", "worst_step_adaptive"}) {
      const auto worst = j["attacks"].value(kind, nlohmann::json::object());
      for (const auto& [strategy, w] : worst.items())
        std::printf("%-34s on %s: ROUGE-L F1 %.3f at step %lld (%s)\n",
                    std::string(kind) == "worst_step" ? "privacy: worst step"
                                                      : "privacy: adaptive attacker, worst step",
                    strategy.c_str(), w["rouge_l"].get<double>(),
                    static_cast<long long>(w["step"].get<int64_t>()),
                    w["attack"].get<std::string>().c_str());
    }
  if (j.contains("membership"))
    for (const auto& m : j["membership"])
      std::printf(
          "%-34s on %s's returned adapters: AUC %.3f, advantage %.3f (%zu members, %zu "
          "non-members)\n",
          "membership inference", m["client"].get<std::string>().c_str(), m["auc"].get<double>(),
          m["advantage"].get<double>(), m["members"].get<size_t>(), m["non_members"].get<size_t>());
  if (j.contains("client_memory")) {
    const auto& m = j["client_memory"];
    std::printf("%-34s %.1f MB (parameters %.1f, gradients %.1f, optimizer %.1f, emulator %.1f)\n",
                "client memory", m["total_bytes"].get<int64_t>() / 1e6,
                m["parameters_bytes"].get<int64_t>() / 1e6,
                m["gradient_bytes"].get<int64_t>() / 1e6, m["optimizer_bytes"].get<int64_t>() / 1e6,
                m["emulator_bytes"].get<int64_t>() / 1e6);
  }
  std::printf("%-34s %.1f s\n", "wall time", totals["wall_seconds"].get<double>());
}

}  // namespace gt::cli
