// A causal decoder LM = embeddings -> blocks -> head, loaded from a HuggingFace
// checkpoint directory. The pieces are shared (not copied) with segments.hpp.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/model_config.hpp"
#include "models/parts.hpp"

namespace gt {

// Blocks [first, last): those a party never runs.
struct BlockRange {
  int64_t first = 0, last = 0;
  bool contains(int64_t i) const { return i >= first && i < last; }
};

struct DecoderLMImpl : torch::nn::Module {
  // Blocks in `hollow` are made without weights (every tensor empty, one block at a time, so
  // they never all exist): a client node, whose backbone the server runs, holds only its
  // adapters. Running a hollow block is an error (BackboneImpl::forward says so).
  explicit DecoderLMImpl(const ModelConfig& cfg, BlockRange hollow = {});

  // (B, T) ids and 0/1 mask -> (B, T, V) logits.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);
  // transformers' output_hidden_states: embeddings, each block's output, and the
  // last block's output after the final norm (L + 1 tensors of (B, T, C)).
  std::vector<torch::Tensor> hidden_states(const torch::Tensor& input_ids,
                                           const torch::Tensor& attention_mask);
  AttentionContext context(const torch::Tensor& attention_mask) const;

  ModelConfig cfg;
  torch::ScalarType dtype = torch::kFloat;
  std::shared_ptr<EmbeddingsImpl> embed;
  std::vector<std::shared_ptr<BlockImpl>> blocks;
  std::shared_ptr<HeadImpl> head;
};
TORCH_MODULE(DecoderLM);

// Each parameter once (tied weights deduplicated), with its HF checkpoint name;
// a tied parameter is named by the part that owns it.
std::vector<std::pair<std::string, torch::Tensor>> hf_named_parameters(
    const std::vector<const PartImpl*>& parts);
std::vector<const PartImpl*> all_parts(const DecoderLMImpl& model);

// Builds the architecture of `cfg` with random weights (N(0, 0.02), as HF's init), each tensor
// the same whichever blocks are `hollow`.
DecoderLM make_decoder(const ModelConfig& cfg, uint64_t seed = 0, BlockRange hollow = {});
// Reads dir/config.json and the weights (single or sharded safetensors), converted to `dtype`;
// the blocks in `hollow` are neither read nor held.
DecoderLM load_decoder(const std::string& dir, torch::ScalarType dtype = torch::kFloat,
                       BlockRange hollow = {});
// Whether the module's weights were let go (a hollow block).
bool is_hollow(const torch::nn::Module& m);

// Writes every weight under its HuggingFace name (tied weights once), so that
// `dir` with a copy of the source config.json loads back with load_decoder.
void save_decoder_weights(const std::string& path, const DecoderLMImpl& model);

// Mean next-token cross-entropy: logits at t predict labels at t + 1; label -100 is ignored.
torch::Tensor causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels);
// Labels for LM training: input ids, -100 where the mask is 0.
torch::Tensor labels_from_mask(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);

}  // namespace gt
