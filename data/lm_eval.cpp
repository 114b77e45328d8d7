// Sum of per-token losses over the whole set, so batches of different sizes weigh right.
#include "data/lm_eval.hpp"

#include <cmath>

#include "common/progress.hpp"

namespace gt {

LmScore evaluate_lm(
    const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>& logits_fn,
    const LmDataset& data, int64_t batch_size, const std::string& progress_label) {
  torch::NoGradGuard no_grad;
  double total = 0;
  int64_t tokens = 0;
  const auto n = static_cast<int64_t>(data.size());
  std::unique_ptr<Progress> progress;
  if (!progress_label.empty()) progress = std::make_unique<Progress>(progress_label, n);
  for (int64_t start = 0; start < n; start += batch_size) {
    std::vector<size_t> idx;
    for (int64_t i = start; i < std::min(n, start + batch_size); ++i)
      idx.push_back(static_cast<size_t>(i));
    auto batch = data.batch(idx);
    auto logits = logits_fn(batch.input_ids, batch.attention_mask);
    const auto V = logits.size(-1);
    auto labels = batch.labels.slice(1, 1).reshape({-1});
    auto losses = torch::nn::functional::cross_entropy(
        logits.slice(1, 0, -1).reshape({-1, V}).to(torch::kFloat), labels,
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kSum));
    total += losses.item<double>();
    tokens += labels.ne(-100).sum().item<int64_t>();
    if (progress) progress->update(std::min(n, start + batch_size));
  }
  LmScore s;
  s.tokens = tokens;
  s.loss = tokens > 0 ? total / double(tokens) : 0.0;
  s.perplexity = std::exp(s.loss);
  if (progress) progress->finish();
  return s;
}

}  // namespace gt
