// Attention context and the LoRA-capable linear layer.
#include "models/parts.hpp"

#include <cmath>
#include <limits>

#include "models/kv_cache.hpp"

namespace gt {

AttentionContext make_attention_context(const ModelConfig& cfg, const torch::Tensor& attention_mask,
                                        torch::ScalarType dtype) {
  // The whole sequence as one step of a generation that has seen nothing yet.
  KvCache none;
  auto ctx = step_context(cfg, none, attention_mask, dtype);
  ctx.cache = nullptr;
  return ctx;
}

torch::Tensor pack_rows(const torch::Tensor& x, const AttentionContext& ctx) {
  return x.reshape({ctx.batch * ctx.time, x.size(-1)}).index_select(0, ctx.real_index);
}

torch::Tensor unpack_rows(const torch::Tensor& x, const AttentionContext& ctx) {
  return torch::zeros({ctx.batch * ctx.time, x.size(-1)}, x.options())
      .index_copy(0, ctx.real_index, x)
      .view({ctx.batch, ctx.time, x.size(-1)});
}

torch::Tensor run_blocks(const std::vector<std::shared_ptr<BlockImpl>>& blocks, torch::Tensor x,
                         const AttentionContext& ctx, bool packed) {
  if (blocks.empty()) return x;
  // Nothing to save when every position is real (no padding in the batch).
  packed = packed && ctx.real_index.defined() && ctx.real_index.size(0) < ctx.batch * ctx.time;
  if (packed) x = pack_rows(x, ctx);
  for (const auto& block : blocks) x = block->forward(x, ctx);
  return packed ? unpack_rows(x, ctx) : x;
}

LoraLinearImpl::LoraLinearImpl(int64_t in_features, int64_t out_features, bool with_bias) {
  weight = register_parameter("weight", torch::empty({out_features, in_features}));
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (with_bias) {
    const double bound = 1.0 / std::sqrt(double(in_features));
    bias = register_parameter("bias", torch::empty({out_features}).uniform_(-bound, bound));
  }
}

torch::Tensor LoraLinearImpl::forward(const torch::Tensor& x) {
  auto y = torch::linear(x, weight, bias);
  if (lora_A.defined()) y = y + torch::linear(torch::linear(x, lora_A), lora_B) * lora_scale;
  return y;
}

void LoraLinearImpl::enable_lora(int64_t rank, double alpha) {
  TORCH_CHECK(rank > 0, "LoRA rank must be positive");
  if (lora_A.defined()) return;
  auto opts = weight.options();
  // As PEFT: A ~ kaiming-uniform, B = 0, so the adapted layer starts equal to the base one.
  lora_A = register_parameter("lora_A", torch::empty({rank, weight.size(1)}, opts));
  torch::nn::init::kaiming_uniform_(lora_A, std::sqrt(5.0));
  lora_B = register_parameter("lora_B", torch::zeros({weight.size(0), rank}, opts));
  lora_scale = alpha / double(rank);
}

}  // namespace gt
