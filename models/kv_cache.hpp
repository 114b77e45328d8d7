// Keys and values a generation has computed so far (issue 18): each step feeds only the new
// positions, which attend to everything cached. Each party keeps its own: a client's covers its
// adapters' blocks, a server's the backbone's.
#pragma once

#include <torch/torch.h>

#include <map>
#include <utility>

#include "models/model_config.hpp"
#include "models/parts.hpp"

namespace gt {

struct KvCache {
  // Block index -> its keys and values, (B, K, T_seen, D) each.
  std::map<int64_t, std::pair<torch::Tensor, torch::Tensor>> blocks;
  torch::Tensor attention_mask;  // (B, T_seen): the positions seen so far, padding at 0

  int64_t seen() const { return attention_mask.defined() ? attention_mask.size(1) : 0; }
  int64_t bytes() const;
  // Appends block `index`'s keys and values of the new positions; returns all it has cached.
  std::pair<torch::Tensor, torch::Tensor> extend(int64_t index, const torch::Tensor& k,
                                                 const torch::Tensor& v);
};

// The context of one generation step that feeds `new_mask` (B, T_new) positions after the
// cache's (and records them in the cache): causal over the whole sequence, padding masked,
// LLaMA's RoPE at positions seen..seen+T_new-1 (as make_attention_context over the whole).
// Blocks run with it append their keys and values to `cache`.
AttentionContext step_context(const ModelConfig& cfg, KvCache& cache, const torch::Tensor& new_mask,
                              torch::ScalarType dtype);

}  // namespace gt
