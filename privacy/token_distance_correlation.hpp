// Bias-corrected distance correlation (Szekely & Rizzo 2014, "Partial distance correlation with
// methods for dissimilarities"), with one sample per real token: the privacy score and penalty
// of the Online design. The per-sequence V-statistic (distance_correlation.hpp) sits near 1 for
// 8 samples of ~10^4 features whatever the data; this one has expectation 0 for independent
// data and is 1 for identical data, so its value means something at a batch's size.
#pragma once

#include <torch/torch.h>

namespace gt {

// x (n, dx), z (n, dz), n >= 4. With a, b the Euclidean distance matrices and their
// U-centred forms (i != j; 0 on the diagonal)
//   A_ij = a_ij - a_i. / (n - 2) - a_.j / (n - 2) + a_.. / ((n - 1)(n - 2)),
//   (A . B) = sum_{i != j} A_ij B_ij / (n (n - 3))      (an unbiased estimate of dCov^2),
//   R*(X, Z) = (A . B) / sqrt((A . A)(B . B))           in [-1, 1],
// 0 when either variance term is 0. Differentiable (finite gradients with coincident rows);
// float64 if an input is float64, else float32. Throws gt::Error for n < 4, mismatched rows or
// devices, non-floating input.
torch::Tensor u_distance_correlation(const torch::Tensor& x, const torch::Tensor& z);

// The same with one sample per real token of a batch: x (B, T, dx) (e.g. the input embeddings)
// and z (B, T, dz) (e.g. a1) at positions where mask (B, T) != 0. When there are more than
// `max_tokens` real tokens, an even spread of them (every k-th, deterministic) stands for the
// batch: the cost is O(max_tokens^2). Batches with fewer than 4 real tokens give 0.
torch::Tensor token_distance_correlation(const torch::Tensor& x, const torch::Tensor& z,
                                         const torch::Tensor& mask, int64_t max_tokens = 512);

}  // namespace gt
