// See token_distance_correlation.hpp. Distances come from distance_correlation.hpp's
// Gram form, which never differentiates a sqrt at 0.
#include "privacy/token_distance_correlation.hpp"

#include <limits>
#include <string>

#include "common/error.hpp"
#include "privacy/distance_correlation.hpp"

namespace gt {
namespace {

// U-centring of a distance matrix (zero diagonal).
torch::Tensor u_centre(const torch::Tensor& a) {
  const double n = double(a.size(0));
  const auto row = a.sum(1, /*keepdim=*/true) / (n - 2);
  const auto col = a.sum(0, /*keepdim=*/true) / (n - 2);
  const auto all = a.sum() / ((n - 1) * (n - 2));
  const auto off_diagonal =
      torch::eye(a.size(0), a.options().dtype(torch::kBool)).logical_not().to(a.scalar_type());
  return (a - row - col + all) * off_diagonal;
}

// (A . B) = sum_{i != j} A_ij B_ij / (n (n - 3)); the diagonals are 0 already.
torch::Tensor u_product(const torch::Tensor& A, const torch::Tensor& B) {
  const double n = double(A.size(0));
  return (A * B).sum() / (n * (n - 3));
}

void check_rows(const torch::Tensor& t, const char* name) {
  const std::string where = std::string("u_distance_correlation: ") + name;
  if (!t.defined()) throw Error(where + " is undefined");
  if (!t.is_floating_point())
    throw Error(where + " must be floating point, got " + c10::toString(t.scalar_type()));
  if (t.dim() != 2) throw Error(where + " must be (n, d), got rank " + std::to_string(t.dim()));
  if (t.size(0) < 4)
    throw Error(where + " needs at least 4 samples, got " + std::to_string(t.size(0)));
}

}  // namespace

torch::Tensor u_distance_correlation(const torch::Tensor& x, const torch::Tensor& z) {
  check_rows(x, "x");
  check_rows(z, "z");
  if (x.size(0) != z.size(0))
    throw Error("u_distance_correlation: sample counts differ (x " + std::to_string(x.size(0)) +
                ", z " + std::to_string(z.size(0)) + ")");
  if (x.device() != z.device()) throw Error("u_distance_correlation: x and z on different devices");
  const auto dtype = (x.scalar_type() == torch::kDouble || z.scalar_type() == torch::kDouble)
                         ? torch::kDouble
                         : torch::kFloat;
  const auto A = u_centre(pairwise_distances(x.to(dtype)));
  const auto B = u_centre(pairwise_distances(z.to(dtype)));
  const auto xz = u_product(A, B), xx = u_product(A, A), zz = u_product(B, B);
  // (A . A) > 0 unless the samples are all equal (Szekely & Rizzo 2014, Prop. 1); guard it and
  // take the product of roots (no underflow for small activations).
  const double eps = dtype == torch::kDouble ? std::numeric_limits<double>::min()
                                             : std::numeric_limits<float>::min();
  const auto defined = (xx > eps).logical_and(zz > eps);
  const auto denom = xx.clamp_min(eps).sqrt() * zz.clamp_min(eps).sqrt();
  return torch::where(defined, xz / denom, torch::zeros({}, A.options())).clamp(-1, 1);
}

torch::Tensor token_distance_correlation(const torch::Tensor& x, const torch::Tensor& z,
                                         const torch::Tensor& mask, int64_t max_tokens) {
  if (x.dim() != 3 || z.dim() != 3 || mask.dim() != 2 || x.sizes().slice(0, 2) != mask.sizes() ||
      z.sizes().slice(0, 2) != mask.sizes())
    throw Error("token_distance_correlation: expected x (B, T, dx), z (B, T, dz), mask (B, T)");
  if (max_tokens < 4) throw Error("token_distance_correlation: max_tokens must be >= 4");
  const auto real = mask.ne(0).to(x.device()).flatten();
  auto rows = real.nonzero().squeeze(1);
  const auto n = rows.size(0);
  const auto dtype = (x.scalar_type() == torch::kDouble || z.scalar_type() == torch::kDouble)
                         ? torch::kDouble
                         : torch::kFloat;
  if (n < 4) return torch::zeros({}, z.options().dtype(dtype));
  if (n > max_tokens) {
    const auto pick =
        torch::floor(torch::arange(max_tokens, torch::kDouble) * (double(n) / double(max_tokens)))
            .to(torch::kLong)
            .to(rows.device());
    rows = rows.index_select(0, pick);
  }
  return u_distance_correlation(x.flatten(0, 1).index_select(0, rows),
                                z.flatten(0, 1).index_select(0, rows));
}

}  // namespace gt
