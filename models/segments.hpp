// The paper's cut of a decoder: input adapter (embeddings + first n_in blocks),
// backbone (the middle), output adapter (last n_out blocks + final norm + head).
// Segments share the model's modules: training a segment trains the model.
#pragma once

#include <string>
#include <vector>

#include "models/decoder.hpp"
#include "models/lm_loss.hpp"

namespace gt {

struct SplitPoints {
  int64_t n_in = 1;
  int64_t n_out = 1;
};

// Throws gt::Error unless 0 <= n_in, 0 <= n_out and the backbone keeps at least one block.
void check_split_points(const ModelConfig& cfg, SplitPoints split);

struct InputAdapterImpl : torch::nn::Module {
  InputAdapterImpl(std::shared_ptr<EmbeddingsImpl> embed,
                   std::vector<std::shared_ptr<BlockImpl>> blocks);
  // (B, T) ids -> a1 (B, T, C). `ctx` from make_attention_context.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const AttentionContext& ctx);
  std::vector<const PartImpl*> parts() const;
  // Coarsened inputs (privacy.token_clusters): a (V) map applied to the ids before the
  // embedding; undefined = every token as it is. Not a parameter: rebuilt from the config.
  void set_input_map(torch::Tensor map) { input_map = std::move(map); }

  std::shared_ptr<EmbeddingsImpl> embed;
  std::vector<std::shared_ptr<BlockImpl>> blocks;
  torch::Tensor input_map;
  // Blocks compute on the real tokens only (zeros at padding in the output); false: on every
  // position, as transformers does (run.packed_batches). Results equal up to summation order.
  bool packed = true;
};
TORCH_MODULE(InputAdapter);

struct BackboneImpl : torch::nn::Module {
  explicit BackboneImpl(std::vector<std::shared_ptr<BlockImpl>> blocks);
  torch::Tensor forward(const torch::Tensor& a1,
                        const AttentionContext& ctx);  // a1 -> a2, (B, T, C)
  std::vector<const PartImpl*> parts() const;

  std::vector<std::shared_ptr<BlockImpl>> blocks;
  bool packed = true;  // as InputAdapterImpl::packed
};
TORCH_MODULE(Backbone);

struct OutputAdapterImpl : torch::nn::Module {
  OutputAdapterImpl(std::vector<std::shared_ptr<BlockImpl>> blocks, std::shared_ptr<HeadImpl> head);
  torch::Tensor forward(const torch::Tensor& a2,
                        const AttentionContext& ctx);  // a2 -> logits (B, T, V)
  // a2 -> the last block's output (B, T, C), before the final norm and head.
  torch::Tensor hidden(const torch::Tensor& a2, const AttentionContext& ctx);
  // Next-token cross-entropy of (B, T) labels (-100 = not counted, causal_lm_loss's shift):
  // with label_only_logits the head runs at the labelled positions only, in chunks.
  LmLoss lm_loss(const torch::Tensor& a2, const AttentionContext& ctx, const torch::Tensor& labels);
  // log p(labels[t + 1] | up to t) as (B, T - 1) float32, 0 where the label is -100; no grad.
  torch::Tensor label_log_probs(const torch::Tensor& a2, const AttentionContext& ctx,
                                const torch::Tensor& labels);
  std::vector<const PartImpl*> parts() const;

  std::vector<std::shared_ptr<BlockImpl>> blocks;
  std::shared_ptr<HeadImpl> head;
  // false: full (B, T, V) logits, as transformers computes them (run.label_only_logits).
  bool label_only_logits = true;
  bool packed = true;  // as InputAdapterImpl::packed
};
TORCH_MODULE(OutputAdapter);

struct Segments {
  ModelConfig cfg;
  SplitPoints split;
  torch::ScalarType dtype = torch::kFloat;  // of the weights and activations
  InputAdapter input{nullptr};
  Backbone backbone{nullptr};
  OutputAdapter output{nullptr};

  // Where the weights are (the input adapter's, else the backbone's; CPU when there are none).
  // Read from the modules, so it follows to_device on any copy of these Segments.
  torch::Device device() const;
};

Segments split_model(const DecoderLM& model, SplitPoints split);

// run.packed_batches and run.label_only_logits on every segment of `seg` (shared modules: every
// copy of these Segments sees them).
void set_compute_options(Segments& seg, bool packed_batches, bool label_only_logits);

// Moves every weight of the three segments (shared and tied ones once) to `device`, in place:
// every copy of `seg`, and the DecoderLM it was cut from, see the move. Call it before making
// an optimizer over the adapters, so that the optimizer state is created there too.
void to_device(Segments& seg, const torch::Device& device);

// Parameters of several modules, each tensor once (the tied head appears in both adapters).
std::vector<torch::Tensor> unique_parameters(const std::vector<const torch::nn::Module*>& modules,
                                             bool trainable_only = true);

}  // namespace gt
