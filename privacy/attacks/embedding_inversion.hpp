// Embedding inversion: each intercepted a1 row is mapped to the token whose input embedding is
// nearest. Exact when a1 is the embedding output (n_in = 0); degrades as the client's blocks
// mix context into the residual stream (n_in >= 1).
#pragma once

#include <memory>

#include "models/segments.hpp"
#include "privacy/attacks/attack.hpp"

namespace gt {

// cosine ignores the row's norm (the residual stream grows with depth); l2 is the exact
// nearest neighbour. Both recover every token at n_in = 0 (also through int8/int4) and both fail
// after one block of the embedded model (measured in tests/unit/privacy_attacks.cpp).
enum class EmbeddingMetric { cosine, l2 };

class EmbeddingInversion : public Attack {
 public:
  // Reads the pretrained input adapter's embeddings module (the attacker owns the model).
  // The candidates are what that module outputs for each vocabulary id at position 0; for
  // position p, the module's position term (its output at p minus at 0, for a fixed id) is
  // subtracted from the a1 row first. This is exact for any embeddings that are token term +
  // position term (OPT's learned positions, with or without project_in; LLaMA, whose position
  // term is 0 because RoPE acts inside attention), and costs one (V, C) matrix, not V forward
  // passes per position. Shares the module with `pretrained`, whose weights must stay the
  // pretrained ones (position terms are read when first needed).
  explicit EmbeddingInversion(const Segments& pretrained,
                              EmbeddingMetric metric = EmbeddingMetric::cosine);

  std::string name() const override { return "embedding_inversion"; }
  bool applicable(const Intercept& in) const override;
  Reconstruction reconstruct(const Intercept& in) override;

 private:
  torch::Tensor position_terms(int64_t length);  // (length, C), cached and grown on demand
  torch::Tensor nearest(const torch::Tensor& rows) const;  // (N, C) -> (N) ids

  std::shared_ptr<EmbeddingsImpl> embed_;
  EmbeddingMetric metric_;
  int64_t max_positions_;
  torch::Tensor candidates_;    // (V, C) float: the embedding of each id at position 0
  torch::Tensor candidate_sq_;  // (V) squared norms (l2) or unused
  torch::Tensor positions_;     // (P, C) float: position term of positions 0..P-1
};

}  // namespace gt
