// Distance correlation (Szekely, Rizzo & Bakirov 2007), the NoPeek penalty that makes the
// wire activations Z carry less information about the raw input embeddings X.
#pragma once

#include <torch/torch.h>

namespace gt {

// x (n, ...) and z (n, ...), each sample flattened to a vector. With a, b the (n, n)
// pairwise Euclidean distance matrices and A, B their double-centred forms
//   A_kl = a_kl - mean_l(a_kl) - mean_k(a_kl) + mean_kl(a_kl),
//   dCov^2(X, Z) = mean(A * B),
//   dCor(X, Z) = sqrt( dCov^2(X, Z) / sqrt(dCov^2(X, X) * dCov^2(Z, Z)) ) in [0, 1],
// and 0 when either variance term is 0 (e.g. n = 1 or a constant batch).
// Differentiable and finite even with coincident samples (training loss:
// task + lambda * dCor). Computed in float64 if either input is float64, else float32
// (also for fp16/bf16); returns a 0-dim tensor of that dtype. Throws gt::Error on empty,
// non-floating, mismatched-batch or mismatched-device inputs.
// Caveat (Szekely & Rizzo 2013): this V-statistic is biased upwards by about sqrt(d / n)
// for independent samples and tends to 1 as d grows at fixed n (the zero diagonal of a
// dominates both A and B), so with flattened activations and small batches the value
// sits near 1 and only its variation carries the privacy signal.
torch::Tensor distance_correlation(const torch::Tensor& x, const torch::Tensor& z);

// The (n, n) Euclidean distance matrix between the rows of x (n, d), with the same
// finite-gradient guarantee; exposed for tests and the attack metrics.
torch::Tensor pairwise_distances(const torch::Tensor& x);

}  // namespace gt
