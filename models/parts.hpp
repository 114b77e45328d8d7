// The three kinds of pieces every decoder is made of (embeddings, blocks, head),
// the attention context they share, and the LoRA-capable linear layer.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "models/model_config.hpp"

namespace gt {

struct BlockImpl;

// What every block needs besides the hidden states; built once per batch from
// the attention mask, by whichever party runs the blocks (client or server).
struct KvCache;

struct AttentionContext {
  torch::Tensor
      mask_bias;  // (B, 1, T, T) additive: 0 where attending is allowed, dtype-min elsewhere
  torch::Tensor rope_cos;  // (T, head_dim) LLaMA only
  torch::Tensor rope_sin;  // (T, head_dim) LLaMA only
  // Packed batches (issue 16): the flat index b * T + t of every real token, in order. A block
  // given hidden states of (N, C) instead of (B, T, C) computes on these rows only; attention
  // alone lays them out as (B, T) again, where the mask keeps each sequence to itself.
  torch::Tensor real_index;  // (N) int64
  int64_t batch = 0, time = 0;
  // A generation step (kv_cache.hpp): the positions fed attend to the cached ones too, and
  // each block appends its keys and values here. mask_bias is then (B, 1, T, seen + T).
  KvCache* cache = nullptr;
};

// attention_mask: (B, T) of 0/1. Causal + padding, as transformers builds it.
AttentionContext make_attention_context(const ModelConfig& cfg, const torch::Tensor& attention_mask,
                                        torch::ScalarType dtype);

// (B, T, C) -> (N, C): the real tokens' rows. Differentiable.
torch::Tensor pack_rows(const torch::Tensor& x, const AttentionContext& ctx);
// (N, C) -> (B, T, C), zeros at padding. Differentiable.
torch::Tensor unpack_rows(const torch::Tensor& x, const AttentionContext& ctx);
// Runs `blocks` on x (B, T, C) packed when `packed`, returning (B, T, C) (zeros at padding then).
torch::Tensor run_blocks(const std::vector<std::shared_ptr<BlockImpl>>& blocks, torch::Tensor x,
                         const AttentionContext& ctx, bool packed);

// A piece knows its parameters' names in the HuggingFace checkpoint.
struct PartImpl : torch::nn::Module {
  // HF name of a local parameter name, or "" when the parameter is tied to
  // another part's (then it is neither loaded nor saved under this part).
  virtual std::string hf_name(const std::string& local) const = 0;
};

struct EmbeddingsImpl : PartImpl {
  virtual torch::Tensor forward(const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask) = 0;
  virtual torch::Tensor token_embedding() const = 0;  // (V, E), used by a tied head
};

struct BlockImpl : PartImpl {
  virtual torch::Tensor forward(const torch::Tensor& x, const AttentionContext& ctx) = 0;
};

struct HeadImpl : PartImpl {
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;  // final norm + head -> logits
  // The last hidden state as transformers reports it: after the final norm (and OPT's project_out).
  virtual torch::Tensor final_hidden(const torch::Tensor& x) = 0;
  // The (V, E) matrix the logits are made with: logits = final_hidden(x) W^T.
  virtual torch::Tensor output_embedding() const = 0;
};

// y = x W^T + b (+ scale * B A x when LoRA is enabled). Names match nn.Linear
// ("weight", "bias") so checkpoints load directly; LoRA adds "lora_A", "lora_B".
struct LoraLinearImpl : torch::nn::Module {
  LoraLinearImpl(int64_t in_features, int64_t out_features, bool bias);
  torch::Tensor forward(const torch::Tensor& x);
  void enable_lora(int64_t rank, double alpha);
  bool has_lora() const { return lora_A.defined(); }

  torch::Tensor weight, bias, lora_A, lora_B;
  double lora_scale = 0.0;
};
TORCH_MODULE(LoraLinear);

}  // namespace gt
