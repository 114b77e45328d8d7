// LLaMA pieces; see llama.hpp. Shapes: B batch, T time, C hidden, H heads, K kv heads, D head dim.
#include "models/llama.hpp"

#include <cmath>
#include <tuple>

#include "models/kv_cache.hpp"

namespace gt {
namespace {

// rotate_half: (x1, x2) -> (-x2, x1) over the two halves of the head dim.
torch::Tensor rotate_half(const torch::Tensor& x) {
  auto halves = x.chunk(2, -1);
  return torch::cat({-halves[1], halves[0]}, -1);
}

torch::Tensor apply_rope(const torch::Tensor& x, const AttentionContext& ctx) {
  return x * ctx.rope_cos + rotate_half(x) * ctx.rope_sin;  // (B, *, T, D) with (T, D)
}

}  // namespace

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  // Normalise in fp32, scale in the input dtype, as transformers does.
  auto xf = x.to(torch::kFloat);
  auto normed = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps);
  return weight * normed.to(x.scalar_type());
}

LlamaEmbeddingsImpl::LlamaEmbeddingsImpl(const ModelConfig& cfg) {
  embed_tokens =
      register_module("embed_tokens", torch::nn::Embedding(cfg.vocab_size, cfg.hidden_size));
}

torch::Tensor LlamaEmbeddingsImpl::forward(const torch::Tensor& input_ids, const torch::Tensor&) {
  return embed_tokens(input_ids);  // (B, T, C); positions enter through RoPE
}

LlamaAttentionImpl::LlamaAttentionImpl(const ModelConfig& cfg, int64_t index_)
    : index(index_),
      num_heads(cfg.num_heads),
      num_kv_heads(cfg.num_kv_heads),
      head_dim(cfg.head_dim) {
  const auto C = cfg.hidden_size;
  const bool b = cfg.attention_bias;
  q_proj = register_module("q_proj", LoraLinear(C, num_heads * head_dim, b));
  k_proj = register_module("k_proj", LoraLinear(C, num_kv_heads * head_dim, b));
  v_proj = register_module("v_proj", LoraLinear(C, num_kv_heads * head_dim, b));
  o_proj = register_module("o_proj", LoraLinear(num_heads * head_dim, C, false));
}

torch::Tensor LlamaAttentionImpl::forward(const torch::Tensor& x, const AttentionContext& ctx) {
  // x is (B, T, C), or (N, C) packed: the projections run on real tokens only, RoPE and the
  // scores on the (B, T) layout (positions 0..T-1, as without packing).
  const bool packed = x.dim() == 2;
  const auto B = packed ? ctx.batch : x.size(0), T = packed ? ctx.time : x.size(1);
  auto laid_out = [&](const torch::Tensor& t) { return packed ? unpack_rows(t, ctx) : t; };
  auto q = laid_out(q_proj(x)).view({B, T, num_heads, head_dim}).transpose(1, 2);  // (B, H, T, D)
  auto k =
      laid_out(k_proj(x)).view({B, T, num_kv_heads, head_dim}).transpose(1, 2);  // (B, K, T, D)
  auto v =
      laid_out(v_proj(x)).view({B, T, num_kv_heads, head_dim}).transpose(1, 2);  // (B, K, T, D)
  q = apply_rope(q, ctx);
  k = apply_rope(k, ctx);
  if (ctx.cache) std::tie(k, v) = ctx.cache->extend(index, k, v);  // (B, K, S, D)
  // Grouped-query attention: query head h reads kv head h / (H / K).
  const auto group = num_heads / num_kv_heads, S = k.size(2);
  if (group > 1) {
    k = k.unsqueeze(2)
            .expand({B, num_kv_heads, group, S, head_dim})
            .reshape({B, num_heads, S, head_dim});
    v = v.unsqueeze(2)
            .expand({B, num_kv_heads, group, S, head_dim})
            .reshape({B, num_heads, S, head_dim});
  }
  auto scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(double(head_dim)) + ctx.mask_bias;
  auto attn = torch::softmax(scores, -1, torch::kFloat).to(q.scalar_type());  // (B, H, T, S)
  auto y = torch::matmul(attn, v).transpose(1, 2).reshape({B, T, num_heads * head_dim});
  return o_proj(packed ? pack_rows(y, ctx) : y);  // (B, T, C) or (N, C)
}

LlamaMlpImpl::LlamaMlpImpl(const ModelConfig& cfg) {
  gate_proj = register_module("gate_proj", LoraLinear(cfg.hidden_size, cfg.ffn_dim, cfg.mlp_bias));
  up_proj = register_module("up_proj", LoraLinear(cfg.hidden_size, cfg.ffn_dim, cfg.mlp_bias));
  down_proj = register_module("down_proj", LoraLinear(cfg.ffn_dim, cfg.hidden_size, cfg.mlp_bias));
}

torch::Tensor LlamaMlpImpl::forward(const torch::Tensor& x) {
  return down_proj(torch::silu(gate_proj(x)) * up_proj(x));
}

LlamaBlockImpl::LlamaBlockImpl(const ModelConfig& cfg, int64_t index_) : index(index_) {
  input_layernorm = register_module("input_layernorm", RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
  self_attn = register_module("self_attn", LlamaAttention(cfg, index));
  post_attention_layernorm =
      register_module("post_attention_layernorm", RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
  mlp = register_module("mlp", LlamaMlp(cfg));
}

torch::Tensor LlamaBlockImpl::forward(const torch::Tensor& x, const AttentionContext& ctx) {
  auto h = x + self_attn(input_layernorm(x), ctx);
  return h + mlp(post_attention_layernorm(h));
}

LlamaHeadImpl::LlamaHeadImpl(const ModelConfig& cfg, torch::Tensor tied_embedding)
    : tied(cfg.tie_word_embeddings) {
  norm = register_module("norm", RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
  lm_head = tied ? register_parameter("lm_head", tied_embedding)
                 : register_parameter("lm_head", torch::empty({cfg.vocab_size, cfg.hidden_size}));
}

torch::Tensor LlamaHeadImpl::forward(const torch::Tensor& x) {
  return torch::linear(norm(x), lm_head);  // (B, T, V)
}

std::string LlamaHeadImpl::hf_name(const std::string& local) const {
  if (local == "lm_head") return tied ? "" : "lm_head.weight";
  return "model." + local;
}

}  // namespace gt
