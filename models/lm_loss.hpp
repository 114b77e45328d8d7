// The language-model loss computed only where it counts: the head runs on the positions whose
// next token is labelled, in chunks of rows, so that no (B, T, V) logits tensor exists in the
// forward or the backward (issue 16). Equal to causal_lm_loss over full logits up to float
// summation order.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace gt {

// A summed next-token loss and how many labelled tokens it sums over.
struct LmLoss {
  torch::Tensor sum;  // scalar float32, differentiable
  int64_t tokens = 0;
  torch::Tensor mean() const { return sum / double(tokens > 0 ? tokens : 1); }
};

// Hidden states at the positions t whose label at t + 1 is not -100 (causal_lm_loss's shift),
// in row-major order of (b, t), and those labels.
struct LabelledRows {
  torch::Tensor hidden;   // (N, C)
  torch::Tensor targets;  // (N) int64
};
LabelledRows labelled_rows(const torch::Tensor& hidden, const torch::Tensor& labels);

// Rows of logits computed at once: bounds the (rows, V) tensor alive at a time (64 MB fp32).
int64_t default_chunk_rows(int64_t vocab);

// sum_n CE(h_n W^T, targets_n) in float32, chunk_rows rows at a time. Differentiable in h
// (N, E) and W (V, E): the gradients are made chunk by chunk during the forward (the fused
// linear cross-entropy of Liger / Apple's CCE), so the backward holds none of the logits.
torch::Tensor linear_cross_entropy_sum(const torch::Tensor& h, const torch::Tensor& weight,
                                       const torch::Tensor& targets, int64_t chunk_rows = 0);

// log softmax(h_n W^T)[targets_n] for every row, without gradients: (N) float32.
torch::Tensor linear_target_log_probs(const torch::Tensor& h, const torch::Tensor& weight,
                                      const torch::Tensor& targets, int64_t chunk_rows = 0);

}  // namespace gt
