// One multi-party run in this process, as `gtune simulate` runs it without --processes: the
// parties of the configuration as actors (or the centralized baseline), then task evaluation,
// membership inference and the client's memory. Shared by simulate and audit.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "config/run_config.hpp"
#include "monitoring/metrics.hpp"

namespace gt::cli {

// Prints the plan; returns results.json's document and, with `out`, writes results.json and
// the adapters there.
// `metrics` (may be null) receives the clients' wire bytes, steps and strategies and the
// attacker's scores as they happen.
nlohmann::json simulate_in_process(const RunConfig& cfg, const std::string& out, bool progress,
                                   std::shared_ptr<Metrics> metrics = nullptr);

}  // namespace gt::cli
