// What a finished run leaves behind: results.json and adapters in --out, and
// a summary table on stdout.
#pragma once

#include <string>

#include "apps/parties.hpp"

namespace gt::cli {

// Writes DIR/results.json and DIR/adapters.safetensors (the client's trained adapters).
void write_outputs(const std::string& dir, const std::string& results_json,
                   const ClientSide& client);
void print_summary(const std::string& results_json);

}  // namespace gt::cli
