// The label-only, chunked LM loss (issue 16): equal to the full-logits cross-entropy and its
// gradients up to float summation order, and to transformers' loss and gradients on the HF
// fixtures (an independent reference).
#include <map>
#include <string>

#include "common/error.hpp"
#include "models/decoder.hpp"
#include "models/lm_loss.hpp"
#include "models/safetensors.hpp"
#include "models/segments.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/reference_batch.hpp"

namespace {

using gt::test::fixture_dir;
using gt::test::reference_batch;

const char* const kFixtures[] = {"opt-tiny-s1", "llama-tiny-s1"};

double max_rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item<double>();
}

// Equal up to float summation order: relative to the tensor's scale, with an absolute floor for
// gradients that are 0 in exact arithmetic (a key bias shifts every score of a row alike).
bool summation_close(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() <= 1e-5 * b.abs().max().item<double>() + 1e-8;
}

// The reference: every row's logits at once, cross-entropy summed.
torch::Tensor full_cross_entropy_sum(const torch::Tensor& h, const torch::Tensor& w,
                                     const torch::Tensor& targets) {
  return torch::nn::functional::cross_entropy(
      torch::mm(h, w.t()), targets,
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
}

std::map<std::string, torch::Tensor> grads_by_name(const gt::DecoderLM& model) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, p] : gt::hf_named_parameters(gt::all_parts(*model)))
    if (p.grad().defined()) out[name] = p.grad().clone();
  return out;
}

// The adapters' loss and gradients through the cut {1, 1} of a fixture model.
struct LossAndGrads {
  double mean = 0;
  int64_t tokens = 0;
  std::map<std::string, torch::Tensor> grads;
};

LossAndGrads adapter_loss(const std::string& fixture, bool label_only) {
  auto model = gt::load_decoder(fixture_dir(fixture));
  const auto b = reference_batch(fixture);
  auto seg = gt::split_model(model, {1, 1});
  seg.output->label_only_logits = label_only;
  const auto ctx = gt::make_attention_context(seg.cfg, b.mask, torch::kFloat);
  const auto a2 = seg.backbone->forward(seg.input->forward(b.ids, b.mask, ctx), ctx);
  const auto loss = seg.output->lm_loss(a2, ctx, b.labels);
  loss.mean().backward();
  return {loss.mean().item<double>(), loss.tokens, grads_by_name(model)};
}

}  // namespace

TEST_CASE("lm loss: chunked linear cross-entropy equals the full logits' sum and gradients") {
  torch::manual_seed(3);
  const int64_t N = 10, E = 16, V = 37;
  const auto h0 = torch::randn({N, E}), w0 = torch::randn({V, E});
  const auto targets = torch::randint(V, {N}, torch::kLong);

  auto h_ref = h0.clone().requires_grad_(true), w_ref = w0.clone().requires_grad_(true);
  const auto ref = full_cross_entropy_sum(h_ref, w_ref, targets);
  ref.backward();
  for (int64_t chunk : {1, 3, 7, 10, 64, 0}) {
    INFO("chunk rows " << chunk);
    auto h = h0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true);
    const auto loss = gt::linear_cross_entropy_sum(h, w, targets, chunk);
    (loss * 0.5).backward();  // the backward scales by the incoming gradient
    CHECK(loss.item<double>() == doctest::Approx(ref.item<double>()).epsilon(1e-6));
    CHECK(max_rel_diff(h.grad(), h_ref.grad() * 0.5) < 1e-5);
    CHECK(max_rel_diff(w.grad(), w_ref.grad() * 0.5) < 1e-5);
  }

  SUBCASE("only the inputs that need a gradient get one") {
    auto h = h0.clone().requires_grad_(true);
    gt::linear_cross_entropy_sum(h, w0, targets, 4).backward();
    CHECK(max_rel_diff(h.grad(), h_ref.grad()) < 1e-5);
    auto w = w0.clone().requires_grad_(true);
    gt::linear_cross_entropy_sum(h0, w, targets, 4).backward();
    CHECK(max_rel_diff(w.grad(), w_ref.grad()) < 1e-5);
  }
  SUBCASE("without grad mode no graph is made") {
    torch::NoGradGuard no_grad;
    auto h = h0.clone().requires_grad_(true);
    const auto loss = gt::linear_cross_entropy_sum(h, w0, targets, 4);
    CHECK_FALSE(loss.requires_grad());
    CHECK(loss.item<double>() == doctest::Approx(ref.item<double>()).epsilon(1e-6));
  }
  SUBCASE("log-probabilities of the targets") {
    const auto lp = gt::linear_target_log_probs(h0, w0, targets, 3);
    const auto expected =
        torch::log_softmax(torch::mm(h0, w0.t()), 1).gather(1, targets.unsqueeze(1)).squeeze(1);
    CHECK(max_rel_diff(lp, expected) < 1e-5);
    CHECK(lp.sum().item<double>() == doctest::Approx(-ref.item<double>()).epsilon(1e-6));
  }
  SUBCASE("no rows: a zero loss") {
    const auto empty = torch::zeros({0, E});
    CHECK(gt::linear_cross_entropy_sum(empty, w0, torch::zeros({0}, torch::kLong)).item<double>() ==
          0.0);
  }
}

TEST_CASE("lm loss: a target outside the vocabulary or mismatched shapes are a gt::Error") {
  const auto h = torch::randn({2, 4}), w = torch::randn({5, 4});
  CHECK_THROWS_WITH_AS(gt::linear_cross_entropy_sum(h, w, torch::tensor({0, 5}, torch::kLong)),
                       doctest::Contains("outside the vocabulary of 5"), gt::Error);
  CHECK_THROWS_WITH_AS(gt::linear_target_log_probs(h, w, torch::tensor({-100, 1}, torch::kLong)),
                       doctest::Contains("outside the vocabulary"), gt::Error);
  CHECK_THROWS_WITH_AS(
      gt::linear_cross_entropy_sum(h, torch::randn({5, 3}), torch::tensor({0, 1}, torch::kLong)),
      doctest::Contains("do not fit"), gt::Error);
  CHECK_THROWS_WITH_AS(gt::labelled_rows(torch::randn({2, 3, 4}), torch::zeros({2, 4})),
                       doctest::Contains("do not fit"), gt::Error);
}

TEST_CASE("lm loss: labelled rows are the positions whose next label counts, in (b, t) order") {
  const auto hidden = torch::arange(2 * 4, torch::kFloat).view({2, 4, 1});
  const auto labels = torch::tensor({{7, 8, -100, 9}, {-100, -100, 5, 6}}, torch::kLong);
  const auto rows = gt::labelled_rows(hidden, labels);
  // Row 0: t = 0 predicts 8, t = 2 predicts 9. Row 1: t = 1 predicts 5, t = 2 predicts 6.
  CHECK(rows.hidden.flatten().equal(torch::tensor({0.f, 2.f, 5.f, 6.f})));
  CHECK(rows.targets.equal(torch::tensor({8, 9, 5, 6}, torch::kLong)));
}

TEST_CASE("lm loss: label-only logits give the full logits' loss and gradients, and HF's") {
  for (const std::string name : kFixtures) {
    INFO(name);
    const auto label_only = adapter_loss(name, true);
    const auto full = adapter_loss(name, false);
    gt::SafetensorsFile ref(fixture_dir(name) + "/reference.safetensors");
    const auto hf_loss = ref.tensor("loss", torch::kFloat).item<double>();
    CHECK(label_only.tokens == full.tokens);
    CHECK(label_only.mean == doctest::Approx(full.mean).epsilon(1e-6));
    CHECK(label_only.mean == doctest::Approx(hf_loss).epsilon(1e-5));
    REQUIRE(label_only.grads.size() == full.grads.size());
    int checked_against_hf = 0;
    for (const auto& [param, grad] : full.grads) {
      INFO(param);
      REQUIRE(label_only.grads.count(param));
      CHECK(summation_close(label_only.grads.at(param), grad));
      if (ref.contains("grad." + param)) {
        // transformers' fp32 gradients agree with an independent implementation to ~1e-5.
        CHECK((label_only.grads.at(param) - ref.tensor("grad." + param, torch::kFloat))
                  .abs()
                  .max()
                  .item<double>() < 1e-4);
        ++checked_against_hf;
      }
    }
    CHECK(checked_against_hf > 10);
  }
}

TEST_CASE(
    "lm loss: label log-probabilities equal the full logits' log-softmax, 0 where unlabelled") {
  for (const std::string name : kFixtures) {
    INFO(name);
    auto model = gt::load_decoder(fixture_dir(name));
    const auto b = reference_batch(name);
    auto seg = gt::split_model(model, {1, 1});
    torch::NoGradGuard no_grad;
    const auto ctx = gt::make_attention_context(seg.cfg, b.mask, torch::kFloat);
    const auto a2 = seg.backbone->forward(seg.input->forward(b.ids, b.mask, ctx), ctx);
    const auto lp = seg.output->label_log_probs(a2, ctx, b.labels);
    seg.output->label_only_logits = false;
    const auto lp_full = seg.output->label_log_probs(a2, ctx, b.labels);
    const auto logits = model->forward(b.ids, b.mask).slice(1, 0, -1);
    const auto next = b.labels.slice(1, 1);
    const auto keep = next.ne(-100);
    const auto expected =
        torch::log_softmax(logits, -1).gather(2, next.clamp_min(0).unsqueeze(-1)).squeeze(-1);
    REQUIRE(lp.sizes() == next.sizes());
    CHECK(max_rel_diff(lp.index({keep}), expected.index({keep})) < 1e-5);
    CHECK(max_rel_diff(lp_full.index({keep}), expected.index({keep})) < 1e-5);
    CHECK(lp.index({keep.logical_not()}).abs().sum().item<double>() == 0.0);
    CHECK(keep.logical_not().any().item<bool>());  // the fixture has unlabelled positions
  }
}
