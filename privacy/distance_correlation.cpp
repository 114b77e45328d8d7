// Distance correlation with a Gram-matrix distance form (memory O(n^2 + n d), not
// O(n^2 d)) and where-guards so no sqrt is ever differentiated at 0.
#include "privacy/distance_correlation.hpp"

#include <limits>
#include <string>

#include "common/error.hpp"

namespace gt {
namespace {

// Smallest positive normal of the dtype: below it a variance or ratio counts as 0.
double tiny(torch::ScalarType t) {
  return t == torch::kDouble ? std::numeric_limits<double>::min()
                             : std::numeric_limits<float>::min();
}

double unit_roundoff(torch::ScalarType t) {
  return t == torch::kDouble ? std::numeric_limits<double>::epsilon()
                             : std::numeric_limits<float>::epsilon();
}

// A_kl = a_kl - (row mean)_k - (column mean)_l + (grand mean).
torch::Tensor double_centre(const torch::Tensor& a) {
  return a - a.mean(0, /*keepdim=*/true) - a.mean(1, /*keepdim=*/true) + a.mean();
}

// (n, ...) -> (n, d) in the compute dtype.
torch::Tensor per_sample(const torch::Tensor& t, torch::ScalarType dtype) {
  auto f = t.to(dtype);
  return f.dim() == 1 ? f.unsqueeze(1) : f.flatten(1);
}

void check_input(const torch::Tensor& t, const char* name) {
  const std::string where = std::string("distance_correlation: ") + name;
  if (!t.defined()) throw Error(where + " is undefined");
  if (!t.is_floating_point())
    throw Error(where + " must be floating point, got " + c10::toString(t.scalar_type()));
  if (t.dim() < 1 || t.size(0) < 1) throw Error(where + " must have a batch of at least 1 sample");
}

}  // namespace

torch::Tensor pairwise_distances(const torch::Tensor& x) {
  if (x.dim() != 2)
    throw Error("pairwise_distances: expected (n, d), got rank " + std::to_string(x.dim()));
  const auto dtype = x.scalar_type();
  // Distances are translation invariant; centring first shrinks the norms and with them
  // the cancellation in |x_k|^2 + |x_l|^2 - 2 x_k.x_l.
  const auto c = x - x.mean(0, /*keepdim=*/true);
  const auto norms = c.pow(2).sum(1);
  const auto norm_sum = norms.unsqueeze(1) + norms.unsqueeze(0);
  const auto sq = (norm_sum - 2 * c.matmul(c.t())).clamp_min(0);
  // d(sqrt(s))/ds is infinite at s = 0 (the diagonal and coincident samples). A squared
  // distance within the rounding noise of the Gram form, or on the diagonal, is taken as
  // exactly 0 through a branch with zero gradient; the sqrt only sees s > threshold.
  const auto threshold = norm_sum.detach() * (64 * unit_roundoff(dtype)) + tiny(dtype);
  const int64_t n = x.size(0);
  const auto off_diagonal = torch::eye(n, x.options().dtype(torch::kBool)).logical_not();
  const auto apart = (sq > threshold).logical_and_(off_diagonal);
  return torch::where(apart, torch::max(sq, threshold).sqrt(), torch::zeros_like(sq));
}

torch::Tensor distance_correlation(const torch::Tensor& x, const torch::Tensor& z) {
  check_input(x, "x");
  check_input(z, "z");
  if (x.size(0) != z.size(0))
    throw Error("distance_correlation: batch sizes differ (x " + std::to_string(x.size(0)) +
                ", z " + std::to_string(z.size(0)) + ")");
  if (x.device() != z.device()) throw Error("distance_correlation: x and z on different devices");

  // fp32 even for fp16/bf16 inputs: distance sums over d features overflow/lose precision.
  const auto dtype = (x.scalar_type() == torch::kDouble || z.scalar_type() == torch::kDouble)
                         ? torch::kDouble
                         : torch::kFloat;
  const auto A = double_centre(pairwise_distances(per_sample(x, dtype)));
  const auto B = double_centre(pairwise_distances(per_sample(z, dtype)));
  const auto dcov_xz = (A * B).mean();  // dCov^2(X, Z), a V-statistic, >= 0
  const auto dvar_x = (A * A).mean();   // dCov^2(X, X)
  const auto dvar_z = (B * B).mean();   // dCov^2(Z, Z)

  // dCor^2 = dCov^2(X,Z) / (sqrt(dVar^2 X) sqrt(dVar^2 Z)); the product of the roots
  // rather than the root of the product, which underflows in fp32 for small activations.
  // Guards as in pairwise_distances: a zero variance gives 0 with zero gradient.
  const double eps = tiny(dtype);
  const auto zero = torch::zeros({}, A.options());
  const auto defined = (dvar_x > eps).logical_and(dvar_z > eps);
  const auto denom = dvar_x.clamp_min(eps).sqrt() * dvar_z.clamp_min(eps).sqrt();
  // Cauchy-Schwarz bounds the ratio by 1; rounding can step over it for Z ~ X.
  const auto dcor_sq = torch::where(defined, dcov_xz / denom, zero).clamp(0, 1);
  return torch::where(dcor_sq > eps, dcor_sq.clamp_min(eps).sqrt(), zero);
}

}  // namespace gt
