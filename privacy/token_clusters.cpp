// See token_clusters.hpp. Spherical k-means: token embeddings are compared by direction, the
// way their dot products with the rest of the model see them.
#include "privacy/token_clusters.hpp"

#include <algorithm>
#include <string>

#include "common/error.hpp"

namespace gt {

torch::Tensor cluster_representatives(const torch::Tensor& token_embedding,
                                      const TokenClusterOptions& options) {
  torch::NoGradGuard no_grad;
  const auto V = token_embedding.size(0);
  auto apart = torch::zeros({V}, torch::kBool);
  for (auto t : options.keep_apart)
    if (t >= 0 && t < V) apart[t] = true;
  const auto free_tokens = torch::nonzero(apart.logical_not()).flatten();
  const auto n = free_tokens.size(0);
  const auto k = options.clusters;
  if (k <= 0 || k > n)
    throw Error("privacy.token_clusters: " + std::to_string(k) + " clusters for " +
                std::to_string(n) + " tokens (1 to " + std::to_string(n) + " allowed)");
  auto x = token_embedding.detach().to(torch::kCPU, torch::kDouble).index_select(0, free_tokens);
  x = x / x.norm(2, 1, true).clamp_min(1e-12);
  // A fixed start (every k-th token in id order): public and the same for every party.
  auto start = torch::div(torch::arange(k, torch::kLong) * n, k, "floor");
  auto centres = x.index_select(0, start);
  torch::Tensor assign;
  for (int64_t it = 0; it < options.iterations; ++it) {
    assign = torch::matmul(x, centres.t()).argmax(1);  // (n)
    auto sums = torch::zeros_like(centres).index_add_(0, assign, x);
    auto counts =
        torch::zeros({k}, torch::kDouble).index_add_(0, assign, torch::ones({n}, torch::kDouble));
    auto moved = sums / sums.norm(2, 1, true).clamp_min(1e-12);
    // An empty cluster keeps its centre.
    centres = torch::where(counts.gt(0).unsqueeze(1), moved, centres);
  }
  assign = torch::matmul(x, centres.t()).argmax(1);
  // The representative of a cluster: its member closest to the centre.
  const auto closeness = (x * centres.index_select(0, assign)).sum(1);  // (n)
  std::vector<int64_t> best(size_t(k), -1);
  std::vector<double> best_close(size_t(k), -2.0);
  const auto a = assign.accessor<int64_t, 1>();
  const auto c = closeness.accessor<double, 1>();
  const auto ids = free_tokens.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n; ++i)
    if (c[i] > best_close[size_t(a[i])])
      best_close[size_t(a[i])] = c[i], best[size_t(a[i])] = ids[i];
  auto map = torch::arange(V, torch::kLong);  // tokens kept apart map to themselves
  auto m = map.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n; ++i) m[ids[i]] = best[size_t(a[i])];
  return map;
}

}  // namespace gt
