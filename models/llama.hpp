// LLaMA (Touvron et al. 2023) as transformers' LlamaForCausalLM: RMSNorm,
// rotary positions (RoPE), SwiGLU MLP, grouped-query attention, tied or untied head.
// Mistral and Qwen2 share this shape.
#pragma once

#include "models/parts.hpp"

namespace gt {

struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

struct LlamaEmbeddingsImpl : EmbeddingsImpl {
  explicit LlamaEmbeddingsImpl(const ModelConfig& cfg);
  torch::Tensor forward(const torch::Tensor& input_ids,
                        const torch::Tensor& attention_mask) override;
  torch::Tensor token_embedding() const override { return embed_tokens->weight; }
  std::string hf_name(const std::string& local) const override { return "model." + local; }

  torch::nn::Embedding embed_tokens{nullptr};
};

struct LlamaAttentionImpl : torch::nn::Module {
  LlamaAttentionImpl(const ModelConfig& cfg, int64_t index);
  torch::Tensor forward(const torch::Tensor& x, const AttentionContext& ctx);

  int64_t index, num_heads, num_kv_heads, head_dim;  // index: the block's (its KvCache entry)
  LoraLinear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
};
TORCH_MODULE(LlamaAttention);

struct LlamaMlpImpl : torch::nn::Module {
  explicit LlamaMlpImpl(const ModelConfig& cfg);
  torch::Tensor forward(const torch::Tensor& x);  // down(silu(gate(x)) * up(x))
  LoraLinear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(LlamaMlp);

struct LlamaBlockImpl : BlockImpl {
  LlamaBlockImpl(const ModelConfig& cfg, int64_t index);
  torch::Tensor forward(const torch::Tensor& x, const AttentionContext& ctx) override;
  std::string hf_name(const std::string& local) const override {
    return "model.layers." + std::to_string(index) + "." + local;
  }

  int64_t index;
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  LlamaAttention self_attn{nullptr};
  LlamaMlp mlp{nullptr};
};

struct LlamaHeadImpl : HeadImpl {
  LlamaHeadImpl(const ModelConfig& cfg, torch::Tensor tied_embedding);
  torch::Tensor forward(const torch::Tensor& x) override;
  torch::Tensor final_hidden(const torch::Tensor& x) override { return norm(x); }
  torch::Tensor output_embedding() const override { return lm_head; }
  std::string hf_name(const std::string& local) const override;

  bool tied;
  RMSNorm norm{nullptr};
  torch::Tensor lm_head;  // (V, C)
};

}  // namespace gt
