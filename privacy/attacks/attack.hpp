// What a curious server can intercept in one step, and the interface every
// data-reconstruction attack (DRA) implements: from what crossed the wire to
// a guess of each sample's tokens. Scoring against the truth is scoring.hpp.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace gt {

// One intercepted batch. Tensors the design does not expose are undefined:
// a1 and the mask arrive with every forward request; a2 is what the server
// computed from them; g2 crosses only where gradients do (split, online).
struct Intercept {
  torch::Tensor attention_mask;  // (B, T) int64, 1 = real token
  torch::Tensor a1;              // (B, T, C) as the server received it (dequantized)
  torch::Tensor a2;              // (B, T, C)
  torch::Tensor g2;              // (B, T, C) dLoss/da2
};

// Token ids guessed for each sample's real positions (mask == 1), in order.
using Reconstruction = std::vector<std::vector<int64_t>>;

class Attack {
 public:
  virtual ~Attack() = default;
  virtual std::string name() const = 0;
  // Whether the intercept holds what this attack needs (e.g. g2 for gradient attacks).
  virtual bool applicable(const Intercept& in) const = 0;
  virtual Reconstruction reconstruct(const Intercept& in) = 0;
};

}  // namespace gt
