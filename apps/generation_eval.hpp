// Generation quality after a run (issue 18): for held-out WordNet words ("abandon (verb):"),
// the definition the pretrained and each client's tuned model generate (greedy), scored by
// ROUGE-L against WordNet's ("forsake, leave behind"), with a bootstrap 95% interval.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "apps/parties.hpp"

namespace gt::cli {

// {"examples", "max_tokens", "pretrained": {rouge_l, ci95, samples}, "tuned": [{client, rouge_l,
// ci95, samples}]}; null when evaluation.generation_examples is 0.
nlohmann::json evaluate_generation(const RunConfig& cfg, const std::vector<ClientSide>& clients,
                                   bool show_progress);

}  // namespace gt::cli
