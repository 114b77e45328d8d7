// The token inverter both sides of the privacy game use: the curious server's learned
// inversion (attacks/learned_inversion.hpp) and the client's own adversary that its input
// adapter trains against (adversarial_inverter.hpp). Same network, so the client defends
// against exactly the attack class it is measured with.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace gt {

// Rows are normalised one by one (g2's scale depends on the client's batch size and loss
// normalisation; scaling to unit RMS, then LayerNorm, makes the net blind to it), padding rows
// zeroed, each row joined with its neighbours (a causal LM's row at t says much about token
// t + 1, and g2 at t - 1 carries token t as the label), then a one-hidden-layer MLP gives
// logits over the vocabulary.
struct InversionNetImpl : torch::nn::Module {
  InversionNetImpl(int64_t channels, int64_t context, int64_t hidden, int64_t classes);
  // x (B, T, C) float, mask (B, T) -> logits (B, T, classes).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask);
  // What the head reads, (B, T, hidden): forward = fc2(features). Lets a caller run the head,
  // the costly part for a large vocabulary, on some rows only.
  torch::Tensor features(const torch::Tensor& x, const torch::Tensor& mask);
  int64_t channels() const { return norm->options.normalized_shape()[0]; }

  int64_t context;
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};

// Weights from `seed` only (PyTorch's default ranges), so a fit never depends on (or moves)
// torch's global RNG. LayerNorm keeps 1 and 0; biases start at 0.
void initialise_inversion_net(InversionNetImpl& net, uint64_t seed);

// The head's rows become `embedding`'s rows of `vocabulary` (token ids), frozen: the net only
// learns to map rows into embedding space (a tied LM head's geometry), which converges in tens
// of steps instead of hundreds and skips the head's weight gradient, the largest one.
void use_embedding_head(InversionNetImpl& net, const torch::Tensor& embedding,
                        const torch::Tensor& vocabulary);

// The net's parameters that train (not a frozen embedding head).
std::vector<torch::Tensor> trainable_parameters(const torch::nn::Module& net);

}  // namespace gt
