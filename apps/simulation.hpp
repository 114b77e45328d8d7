// One multi-party run in this process, as `gtune simulate` runs it without --processes: the
// parties of the configuration as actors (or the centralized baseline), then task evaluation,
// membership inference and the client's memory. Shared by simulate and audit.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "config/run_config.hpp"

namespace gt::cli {

// Prints the plan; returns results.json's document and, with `out`, writes results.json and
// the adapters there.
nlohmann::json simulate_in_process(const RunConfig& cfg, const std::string& out, bool progress);

}  // namespace gt::cli
