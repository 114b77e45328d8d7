// Token sequences for causal-LM fine-tuning, batched with right padding.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/batch_source.hpp"
#include "models/tokenizer.hpp"

namespace gt {

class LmDataset : public BatchSource {
 public:
  // Each text becomes [bos] + encode(text) + [eos], cut to max_len tokens.
  LmDataset(const std::vector<std::string>& texts, const Tokenizer& tokenizer, int64_t max_len);
  size_t size() const override { return sequences_.size(); }
  int64_t num_tokens() const;
  LmBatch batch(const std::vector<size_t>& indices) const override;

 private:
  std::vector<std::vector<int64_t>> sequences_;
  int64_t pad_id_;
};

// The sample order of one epoch: a permutation of 0..n-1 fixed by (seed, epoch).
std::vector<size_t> epoch_order(size_t n, uint64_t seed, int64_t epoch);

}  // namespace gt
