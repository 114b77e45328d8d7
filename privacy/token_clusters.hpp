// Coarsened inputs (after TextObfuscator, Zhou et al. 2023): the vocabulary is grouped into
// clusters of tokens whose pretrained embeddings are alike, and the client's input adapter sees
// only each token's cluster (as the cluster's representative token). What leaves the client is
// then a function of the cluster sequence alone: no attacker, however strong, can tell the
// tokens of one cluster apart from a1 (or a2), only guess among them from context. The labels,
// and so the loss the output adapter trains on, stay the true tokens.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace gt {

struct TokenClusterOptions {
  int64_t clusters = 0;             // k; 0 = no coarsening
  int64_t iterations = 25;          // of spherical k-means
  std::vector<int64_t> keep_apart;  // tokens that stay clusters of their own (BOS, EOS, pad)
};

// (V) int64: for every token, the representative token of its cluster (the member closest to
// the cluster's centre). Computed from public information only (the pretrained embedding and
// the options: a fixed initialisation, float64), so every party that knows the configuration
// gets the same map, an adaptive attacker included. Throws gt::Error unless
// 0 < clusters <= V - keep_apart.size().
torch::Tensor cluster_representatives(const torch::Tensor& token_embedding,
                                      const TokenClusterOptions& options);

}  // namespace gt
