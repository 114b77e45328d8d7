// gtune audit: the data owner's privacy audit. Before sending anything to a real server, the
// client runs its configured design on its own machine against a local server and a curious
// attacker that sees what the server would see; with the client's true text at hand (it never
// leaves this machine) every attack is scored. Prints the leakage per attack and writes
// DIR/audit.json; exits 2 when the best reconstruction (mean over the attacked steps, or at the
// worst step, adaptive attacker included) beats --max-rouge.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/commands.hpp"
#include "apps/run_options.hpp"
#include "apps/simulation.hpp"
#include "common/error.hpp"

namespace gt::cli {
namespace {

struct AuditOptions {
  RunOptions run;
  std::string out;
  double max_rouge = 0.3;
};

nlohmann::json audit_of(const nlohmann::json& results, double max_rouge) {
  nlohmann::json audit = {{"max_rouge_l", max_rouge}, {"attacks", nlohmann::json::array()}};
  double best = 0;
  std::string best_attack;
  for (const auto& s : results.value("attacks", nlohmann::json::object())
                           .value("scores", nlohmann::json::array())) {
    audit["attacks"].push_back(s);
    if (s["rouge_l"].get<double>() > best) {
      best = s["rouge_l"].get<double>();
      best_attack = s["attack"].get<std::string>();
    }
  }
  // Strictly: the worst attacked step, of the attacks that do not know the defence and of the
  // adaptive one, gates too (docs/privacy.md).
  const auto attacks = results.value("attacks", nlohmann::json::object());
  for (const char* kind : {"worst_step", "worst_step_adaptive"}) {
    const auto worst = attacks.value(kind, nlohmann::json::object());
    audit[kind] = worst;
    for (const auto& [strategy, w] : worst.items())
      if (w["rouge_l"].get<double>() > best) {
        best = w["rouge_l"].get<double>();
        best_attack =
            w["attack"].get<std::string>() + " at step " + std::to_string(w["step"].get<int64_t>());
      }
  }
  audit["best_attack"] = best_attack;
  audit["best_rouge_l"] = best;
  if (results.contains("membership")) audit["membership"] = results["membership"];
  audit["passed"] = best <= max_rouge;
  return audit;
}

void print_audit(const nlohmann::json& audit) {
  std::printf("\n%-24s %-8s %8s %8s %8s %9s %8s\n", "attack", "on", "ROUGE-L", "p50", "p90",
              "token acc", "samples");
  for (const auto& s : audit["attacks"])
    std::printf("%-24s %-8s %8.3f %8.3f %8.3f %9.3f %8zu\n", s["attack"].get<std::string>().c_str(),
                s["strategy"].get<std::string>().c_str(), s["rouge_l"].get<double>(),
                s["rouge_l_p50"].get<double>(), s["rouge_l_p90"].get<double>(),
                s["token_accuracy"].get<double>(), s["samples"].get<size_t>());
  if (audit["attacks"].empty())
    std::printf(
        "(no reconstruction attack applies: nothing the server receives can be inverted)\n");
  for (const auto& m : audit.value("membership", nlohmann::json::array()))
    std::printf(
        "membership inference on %s's returned adapters: AUC %.3f (0.5 = chance), "
        "advantage %.3f\n",
        m["client"].get<std::string>().c_str(), m["auc"].get<double>(),
        m["advantage"].get<double>());
  const double best = audit["best_rouge_l"].get<double>();
  std::printf("\nverdict: %s: best reconstruction ROUGE-L F1 %.3f%s %s the limit %.3f\n",
              audit["passed"].get<bool>() ? "PASS" : "FAIL", best,
              audit["best_attack"].get<std::string>().empty()
                  ? ""
                  : (" (" + audit["best_attack"].get<std::string>() + ")").c_str(),
              audit["passed"].get<bool>() ? "is within" : "exceeds",
              audit["max_rouge_l"].get<double>());
}

void run_audit_command(const AuditOptions& opt) {
  if (!(opt.max_rouge >= 0 && opt.max_rouge <= 1))
    throw Error("--max-rouge must be between 0 and 1");
  auto cfg = opt.run.load();
  if (plan_uses(cfg, StrategyKind::centralized))
    throw Error(
        "audit: the centralized baseline hands the raw text to the server; there is "
        "nothing to audit (choose a private design)");
  cfg.attacker.enabled = true;  // the point of an audit
  cfg.scheduler.control = "";   // a private run: no control port
  const auto results = simulate_in_process(cfg, opt.out, !opt.run.quiet);
  const auto audit = audit_of(results, opt.max_rouge);
  print_audit(audit);
  if (!opt.out.empty()) {
    std::ofstream(opt.out + "/audit.json") << audit.dump(1) << "\n";
    std::printf("audit     %s/audit.json\n", opt.out.c_str());
  }
  if (!audit["passed"].get<bool>()) throw ExitStatus{2};
}

}  // namespace

void add_audit(CLI::App& app) {
  auto opt = std::make_shared<AuditOptions>();
  auto* cmd = app.add_subcommand(
      "audit",
      "Privacy audit on your own machine: run your design against a local curious server and "
      "score its attacks on your true text");
  opt->run.add_to(*cmd);
  cmd->add_option("--out", opt->out, "directory for audit.json and results.json");
  cmd->add_option("--max-rouge", opt->max_rouge,
                  "largest acceptable ROUGE-L F1 of the best reconstruction (exit status 2 above)")
      ->capture_default_str();
  cmd->callback([opt] { run_audit_command(*opt); });
}

}  // namespace gt::cli
