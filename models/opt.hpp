// OPT (Zhang et al. 2022) as transformers' OPTForCausalLM: learned positions with
// offset 2 taken from the attention mask, pre-LN (1.3B+) or post-LN (350m)
// blocks, optional project_in/out, head tied to the token embedding.
#pragma once

#include "models/parts.hpp"

namespace gt {

struct OptEmbeddingsImpl : EmbeddingsImpl {
  explicit OptEmbeddingsImpl(const ModelConfig& cfg);
  torch::Tensor forward(const torch::Tensor& input_ids,
                        const torch::Tensor& attention_mask) override;
  torch::Tensor token_embedding() const override { return embed_tokens->weight; }
  std::string hf_name(const std::string& local) const override { return "model.decoder." + local; }

  torch::nn::Embedding embed_tokens{nullptr}, embed_positions{nullptr};
  LoraLinear project_in{nullptr};
};

struct OptAttentionImpl : torch::nn::Module {
  OptAttentionImpl(const ModelConfig& cfg, int64_t index);
  torch::Tensor forward(const torch::Tensor& x, const AttentionContext& ctx);

  int64_t index, num_heads, head_dim;  // index: the block's (its entry in a KvCache)
  LoraLinear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(OptAttention);

struct OptBlockImpl : BlockImpl {
  OptBlockImpl(const ModelConfig& cfg, int64_t index);
  torch::Tensor forward(const torch::Tensor& x, const AttentionContext& ctx) override;
  std::string hf_name(const std::string& local) const override {
    return "model.decoder.layers." + std::to_string(index) + "." + local;
  }

  int64_t index;
  bool pre_ln;
  std::string activation;
  OptAttention self_attn{nullptr};
  torch::nn::LayerNorm self_attn_layer_norm{nullptr}, final_layer_norm{nullptr};
  LoraLinear fc1{nullptr}, fc2{nullptr};
};

struct OptHeadImpl : HeadImpl {
  // `tied_embedding` is the token embedding weight when the head is tied.
  OptHeadImpl(const ModelConfig& cfg, torch::Tensor tied_embedding);
  torch::Tensor forward(const torch::Tensor& x) override;
  torch::Tensor final_hidden(const torch::Tensor& x) override;
  torch::Tensor output_embedding() const override { return lm_head; }
  std::string hf_name(const std::string& local) const override;

  bool tied;
  torch::nn::LayerNorm final_layer_norm{nullptr};  // absent in post-LN OPT
  LoraLinear project_out{nullptr};
  torch::Tensor lm_head;  // (V, E)
};

// Elementwise activation by its transformers name.
torch::Tensor activate(const std::string& name, const torch::Tensor& x);

}  // namespace gt
