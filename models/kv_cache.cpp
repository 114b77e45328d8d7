// See kv_cache.hpp.
#include "models/kv_cache.hpp"

#include <limits>

namespace gt {

int64_t KvCache::bytes() const {
  int64_t n = 0;
  for (const auto& [index, kv] : blocks)
    n += kv.first.numel() * kv.first.element_size() + kv.second.numel() * kv.second.element_size();
  return n;
}

std::pair<torch::Tensor, torch::Tensor> KvCache::extend(int64_t index, const torch::Tensor& k,
                                                        const torch::Tensor& v) {
  auto& kv = blocks[index];
  kv.first = kv.first.defined() ? torch::cat({kv.first, k}, 2) : k;
  kv.second = kv.second.defined() ? torch::cat({kv.second, v}, 2) : v;
  return kv;
}

AttentionContext step_context(const ModelConfig& cfg, KvCache& cache, const torch::Tensor& new_mask,
                              torch::ScalarType dtype) {
  const auto past = cache.seen(), T = new_mask.size(1);
  auto opts = torch::TensorOptions().device(new_mask.device());
  auto fresh = new_mask.to(torch::kLong);
  cache.attention_mask =
      past > 0 ? torch::cat({cache.attention_mask.to(new_mask.device()), fresh}, 1) : fresh;
  const auto S = past + T;
  AttentionContext ctx;
  // allowed[b, 0, i, j] = j <= past + i and mask[b, j] == 1. A fully masked row (a left-pad
  // query) stays finite: uniform attention, as in transformers.
  auto causal = torch::ones({S, S}, opts.dtype(torch::kBool)).tril().slice(0, past);  // (T, S)
  auto keys = cache.attention_mask.to(torch::kBool).view({-1, 1, 1, S});
  auto allowed = causal.view({1, 1, T, S}).logical_and(keys);
  auto zero = torch::zeros({}, opts.dtype(dtype));
  auto min =
      torch::full({}, std::numeric_limits<float>::lowest(), opts.dtype(torch::kFloat)).to(dtype);
  ctx.mask_bias = torch::where(allowed, zero, min);
  ctx.real_index = fresh.reshape({-1}).nonzero().reshape({-1});
  ctx.batch = fresh.size(0);
  ctx.time = T;
  ctx.cache = &cache;
  if (cfg.family == Family::llama) {
    // RoPE (rotate-half layout) at the positions' columns whatever the mask, as transformers'
    // Llama numbers a whole sequence.
    const auto D = cfg.head_dim;
    auto fopts = opts.dtype(torch::kFloat);
    auto inv_freq = 1.0 / torch::pow(cfg.rope_theta, torch::arange(0, D, 2, fopts) / double(D));
    auto pos = torch::arange(past, S, fopts) / cfg.rope_linear_factor;
    auto emb = torch::cat({torch::outer(pos, inv_freq), torch::outer(pos, inv_freq)}, -1);
    ctx.rope_cos = emb.cos().to(dtype);
    ctx.rope_sin = emb.sin().to(dtype);
  }
  return ctx;
}

}  // namespace gt
