// What a finished run leaves behind: results.json and adapters in --out, and
// a summary table on stdout.
#pragma once

#include <string>
#include <vector>

#include "apps/parties.hpp"

namespace gt::cli {

// Writes DIR/results.json and DIR/adapters.safetensors (the first client's
// trained adapters), plus DIR/adapters-<client>.safetensors for every client
// when there are several.
void write_outputs(const std::string& dir, const std::string& results_json,
                   const std::vector<ClientSide>& clients);
void print_summary(const std::string& results_json);

}  // namespace gt::cli
