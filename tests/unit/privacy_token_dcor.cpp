// Token-level, bias-corrected distance correlation: a hand-derived value, 1 for identical
// samples, 0 in expectation for independent ones (where the V-statistic stays high), the token
// view of a batch, finite gradients, and bad input.
#include <cmath>

#include "common/error.hpp"
#include "privacy/distance_correlation.hpp"
#include "privacy/token_distance_correlation.hpp"
#include "tests/doctest_torch.hpp"

namespace {

double ucor(const torch::Tensor& x, const torch::Tensor& z) {
  return gt::u_distance_correlation(x, z).item<double>();
}

torch::Tensor column(std::vector<double> v) {
  return torch::tensor(v, torch::kDouble).unsqueeze(1);
}

}  // namespace

TEST_CASE("u-dcor: hand-computed value for five scalars") {
  // x = (0, 1, 0, 1, 2), z = (3, 1, 4, 1, 5): worked by hand from the U-centred distance
  // matrices, (A.B) = 2/15, (A.A) = 2/5, (B.B) = 38/15, so R* = (2/15) / sqrt(76/75).
  const auto x = column({0, 1, 0, 1, 2}), z = column({3, 1, 4, 1, 5});
  const double expected = (2.0 / 15.0) / std::sqrt(76.0 / 75.0);
  CHECK(ucor(x, z) == doctest::Approx(expected).epsilon(1e-12));
  CHECK(ucor(z, x) == doctest::Approx(expected).epsilon(1e-12));
  CHECK(ucor(x.to(torch::kFloat), z.to(torch::kFloat)) == doctest::Approx(expected).epsilon(1e-6));
}

TEST_CASE("u-dcor: identical samples give 1, similarity maps too") {
  torch::manual_seed(1);
  const auto x = torch::randn({40, 6}, torch::kDouble);
  CHECK(ucor(x, x) == doctest::Approx(1.0).epsilon(1e-12));
  const auto q = std::get<0>(torch::linalg_qr(torch::randn({6, 6}, torch::kDouble)));
  CHECK(ucor(x, 2.5 * x.matmul(q) + 3) == doctest::Approx(1.0).epsilon(1e-9));
}

TEST_CASE("u-dcor: independent samples are 0 in expectation, where the V-statistic is not") {
  // 64 samples of 1000 features, as tokens of a batch: the per-sequence V-statistic sits far
  // above 0 for unrelated data; the U-statistic's mean over seeds is 0 within its noise.
  double u = 0, v = 0;
  const int seeds = 20;
  for (int s = 0; s < seeds; ++s) {
    torch::manual_seed(200 + s);
    const auto x = torch::randn({64, 1000}), z = torch::randn({64, 1000});
    u += ucor(x, z) / seeds;
    v += gt::distance_correlation(x, z).item<double>() / seeds;
  }
  INFO("mean U " << u << ", mean V " << v);
  CHECK(std::abs(u) < 0.01);
  CHECK(v > 0.5);
}

TEST_CASE("u-dcor: a dependence the samples share is found") {
  torch::manual_seed(3);
  const auto x = torch::randn({200, 4});
  const auto z = torch::cat({torch::tanh(x.pow(2)), 0.1 * torch::randn({200, 4})}, 1);
  // A nonlinear dependence: far above what independent samples of this size give.
  CHECK(ucor(x, z) > 0.08);
  CHECK(std::abs(ucor(x, torch::randn({200, 8}))) < 0.02);
}

TEST_CASE("token dcor: one sample per real token, padding ignored") {
  torch::manual_seed(4);
  auto x = torch::randn({3, 5, 8});
  auto z = x * 2 + 1;  // identical up to a similarity at every position
  auto mask = torch::ones({3, 5}, torch::kLong);
  mask.index_put_({0, torch::indexing::Slice(3)}, 0);
  mask.index_put_({2, torch::indexing::Slice(1)}, 0);
  // Garbage at the padded positions must not matter.
  z.index_put_({mask.eq(0)}, torch::randn({mask.eq(0).sum().item<int64_t>(), 8}) * 100);
  CHECK(gt::token_distance_correlation(x, z, mask).item<double>() ==
        doctest::Approx(1.0).epsilon(1e-5));
  // The same value as the real rows gathered by hand.
  const auto real = mask.flatten().ne(0);
  const auto w = torch::randn({3, 5, 2});
  CHECK(gt::token_distance_correlation(x, w, mask).item<double>() ==
        doctest::Approx(ucor(x.flatten(0, 1).index({real}), w.flatten(0, 1).index({real})))
            .epsilon(1e-6));
}

TEST_CASE("token dcor: a subsample stands for a large batch, fewer than 4 tokens give 0") {
  torch::manual_seed(5);
  const auto x = torch::randn({4, 100, 8});
  const auto mask = torch::ones({4, 100}, torch::kLong);
  const auto z = torch::randn({4, 100, 3});
  const auto all = gt::token_distance_correlation(x, z, mask, 400).item<double>();
  const auto some = gt::token_distance_correlation(x, z, mask, 100).item<double>();
  CHECK(std::abs(all) < 0.05);
  CHECK(std::abs(some) < 0.1);
  auto few = torch::zeros({4, 100}, torch::kLong);
  few.index_put_({0, torch::indexing::Slice(0, 3)}, 1);
  CHECK(gt::token_distance_correlation(x, z, few).item<double>() == 0.0);
}

TEST_CASE("u-dcor: gradient matches central differences and stays finite with duplicates") {
  torch::manual_seed(6);
  const auto x = torch::randn({7, 3}, torch::kDouble);
  auto z0 = torch::randn({7, 2}, torch::kDouble);
  auto z = z0.clone().requires_grad_(true);
  gt::u_distance_correlation(x, z).backward();
  const auto g = z.grad();
  const double h = 1e-6;
  for (int64_t i = 0; i < 7; ++i)
    for (int64_t j = 0; j < 2; ++j) {
      auto plus = z0.clone(), minus = z0.clone();
      plus[i][j] += h;
      minus[i][j] -= h;
      const double fd = (ucor(x, plus) - ucor(x, minus)) / (2 * h);
      CHECK(g[i][j].item<double>() == doctest::Approx(fd).epsilon(1e-5));
    }
  auto dup = torch::cat({z0.slice(0, 0, 3), z0.slice(0, 0, 4)}).requires_grad_(true);
  gt::u_distance_correlation(x, dup).backward();
  CHECK(torch::isfinite(dup.grad()).all().item<bool>());
}

TEST_CASE("u-dcor: bad input is rejected with a reason") {
  CHECK_THROWS_WITH_AS(gt::u_distance_correlation(torch::randn({3, 2}), torch::randn({3, 2})),
                       doctest::Contains("at least 4 samples"), gt::Error);
  CHECK_THROWS_WITH_AS(gt::u_distance_correlation(torch::randn({5, 2}), torch::randn({6, 2})),
                       doctest::Contains("sample counts differ"), gt::Error);
  CHECK_THROWS_WITH_AS(
      gt::u_distance_correlation(torch::ones({5, 2}, torch::kLong), torch::randn({5, 2})),
      doctest::Contains("floating point"), gt::Error);
  CHECK_THROWS_WITH_AS(gt::token_distance_correlation(torch::randn({2, 3, 4}),
                                                      torch::randn({2, 4, 4}), torch::ones({2, 3})),
                       doctest::Contains("expected x (B, T, dx)"), gt::Error);
}
