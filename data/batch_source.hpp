// Anything that yields training batches by sample index (LM texts, instructions).
#pragma once

#include <torch/torch.h>

#include <vector>

namespace gt {

struct LmBatch {
  torch::Tensor input_ids;       // (B, T) int64
  torch::Tensor attention_mask;  // (B, T) int64, 1 = real token
  torch::Tensor labels;          // (B, T) int64, -100 where no loss is taken
};

struct BatchSource {
  virtual ~BatchSource() = default;
  virtual size_t size() const = 0;
  virtual LmBatch batch(const std::vector<size_t>& indices) const = 0;
};

}  // namespace gt
