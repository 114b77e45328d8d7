// Token-level loss and perplexity of a model over a dataset.
#pragma once

#include <functional>

#include "data/lm_dataset.hpp"

namespace gt {

struct LmScore {
  double loss = 0;        // mean cross-entropy per predicted token (nats)
  double perplexity = 0;  // exp(loss)
  int64_t tokens = 0;     // predicted tokens counted
};

// `logits_fn` maps (input_ids, attention_mask) to (B, T, V) logits. Runs without
// gradients over every sample once, `batch_size` at a time; shows progress if asked.
LmScore evaluate_lm(
    const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>& logits_fn,
    const LmDataset& data, int64_t batch_size, const std::string& progress_label = "");

}  // namespace gt
