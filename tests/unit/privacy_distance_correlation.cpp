// Distance correlation: a hand-derived value, dCor = 1 under similarity maps, near 0 for
// independent batches, bounds, finite gradients with duplicates, finite differences.
#include <cmath>
#include <vector>

#include "common/error.hpp"
#include "privacy/distance_correlation.hpp"
#include "tests/doctest_torch.hpp"

namespace {

double dcor(const torch::Tensor& x, const torch::Tensor& z) {
  return gt::distance_correlation(x, z).item<double>();
}

// The V-statistic dCor of independent samples is biased upwards by roughly sqrt(d / n)
// (it tends to 1 as d grows at fixed n), so this uses d = 2: about 0.41 at n = 32 and
// 0.11 at n = 512.
double mean_independent_dcor(int64_t n, int seeds) {
  double sum = 0;
  for (int s = 0; s < seeds; ++s) {
    torch::manual_seed(100 + s);
    sum += dcor(torch::randn({n, 2}), torch::randn({n, 2}));
  }
  return sum / seeds;
}

}  // namespace

TEST_CASE("dcor: hand-computed value for three scalars") {
  // X = [0, 1, 3]: a = [[0,1,3],[1,0,2],[3,2,0]], row/col means 4/3, 1, 5/3, grand 4/3;
  //   A = a - r_k - r_l + g = [[-4,0,4],[0,-2,2],[4,2,-6]] / 3.
  // Z = [0, 2, 1]: b = [[0,2,1],[2,0,1],[1,1,0]], means 1, 1, 2/3, grand 8/9;
  //   B = [[-10,8,2],[8,-10,2],[2,2,-4]] / 9.
  // sum(A*B) = (40+0+8 + 0+20+4 + 8+4+24) / 27 = 108/27 = 4
  // sum(A*A) = (16+0+16 + 0+4+4 + 16+4+36) / 9 = 96/9 = 32/3
  // sum(B*B) = (100+64+4 + 64+100+4 + 4+4+16) / 81 = 360/81 = 40/9
  // The 1/n^2 of the means cancels: dCor^2 = 4 / sqrt(32/3 * 40/9) = 4 sqrt(27/1280)
  //   = 3 sqrt(15) / 20 = 0.58094750..., dCor = 0.76219912...
  const double expected = std::sqrt(3 * std::sqrt(15.0) / 20);
  const auto x = torch::tensor({0.0, 1.0, 3.0}, torch::kDouble);
  const auto z = torch::tensor({0.0, 2.0, 1.0}, torch::kDouble);
  CHECK(dcor(x, z) == doctest::Approx(expected).epsilon(1e-6));
  CHECK(std::abs(dcor(x, z) - 0.76219912) < 1e-6);
  // Same value in fp32, as a column (n, 1), and symmetric in its arguments.
  CHECK(dcor(x.to(torch::kFloat).unsqueeze(1), z.to(torch::kFloat)) ==
        doctest::Approx(expected).epsilon(1e-5));
  CHECK(dcor(z, x) == doctest::Approx(expected).epsilon(1e-6));
}

TEST_CASE("dcor: a batch against itself is 1") {
  torch::manual_seed(3);
  const auto x = torch::randn({16, 4, 5});
  CHECK(dcor(x, x) == doctest::Approx(1.0).epsilon(1e-6));
  CHECK(dcor(x.to(torch::kDouble), x.to(torch::kDouble)) == doctest::Approx(1.0).epsilon(1e-12));
}

TEST_CASE("dcor: invariant under similarity maps a X R + c") {
  torch::manual_seed(4);
  const int64_t n = 24, d = 6;
  const auto x = torch::randn({n, d}, torch::kDouble);
  const auto R = std::get<0>(torch::linalg::qr(torch::randn({d, d}, torch::kDouble)));
  REQUIRE(torch::allclose(R.t().matmul(R), torch::eye(d, torch::kDouble), 0, 1e-12));
  const auto c = torch::randn({1, d}, torch::kDouble) * 10;
  for (double a : {0.01, 2.5, 300.0}) {
    CAPTURE(a);
    const auto z = a * x.matmul(R) + c;
    CHECK(dcor(x, z) == doctest::Approx(1.0).epsilon(1e-9));
    CHECK(dcor(x.to(torch::kFloat), z.to(torch::kFloat)) == doctest::Approx(1.0).epsilon(1e-5));
  }
}

TEST_CASE("dcor: independent batches are near 0, less so for small n") {
  const double small = mean_independent_dcor(32, 4);
  const double large = mean_independent_dcor(512, 4);
  torch::manual_seed(5);
  CHECK(dcor(torch::randn({512, 2}), torch::randn({512, 2})) < 0.15);
  CHECK(large < 0.15);
  CHECK(large < small);
  // A dependent but non-linear pair keeps a clearly larger value at the same n.
  const auto x = torch::randn({512, 2});
  CHECK(dcor(x, torch::tanh(x.pow(2))) > 0.3);
}

TEST_CASE("dcor: in [0, 1] on random inputs") {
  torch::manual_seed(6);
  for (int i = 0; i < 20; ++i) {
    const int64_t n = 2 + i * 3;
    const auto x = torch::randn({n, 3, 4}) * (1 + i);
    const auto z =
        i % 2 ? torch::randn({n, 7}) : torch::tanh(x.flatten(1).matmul(torch::randn({12, 5})));
    const double v = dcor(x, z);
    CAPTURE(n);
    CHECK(v >= 0.0);
    CHECK(v <= 1.0);
  }
  // Half input is computed and returned in fp32; a single sample or a constant batch is 0.
  const auto h = torch::randn({8, 3}).to(torch::kHalf);
  CHECK((gt::distance_correlation(h, h).scalar_type() == torch::kFloat));
  CHECK(dcor(torch::randn({1, 4}), torch::randn({1, 2})) == 0.0);
  CHECK(dcor(torch::randn({6, 4}), torch::ones({6, 2})) == 0.0);
}

TEST_CASE("dcor: gradient finite with duplicated samples") {
  torch::manual_seed(7);
  auto base = torch::randn({6, 40}) + 50;  // a large offset stresses the Gram form
  base[1] = base[0];
  base[4] = base[0];
  auto zb = torch::randn({6, 3});
  zb[1] = zb[0];
  const auto x = base.clone().requires_grad_();
  const auto z = zb.clone().requires_grad_();
  const auto v = gt::distance_correlation(x, z);
  v.backward();
  CHECK(std::isfinite(v.item<double>()));
  CHECK(torch::isfinite(x.grad()).all().item<bool>());
  CHECK(torch::isfinite(z.grad()).all().item<bool>());
  CHECK(x.grad().abs().sum().item<double>() > 0);

  // Fully identical samples and a constant partner: value 0, gradients 0 (not NaN).
  const auto same = torch::ones({5, 3}).requires_grad_();
  const auto other = torch::randn({5, 2}).requires_grad_();
  const auto w = gt::distance_correlation(same, other);
  w.backward();
  CHECK(w.item<double>() == 0.0);
  CHECK(torch::equal(same.grad(), torch::zeros_like(same)));
  CHECK(torch::isfinite(other.grad()).all().item<bool>());
}

TEST_CASE("dcor: gradient matches central differences") {
  torch::manual_seed(8);
  const auto x0 = torch::randn({5, 3}, torch::kDouble);
  const auto z0 = torch::randn({5, 2}, torch::kDouble) + x0.slice(1, 0, 2);
  const auto x = x0.clone().requires_grad_();
  const auto z = z0.clone().requires_grad_();
  gt::distance_correlation(x, z).backward();

  // d f / d t_i ~ (f(t + h e_i) - f(t - h e_i)) / 2h, error O(h^2) ~ 1e-10.
  const double h = 1e-5;
  auto check_input = [&](const torch::Tensor& t0, const torch::Tensor& grad, bool is_x) {
    for (int64_t i = 0; i < t0.numel(); ++i) {
      auto plus = t0.clone(), minus = t0.clone();
      plus.view(-1)[i] += h;
      minus.view(-1)[i] -= h;
      const double fp = is_x ? dcor(plus, z0) : dcor(x0, plus);
      const double fm = is_x ? dcor(minus, z0) : dcor(x0, minus);
      const double numeric = (fp - fm) / (2 * h);
      const double analytic = grad.view(-1)[i].item<double>();
      CAPTURE(is_x);
      CAPTURE(i);
      CHECK(analytic == doctest::Approx(numeric).epsilon(1e-6).scale(1.0));
    }
  };
  check_input(x0, x.grad(), true);
  check_input(z0, z.grad(), false);
}

TEST_CASE("dcor: bad input is rejected") {
  const auto x = torch::randn({4, 3});
  CHECK_THROWS_WITH_AS(gt::distance_correlation(x, torch::randn({5, 3})),
                       gt::test::contains("batch sizes differ"), gt::Error);
  CHECK_THROWS_AS(gt::distance_correlation(x, torch::ones({4, 3}, torch::kLong)), gt::Error);
  CHECK_THROWS_AS(gt::distance_correlation(torch::randn({0, 3}), torch::randn({0, 3})), gt::Error);
  CHECK_THROWS_AS(gt::distance_correlation(torch::tensor(1.f), torch::tensor(2.f)), gt::Error);
  CHECK_THROWS_AS(gt::distance_correlation(torch::Tensor(), x), gt::Error);
}
