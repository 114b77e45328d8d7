// OPT pieces; see opt.hpp. Comments give shapes: B batch, T time, C hidden, E embed dim.
#include "models/opt.hpp"

#include <cmath>
#include <tuple>

#include "models/kv_cache.hpp"

namespace gt {
namespace {
constexpr int64_t kOptPositionOffset = 2;  // OPT's learned positions start at index 2

torch::nn::LayerNorm layer_norm(const ModelConfig& cfg) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({cfg.hidden_size})
                                  .eps(1e-5)
                                  .elementwise_affine(cfg.layer_norm_elementwise_affine));
}
}  // namespace

torch::Tensor activate(const std::string& name, const torch::Tensor& x) {
  if (name == "relu") return torch::relu(x);
  if (name == "gelu") return torch::gelu(x);
  if (name == "gelu_new") return torch::gelu(x, "tanh");
  return torch::silu(x);  // "silu", validated by the config reader
}

OptEmbeddingsImpl::OptEmbeddingsImpl(const ModelConfig& cfg) {
  embed_tokens = register_module("embed_tokens",
                                 torch::nn::Embedding(cfg.vocab_size, cfg.word_embed_proj_dim));
  embed_positions = register_module(
      "embed_positions",
      torch::nn::Embedding(cfg.max_positions + kOptPositionOffset, cfg.hidden_size));
  if (cfg.word_embed_proj_dim != cfg.hidden_size)
    project_in =
        register_module("project_in", LoraLinear(cfg.word_embed_proj_dim, cfg.hidden_size, false));
}

torch::Tensor OptEmbeddingsImpl::forward(const torch::Tensor& input_ids,
                                         const torch::Tensor& attention_mask) {
  auto x = embed_tokens(input_ids);   // (B, T, E)
  if (project_in) x = project_in(x);  // (B, T, C)
  // Positions count real tokens only: left padding does not shift them. They are made from the
  // mask on the ids' device (a no-op when the caller put both there).
  // A generation step passes the mask of the whole sequence so far: its ids are the last T.
  auto mask = attention_mask.to(input_ids.device(), torch::kLong);
  auto positions = torch::cumsum(mask, 1) * mask - 1;                     // (B, S), -1 at padding
  positions = positions.slice(1, positions.size(1) - input_ids.size(1));  // (B, T)
  return x + embed_positions(positions + kOptPositionOffset);
}

OptAttentionImpl::OptAttentionImpl(const ModelConfig& cfg, int64_t index_)
    : index(index_), num_heads(cfg.num_heads), head_dim(cfg.head_dim) {
  const auto C = cfg.hidden_size;
  q_proj = register_module("q_proj", LoraLinear(C, C, cfg.enable_bias));
  k_proj = register_module("k_proj", LoraLinear(C, C, cfg.enable_bias));
  v_proj = register_module("v_proj", LoraLinear(C, C, cfg.enable_bias));
  out_proj = register_module("out_proj", LoraLinear(C, C, cfg.enable_bias));
}

torch::Tensor OptAttentionImpl::forward(const torch::Tensor& x, const AttentionContext& ctx) {
  // x is (B, T, C), or (N, C) packed: the projections run on real tokens only, the scores on
  // the (B, T) layout.
  const bool packed = x.dim() == 2;
  const auto B = packed ? ctx.batch : x.size(0), T = packed ? ctx.time : x.size(1);
  const auto C = x.size(-1);
  auto heads = [&](const torch::Tensor& t) {
    return (packed ? unpack_rows(t, ctx) : t).view({B, T, num_heads, head_dim}).transpose(1, 2);
  };
  auto q = heads(q_proj(x)), k = heads(k_proj(x)), v = heads(v_proj(x));  // (B, H, T, D)
  if (ctx.cache) std::tie(k, v) = ctx.cache->extend(index, k, v);         // (B, H, S, D)
  auto scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(double(head_dim)) + ctx.mask_bias;
  auto attn = torch::softmax(scores, -1, torch::kFloat).to(q.scalar_type());  // (B, H, T, S)
  auto y = torch::matmul(attn, v).transpose(1, 2).reshape({B, T, C});         // (B, T, C)
  return out_proj(packed ? pack_rows(y, ctx) : y);
}

OptBlockImpl::OptBlockImpl(const ModelConfig& cfg, int64_t index_)
    : index(index_), pre_ln(cfg.do_layer_norm_before), activation(cfg.activation) {
  self_attn = register_module("self_attn", OptAttention(cfg, index));
  self_attn_layer_norm = register_module("self_attn_layer_norm", layer_norm(cfg));
  fc1 = register_module("fc1", LoraLinear(cfg.hidden_size, cfg.ffn_dim, cfg.enable_bias));
  fc2 = register_module("fc2", LoraLinear(cfg.ffn_dim, cfg.hidden_size, cfg.enable_bias));
  final_layer_norm = register_module("final_layer_norm", layer_norm(cfg));
}

torch::Tensor OptBlockImpl::forward(const torch::Tensor& x, const AttentionContext& ctx) {
  // Pre-LN: x + f(LN(x)). Post-LN: LN(x + f(x)).
  auto h = pre_ln ? self_attn_layer_norm(x) : x;
  h = x + self_attn(h, ctx);
  if (!pre_ln) h = self_attn_layer_norm(h);
  auto f = pre_ln ? final_layer_norm(h) : h;
  f = fc2(activate(activation, fc1(f)));
  h = h + f;
  return pre_ln ? h : final_layer_norm(h);
}

OptHeadImpl::OptHeadImpl(const ModelConfig& cfg, torch::Tensor tied_embedding)
    : tied(cfg.tie_word_embeddings) {
  if (cfg.do_layer_norm_before && !cfg.remove_final_layer_norm)
    final_layer_norm = register_module("final_layer_norm", layer_norm(cfg));
  if (cfg.word_embed_proj_dim != cfg.hidden_size)
    project_out =
        register_module("project_out", LoraLinear(cfg.hidden_size, cfg.word_embed_proj_dim, false));
  lm_head =
      tied ? register_parameter("lm_head", tied_embedding)
           : register_parameter("lm_head", torch::empty({cfg.vocab_size, cfg.word_embed_proj_dim}));
}

torch::Tensor OptHeadImpl::final_hidden(const torch::Tensor& x) {
  // As transformers' last hidden state: after the final norm and project_out.
  auto h = final_layer_norm ? final_layer_norm(x) : x;  // (B, T, C)
  return project_out ? project_out(h) : h;              // (B, T, E)
}

torch::Tensor OptHeadImpl::forward(const torch::Tensor& x) {
  return torch::linear(final_hidden(x), lm_head);  // (B, T, V)
}

std::string OptHeadImpl::hf_name(const std::string& local) const {
  if (local == "lm_head") return tied ? "" : "lm_head.weight";
  return "model.decoder." + local;
}

}  // namespace gt
