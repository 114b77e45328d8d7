// See run_config_checks.hpp.
#include "config/run_config_checks.hpp"

#include <algorithm>
#include <vector>

#include "config/field_registry.hpp"

namespace gt::config_detail {

void validate(const RunConfig& cfg, const std::string& where, const Lines& lines) {
  auto line = [&](const std::string& name) {
    auto it = lines.find(name);
    return it == lines.end() ? 0 : it->second;
  };
  // The line of a phase's key, or else of its [[phase]] header.
  auto phase_line = [&](size_t i, const std::string& key) {
    const int at = line(phase_name(i) + "." + key);
    return at > 0 ? at : line(phase_name(i));
  };
  for (const auto& f : fields()) {
    const std::string why = f.check(f.read(cfg));
    if (!why.empty()) fail(where, line(f.name()), f.name(), why);
  }
  for (size_t i = 0; i < cfg.phases.size(); ++i)
    for (const auto& f : phase_fields()) {
      const std::string why = f.check(f.read_phase(cfg.phases[i]));
      if (!why.empty()) fail(where, phase_line(i, f.key), phase_name(i) + "." + f.key, why);
    }
  for (const auto& f : fields()) {
    if (f.applies(cfg) || f.read(cfg) == f.neutral) continue;
    fail(where, line(f.name()), f.name(),
         "only used when " + f.when.text + " (" + f.when.state(cfg) + "); remove it or set it to " +
             toml_literal(f.neutral));
  }
  const auto& t = cfg.training;
  if (cfg.phases.empty()) {
    if (t.steps > 0 && t.epochs > 0)
      fail(where, line("training.epochs"), "training.epochs",
           "set either training.steps or training.epochs, not both (steps = " +
               std::to_string(t.steps) + ", epochs = " + std::to_string(t.epochs) + ")");
    if (t.steps == 0 && t.epochs == 0)
      fail(where, line("training.steps"), "training.steps",
           "one of training.steps and training.epochs must be > 0");
  } else {
    for (const char* name : {"training.steps", "training.epochs"})
      if (std::get<int64_t>(find_field(name)->read(cfg)) > 0)
        fail(where, line(name), name,
             "not used with [[phase]] tables: each phase says how long it runs (remove it or "
             "set it to 0)");
    const char* first = to_string(cfg.phases[0].strategy);
    if (cfg.strategy.kind != cfg.phases[0].strategy)
      fail(where, line("strategy.kind"), "strategy.kind",
           "\"" + std::string(to_string(cfg.strategy.kind)) +
               "\", but the plan starts with phase[0].strategy = \"" + first +
               "\"; with [[phase]] tables the phases name the strategies (remove strategy.kind)");
    for (size_t i = 0; i < cfg.phases.size(); ++i) {
      const auto& p = cfg.phases[i];
      const std::string name = phase_name(i);
      if (p.steps > 0 && p.epochs > 0)
        fail(where, phase_line(i, "epochs"), name + ".epochs",
             "set either steps or epochs, not both (steps = " + std::to_string(p.steps) +
                 ", epochs = " + std::to_string(p.epochs) + ")");
      if (p.steps == 0 && p.epochs == 0)
        fail(where, phase_line(i, "steps"), name + ".steps", "one of steps and epochs must be > 0");
      if (p.strategy == StrategyKind::centralized && cfg.phases.size() > 1)
        fail(where, phase_line(i, "strategy"), name + ".strategy",
             "\"centralized\" cannot be part of a plan of " + std::to_string(cfg.phases.size()) +
                 " phases (it has no server session); run it alone");
    }
  }
  // A local backward computes g1 on the whole batch at once: nothing to pipeline.
  if (cfg.strategy.backward == "local" && cfg.strategy.micro_batches > 1)
    fail(where, line("strategy.micro_batches"), "strategy.micro_batches",
         std::to_string(cfg.strategy.micro_batches) +
             " micro-batches with strategy.backward = \"local\", which sends no gradient to "
             "pipeline; set it to 1");
  // The model owner plugs offline adapters into a model that sees true tokens.
  if (cfg.privacy.token_clusters > 0 &&
      (plan_uses(cfg, StrategyKind::offsite) || plan_uses(cfg, StrategyKind::offline)))
    fail(where, line("privacy.token_clusters"), "privacy.token_clusters",
         std::to_string(cfg.privacy.token_clusters) +
             " clusters with an offsite or offline phase, whose adapters the model owner runs "
             "on true tokens; set it to 0 or leave those phases out");
  // centralized runs alone: one phase (above), one client, no switch to a fallback.
  if (plan_uses(cfg, StrategyKind::centralized)) {
    if (cfg.scheduler.clients > 1)
      fail(where, line("scheduler.clients"), "scheduler.clients",
           std::to_string(cfg.scheduler.clients) +
               " clients cannot run \"centralized\" (it has no server session); set "
               "scheduler.clients = 1 or choose another strategy");
    if (cfg.scheduler.budget_bytes > 0)
      fail(where, line("scheduler.budget_bytes"), "scheduler.budget_bytes",
           "a budget cannot switch away from \"centralized\" (it has no server session); set "
           "scheduler.budget_bytes = 0 or choose another strategy");
  }
  if (cfg.data.kind == "jsonl" && cfg.data.path.empty())
    fail(where, line("data.kind"), "data.path", "required when data.kind = \"jsonl\"");
}

}  // namespace gt::config_detail
