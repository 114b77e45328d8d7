// Bootstrap intervals of task accuracy: the point estimate, certainty with no spread, paired
// differences, widths that shrink with more items.
#include <doctest/doctest.h>

#include "experiment/bootstrap.hpp"

namespace {

// `right` of `n` items right, spread out.
std::string outcomes(int right, int n) {
  std::string s(size_t(n), '0');
  for (int i = 0; i < right; ++i) s[size_t(i * n / right)] = '1';
  return s;
}

}  // namespace

TEST_CASE("bootstrap: accuracy interval around the mean over tasks and seeds") {
  gt::ItemOutcomes d;
  d["a"][0] = outcomes(60, 100);
  d["a"][1] = outcomes(70, 100);
  d["b"][0] = outcomes(40, 100);
  d["b"][1] = outcomes(50, 100);
  const auto i = gt::accuracy_interval(d);
  REQUIRE(i.valid);
  CHECK(i.mean == doctest::Approx(0.55));
  CHECK(i.lo < 0.55);
  CHECK(i.hi > 0.55);
  CHECK(i.hi - i.lo < 0.2);
  // All right: no spread at all.
  gt::ItemOutcomes sure;
  sure["a"][0] = std::string(30, '1');
  const auto s = gt::accuracy_interval(sure);
  CHECK(s.lo == 1.0);
  CHECK(s.hi == 1.0);
  // More items, a narrower interval.
  gt::ItemOutcomes few, many;
  few["a"][0] = outcomes(50, 100);
  many["a"][0] = outcomes(500, 1000);
  const auto f = gt::accuracy_interval(few), m = gt::accuracy_interval(many);
  CHECK(m.hi - m.lo < 0.6 * (f.hi - f.lo));
  CHECK_FALSE(gt::accuracy_interval({}).valid);
}

TEST_CASE("bootstrap: differences are paired over the same items and seeds") {
  gt::ItemOutcomes a, b;
  a["t"][0] = outcomes(50, 200);
  b["t"][0] = a["t"][0];
  const auto same = gt::difference_interval(a, b);
  REQUIRE(same.valid);
  CHECK(same.mean == 0.0);
  CHECK(same.lo == 0.0);  // paired: identical outcomes differ in no replicate
  CHECK(same.hi == 0.0);
  b["t"][0][1] = b["t"][0][1] == '1' ? '0' : '1';  // one item differs
  b["t"][0][3] = b["t"][0][3] == '1' ? '0' : '1';
  const auto close = gt::difference_interval(a, b);
  CHECK(close.mean == doctest::Approx(-0.01));  // two items more right in b
  CHECK(close.hi - close.lo < 0.03);
  // Nothing shared: no interval.
  gt::ItemOutcomes other;
  other["u"][0] = outcomes(10, 20);
  CHECK_FALSE(gt::difference_interval(a, other).valid);
}
