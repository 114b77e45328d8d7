// Task accuracy after a run: the WordNet multiple-choice tasks of
// [evaluation], scored lm-eval style for the pretrained model (zero-shot) and
// for every client's tuned adapters in the full model.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "apps/parties.hpp"

namespace gt::cli {

// {"items": n, "tasks": [{"task", "zero_shot": {acc, acc_norm}, "tuned": [{client, acc,
// acc_norm}]}]}; null when no task is configured.
nlohmann::json evaluate_tasks(const RunConfig& cfg, const std::vector<ClientSide>& clients,
                              bool show_progress);

}  // namespace gt::cli
