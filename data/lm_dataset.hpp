// Token sequences for causal-LM fine-tuning, batched with right padding.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "models/tokenizer.hpp"

namespace gt {

struct LmBatch {
  torch::Tensor input_ids;       // (B, T) int64
  torch::Tensor attention_mask;  // (B, T) int64, 1 = real token
  torch::Tensor labels;          // (B, T) int64, -100 at padding
};

class LmDataset {
 public:
  // Each text becomes [bos] + encode(text) + [eos], cut to max_len tokens.
  LmDataset(const std::vector<std::string>& texts, const Tokenizer& tokenizer, int64_t max_len);
  size_t size() const { return sequences_.size(); }
  int64_t num_tokens() const;
  LmBatch batch(const std::vector<size_t>& indices) const;

 private:
  std::vector<std::vector<int64_t>> sequences_;
  int64_t pad_id_;
};

// The sample order of one epoch: a permutation of 0..n-1 fixed by (seed, epoch).
std::vector<size_t> epoch_order(size_t n, uint64_t seed, int64_t epoch);

}  // namespace gt
