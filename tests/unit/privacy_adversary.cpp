// The client's adversarial inverter and the privacy objective: the inverter learns tokens from
// a1 rows, the encoder's term pushes a1 against it (its gradient's sign), the inverter's own
// weights take no gradient from that term, and its state round-trips for checkpoints.
#include <cmath>

#include "common/error.hpp"
#include "privacy/adversarial_inverter.hpp"
#include "privacy/privacy_objective.hpp"
#include "tests/doctest_torch.hpp"

namespace {

constexpr int64_t kVocab = 50, kWidth = 16;

torch::Tensor embedding() {
  torch::manual_seed(11);
  return torch::randn({kVocab, kWidth});
}

struct Batch {
  torch::Tensor ids, mask, a1;
};

// a1 = a fixed linear map of each token's embedding, plus a little noise: invertible.
Batch batch_of(const torch::Tensor& E, int64_t seed) {
  torch::manual_seed(seed);
  Batch b;
  b.ids = torch::randint(kVocab, {4, 12}, torch::kLong);
  b.mask = torch::ones({4, 12}, torch::kLong);
  b.mask.index_put_({3, torch::indexing::Slice(8)}, 0);
  torch::manual_seed(99);
  const auto map = torch::randn({kWidth, kWidth}) / 4;
  torch::manual_seed(seed + 1000);
  b.a1 = E.index({b.ids}).matmul(map) + 0.01 * torch::randn({4, 12, kWidth});
  return b;
}

gt::AdversaryOptions options() {
  gt::AdversaryOptions o;
  o.lr = 1e-2;
  o.max_tokens = 64;
  o.seed = 3;
  return o;
}

}  // namespace

TEST_CASE("adversary: the client's inverter learns tokens from its own a1") {
  const auto E = embedding();
  gt::AdversarialInverter inverter(E, kWidth, options());
  const double first =
      inverter.update(batch_of(E, 0).a1, batch_of(E, 0).ids, batch_of(E, 0).mask).accuracy;
  double last = 0;
  for (int step = 1; step <= 150; ++step) {
    const auto b = batch_of(E, step);
    last = inverter.update(b.a1, b.ids, b.mask).accuracy;
  }
  INFO("accuracy first " << first << ", after 150 steps " << last);
  CHECK(last > 0.9);
  CHECK(first < 0.3);
}

TEST_CASE("adversary: the encoder's term moves a1 against the inverter, and only a1") {
  const auto E = embedding();
  gt::AdversarialInverter inverter(E, kWidth, options());
  for (int step = 0; step < 100; ++step) {
    const auto b = batch_of(E, step);
    inverter.update(b.a1, b.ids, b.mask);
  }
  const auto b = batch_of(E, 500);
  auto a1 = b.a1.clone().requires_grad_(true);
  const auto loss = inverter.encoder_loss(a1, b.ids, b.mask);
  CHECK(loss.item<double>() < 0);  // minus a cross-entropy
  loss.backward();
  REQUIRE(a1.grad().defined());
  CHECK(a1.grad().index({b.mask.eq(0)}).abs().sum().item<double>() == 0.0);  // padding
  // A small step down the encoder's gradient raises the inverter's cross-entropy.
  const auto moved = (b.a1 - 0.5 * a1.grad() / a1.grad().norm()).detach();
  const double before = -inverter.encoder_loss(b.a1, b.ids, b.mask).item<double>();
  const double after = -inverter.encoder_loss(moved, b.ids, b.mask).item<double>();
  INFO("inverter cross-entropy before " << before << ", after " << after);
  CHECK(after > before);
  // The inverter's weights are held out of the term's graph: without a1's graph it has none.
  CHECK_FALSE(inverter.encoder_loss(b.a1, b.ids, b.mask).requires_grad());
}

TEST_CASE("adversary: the term is capped at a uniform guess, so it stays bounded") {
  const auto E = embedding();
  gt::AdversarialInverter inverter(E, kWidth, options());
  const auto b = batch_of(E, 7);
  const auto far = b.a1 * 1e4;  // rows the inverter is confidently wrong about
  const double loss = inverter.encoder_loss(far, b.ids, b.mask).item<double>();
  CHECK(loss >= -std::log(double(kVocab)) - 1e-6);
}

TEST_CASE("adversary: decoys are a secret permutation, and the frozen inverter is taught them") {
  const auto E = embedding();
  auto o = options();
  o.fit_steps = 60;
  o.decoy = true;
  gt::AdversarialInverter inverter(E, kWidth, o);
  const auto all = torch::arange(kVocab, torch::kLong);
  const auto d = inverter.decoys(all);
  CHECK(std::get<0>(torch::sort(d)).equal(all));                      // a permutation
  CHECK(d.ne(all).sum().item<int64_t>() > kVocab / 2);                // that moves most tokens
  CHECK(gt::AdversarialInverter(E, kWidth, o).decoys(all).equal(d));  // from the seed alone
  auto other = o;
  other.seed = 4;
  CHECK_FALSE(gt::AdversarialInverter(E, kWidth, other).decoys(all).equal(d));  // another secret
  CHECK_THROWS_WITH_AS(inverter.decoys(torch::tensor({kVocab}, torch::kLong)),
                       doctest::Contains("outside the vocabulary"), gt::Error);

  for (int step = 0; step <= 60; ++step) {  // fitted, then frozen
    const auto b = batch_of(E, step);
    inverter.update(b.a1, b.ids, b.mask);
  }
  // Gradient steps on a1 alone, down the encoder's term: the inverter comes to read the decoys.
  const auto b = batch_of(E, 500);
  auto a1 = b.a1.clone().requires_grad_(true);
  torch::optim::Adam opt({a1}, torch::optim::AdamOptions(0.05));
  const double before = inverter.encoder_loss(a1, b.ids, b.mask).item<double>();
  for (int step = 0; step < 200; ++step) {
    opt.zero_grad();
    inverter.encoder_loss(a1, b.ids, b.mask).backward();
    opt.step();
  }
  const double after = inverter.encoder_loss(a1, b.ids, b.mask).item<double>();
  INFO("cross-entropy on the decoys before " << before << ", after " << after);
  CHECK(before > 0);  // the decoys' cross-entropy dominates
  CHECK(after < 0.5 * before);
  const auto score = inverter.update(a1.detach(), inverter.decoys(b.ids), b.mask);
  CHECK(score.accuracy > 0.8);
}

TEST_CASE("adversary: state round-trips, foreign state is refused") {
  const auto E = embedding();
  gt::AdversarialInverter a(E, kWidth, options());
  for (int step = 0; step < 5; ++step) {
    const auto b = batch_of(E, step);
    a.update(b.a1, b.ids, b.mask);
  }
  gt::AdversarialInverter b(E, kWidth, options());
  b.restore(a.save());
  for (int step = 5; step < 8; ++step) {
    const auto x = batch_of(E, step);
    CHECK(a.update(x.a1, x.ids, x.mask).cross_entropy ==
          b.update(x.a1, x.ids, x.mask).cross_entropy);
  }
  // A resumed client's process draws a new seed: the decoys come from the saved state.
  auto other = options();
  other.seed += 1;
  gt::AdversarialInverter resumed(E, kWidth, other);
  const auto ids = torch::arange(E.size(0), torch::kLong);
  REQUIRE_FALSE(resumed.decoys(ids).equal(a.decoys(ids)));
  resumed.restore(a.save());
  CHECK(resumed.decoys(ids).equal(a.decoys(ids)));
  gt::AdversarialInverter narrow(E.slice(1, 0, 8), 8, options());
  CHECK_THROWS_WITH_AS(narrow.restore(a.save()), doctest::Contains("not a saved state"), gt::Error);
  CHECK_THROWS_WITH_AS(a.restore("not an archive"), doctest::Contains("not a saved state"),
                       gt::Error);
  auto bad = options();
  bad.lr = 0;
  CHECK_THROWS_WITH_AS(gt::AdversarialInverter(E, kWidth, bad), doctest::Contains("lr"), gt::Error);
}

TEST_CASE("privacy objective: penalty, scores and inverter as configured") {
  const auto E = embedding();
  gt::PrivacyOptions o;
  o.dcor_weight = 0.5;
  o.adversary_weight = 2;
  o.adversary = options();
  gt::PrivacyObjective objective(E, kWidth, o);
  CHECK(objective.active());
  const auto b = batch_of(E, 1);
  auto a1 = b.a1.clone().requires_grad_(true);
  const auto t = objective.terms(a1, b.ids, b.mask);
  CHECK(t.dcor > 0.3);  // a1 is a map of the token embeddings
  CHECK(t.inverter_accuracy >= 0);
  CHECK(t.dcor == doctest::Approx(objective.score(b.a1, b.ids, b.mask)).epsilon(1e-6));
  t.penalty.backward();
  CHECK(a1.grad().defined());
  CHECK(torch::isfinite(a1.grad()).all().item<bool>());

  gt::PrivacyObjective scorer(E, kWidth, {});
  CHECK_FALSE(scorer.active());
  CHECK(scorer.save().empty());
  CHECK(scorer.terms(b.a1, b.ids, b.mask).inverter_accuracy == -1);
  CHECK_THROWS_WITH_AS(scorer.restore(objective.save()), doctest::Contains("none is configured"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(objective.restore(""), doctest::Contains("no saved inverter"), gt::Error);
  gt::PrivacyOptions negative;
  negative.adversary_weight = -1;
  CHECK_THROWS_WITH_AS(gt::PrivacyObjective(E, kWidth, negative), doctest::Contains(">= 0"),
                       gt::Error);
}
