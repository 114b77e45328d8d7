// Packed batches (issue 16): blocks computing on the real tokens only give the padded
// computation's activations, loss and gradients up to float summation order, for OPT and LLaMA,
// right- and left-padded rows, and equal transformers' hidden states (the HF fixtures).
#include <map>
#include <string>

#include "models/decoder.hpp"
#include "models/safetensors.hpp"
#include "models/segments.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/reference_batch.hpp"

namespace {

using gt::test::fixture_dir;
using gt::test::reference_batch;

const char* const kFixtures[] = {"opt-tiny-s1", "llama-tiny-s1"};

// Equal up to float summation order, with an absolute floor for values that are 0 in exact
// arithmetic (a key bias's gradient).
bool summation_close(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() <= 1e-5 * b.abs().max().item<double>() + 1e-7;
}

torch::Tensor real(const torch::Tensor& x, const torch::Tensor& mask) {  // (B, T, C) -> (N, C)
  return x.index({mask.to(torch::kBool)});
}

struct Run {
  torch::Tensor a1, a2;
  double loss = 0;
  std::map<std::string, torch::Tensor> grads;
};

Run run(const std::string& fixture, bool packed, gt::SplitPoints split = {1, 1}) {
  auto model = gt::load_decoder(fixture_dir(fixture));
  const auto b = reference_batch(fixture);
  auto seg = gt::split_model(model, split);
  gt::set_compute_options(seg, packed, true);
  const auto ctx = gt::make_attention_context(seg.cfg, b.mask, torch::kFloat);
  Run r;
  r.a1 = seg.input->forward(b.ids, b.mask, ctx);
  r.a2 = seg.backbone->forward(r.a1, ctx);
  const auto loss = seg.output->lm_loss(r.a2, ctx, b.labels).mean();
  loss.backward();
  r.loss = loss.item<double>();
  for (auto& [name, p] : gt::hf_named_parameters(gt::all_parts(*model)))
    if (p.grad().defined()) r.grads[name] = p.grad().clone();
  r.a1 = r.a1.detach();
  r.a2 = r.a2.detach();
  return r;
}

}  // namespace

TEST_CASE("packed: pack_rows and unpack_rows keep the real tokens in (b, t) order") {
  const auto mask = torch::tensor({{1, 1, 0}, {0, 1, 1}}, torch::kLong);
  gt::ModelConfig cfg;
  const auto ctx = gt::make_attention_context(cfg, mask, torch::kFloat);
  CHECK(ctx.real_index.equal(torch::tensor({0, 1, 4, 5}, torch::kLong)));
  const auto x = torch::arange(6, torch::kFloat).view({2, 3, 1});
  const auto packed = gt::pack_rows(x, ctx);
  CHECK(packed.flatten().equal(torch::tensor({0.f, 1.f, 4.f, 5.f})));
  CHECK(
      gt::unpack_rows(packed, ctx).flatten().equal(torch::tensor({0.f, 1.f, 0.f, 0.f, 4.f, 5.f})));
}

TEST_CASE("packed: activations, loss and gradients equal the padded computation (OPT, LLaMA)") {
  for (const std::string name : kFixtures) {
    for (auto split : {gt::SplitPoints{1, 1}, gt::SplitPoints{0, 2}, gt::SplitPoints{2, 0}}) {
      INFO(name << " n_in=" << split.n_in << " n_out=" << split.n_out);
      const auto mask = reference_batch(name).mask;
      REQUIRE(mask.eq(0).any().item<bool>());  // the fixture has right- and left-padded rows
      const auto packed = run(name, true, split), padded = run(name, false, split);
      CHECK(summation_close(real(packed.a1, mask), real(padded.a1, mask)));
      CHECK(summation_close(real(packed.a2, mask), real(padded.a2, mask)));
      if (split.n_in > 0)  // what the wire would leave out anyway: nothing computed there
        CHECK(packed.a1.index({mask.eq(0)}).abs().sum().item<double>() == 0.0);
      CHECK(packed.loss == doctest::Approx(padded.loss).epsilon(1e-6));
      REQUIRE(packed.grads.size() == padded.grads.size());
      for (const auto& [param, grad] : padded.grads) {
        INFO(param);
        CHECK(summation_close(packed.grads.at(param), grad));
      }
    }
  }
}

TEST_CASE("packed: the segments' hidden states equal transformers' at the real tokens") {
  for (const std::string name : kFixtures) {
    INFO(name);
    auto model = gt::load_decoder(fixture_dir(name));
    const auto b = reference_batch(name);
    gt::SafetensorsFile ref(fixture_dir(name) + "/reference.safetensors");
    auto seg = gt::split_model(model, {1, 1});
    torch::NoGradGuard no_grad;
    const auto ctx = gt::make_attention_context(seg.cfg, b.mask, torch::kFloat);
    const auto a1 = seg.input->forward(b.ids, b.mask, ctx);
    const auto a2 = seg.backbone->forward(a1, ctx);
    const auto L = model->cfg.num_layers;
    // hidden_state_k is block k's output (k >= 1): a1 after block 1, a2 after block L - 1.
    for (auto [x, k] : {std::pair{a1, int64_t(1)}, std::pair{a2, L - 1}}) {
      const auto expected = ref.tensor("hidden_state_" + std::to_string(k), torch::kFloat);
      CHECK((real(x, b.mask) - real(expected, b.mask)).abs().max().item<double>() < 1e-4);
    }
  }
}

TEST_CASE("packed: a batch without padding computes exactly as unpacked") {
  auto model = gt::load_decoder(fixture_dir("opt-tiny-s1"));
  const auto b = reference_batch("opt-tiny-s1");
  const auto ids = b.ids.slice(0, 0, 1), mask = b.mask.slice(0, 0, 1);  // row 0: unpadded
  REQUIRE(mask.eq(1).all().item<bool>());
  auto seg = gt::split_model(model, {1, 1});
  torch::NoGradGuard no_grad;
  const auto ctx = gt::make_attention_context(seg.cfg, mask, torch::kFloat);
  const auto packed = seg.input->forward(ids, mask, ctx);
  gt::set_compute_options(seg, false, true);
  CHECK(packed.equal(seg.input->forward(ids, mask, ctx)));
}
