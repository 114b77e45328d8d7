// LoRA: inserting factors keeps outputs unchanged, only the factors train in lora mode,
// training them lowers the loss without touching base weights, and bad options are errors.
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "models/decoder.hpp"
#include "models/lora.hpp"
#include "models/safetensors.hpp"
#include "models/segments.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/reference_batch.hpp"
#include "tests/test_paths.hpp"

namespace {

using gt::test::fixture_dir;
using gt::test::reference_batch;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool is_lora_name(const std::string& name) {
  return ends_with(name, ".lora_A") || ends_with(name, ".lora_B");
}

int64_t count_lora_params(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.named_parameters()) n += is_lora_name(p.key());
  return n;
}

std::map<std::string, torch::Tensor> snapshot(const torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

}  // namespace

TEST_CASE("lora: factors start with lora_B = 0, so logits are unchanged bit for bit") {
  auto model = gt::load_decoder(fixture_dir("opt-tiny-s1"));
  const auto b = reference_batch("opt-tiny-s1");
  torch::NoGradGuard no_grad;
  const auto before = model->forward(b.ids, b.mask);
  gt::LoraOptions opts;
  opts.rank = 4;
  opts.alpha = 8.0;
  opts.targets = {"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"};
  const auto L = model->cfg.num_layers;
  CHECK(gt::apply_lora(*model, opts) == 6 * L);
  CHECK(count_lora_params(*model) == 2 * 6 * L);
  for (const auto& p : model->named_parameters()) {
    INFO(p.key());
    if (ends_with(p.key(), ".lora_B")) CHECK(p.value().abs().max().item<double>() == 0.0);
    if (ends_with(p.key(), ".lora_A")) CHECK(p.value().abs().max().item<double>() > 0.0);
  }
  CHECK(torch::equal(model->forward(b.ids, b.mask), before));
  // Applying again adds nothing new (each layer keeps its first factors).
  CHECK(gt::apply_lora(*model, opts) == 6 * L);
  CHECK(count_lora_params(*model) == 2 * 6 * L);
}

TEST_CASE("lora: set_trainable(lora) makes exactly the lora_A/lora_B tensors trainable") {
  auto model = gt::load_decoder(fixture_dir("opt-tiny-s1"));
  gt::LoraOptions opts;  // default targets q_proj, v_proj
  const auto layers = gt::apply_lora(*model, opts);
  CHECK(layers == 2 * model->cfg.num_layers);

  gt::set_trainable(*model, gt::TrainMode::lora);
  int64_t trainable = 0;
  for (const auto& p : model->named_parameters()) {
    INFO(p.key());
    CHECK(p.value().requires_grad() == is_lora_name(p.key()));
    trainable += p.value().requires_grad();
  }
  CHECK(trainable == 2 * layers);

  gt::set_trainable(*model, gt::TrainMode::frozen);
  for (const auto& p : model->named_parameters()) CHECK_FALSE(p.value().requires_grad());
  gt::set_trainable(*model, gt::TrainMode::full);
  for (const auto& p : model->named_parameters()) CHECK(p.value().requires_grad());
}

TEST_CASE("lora: training an adapter in lora mode changes only LoRA factors and lowers the loss") {
  auto model = gt::load_decoder(fixture_dir("opt-tiny-s1"));
  const auto b = reference_batch("opt-tiny-s1");
  auto seg = gt::split_model(model, {1, 1});
  gt::LoraOptions opts;
  opts.rank = 4;
  opts.targets = {"q_proj", "v_proj", "fc1", "fc2"};
  CHECK(gt::apply_lora(*seg.input, opts) == 4);   // one block
  CHECK(gt::apply_lora(*seg.output, opts) == 4);  // one block
  CHECK(count_lora_params(*seg.backbone) == 0);
  gt::set_trainable(*model, gt::TrainMode::frozen);
  gt::set_trainable(*seg.input, gt::TrainMode::lora);
  gt::set_trainable(*seg.output, gt::TrainMode::lora);
  auto params = gt::unique_parameters({seg.input.get(), seg.output.get()});
  CHECK(params.size() == 16);  // 8 layers x (lora_A, lora_B)

  const auto before = snapshot(*model);
  auto loss_of = [&] {
    auto ctx = gt::make_attention_context(seg.cfg, b.mask, torch::kFloat);
    auto logits = seg.output->forward(
        seg.backbone->forward(seg.input->forward(b.ids, b.mask, ctx), ctx), ctx);
    return gt::causal_lm_loss(logits, b.labels);
  };
  torch::optim::Adam optimizer(params, torch::optim::AdamOptions(1e-2));
  const double initial = loss_of().item<double>();
  for (int step = 0; step < 5; ++step) {
    optimizer.zero_grad();
    auto loss = loss_of();
    loss.backward();
    optimizer.step();
  }
  const double trained = loss_of().item<double>();
  INFO("loss " << initial << " -> " << trained);
  CHECK(trained < initial - 0.01);

  int64_t changed = 0;
  for (const auto& p : model->named_parameters()) {
    INFO(p.key());
    const bool same = torch::equal(p.value(), before.at(p.key()));
    if (is_lora_name(p.key()))
      changed += !same;
    else
      CHECK(same);  // base weights (and the frozen backbone) bit-identical
  }
  CHECK(changed == 16);  // every factor moved (lora_A from step 2 on, once lora_B != 0)
}

TEST_CASE("lora: an unknown target name is a gt::Error naming it, and nothing is applied") {
  auto model = gt::load_decoder(fixture_dir("opt-tiny-s1"));
  gt::LoraOptions opts;
  opts.targets = {"q_proj", "qkv_proj"};
  CHECK_THROWS_WITH_AS(gt::apply_lora(*model, opts), gt::test::contains("'qkv_proj'"), gt::Error);
  CHECK(count_lora_params(*model) == 0);  // validated before any layer changed
  opts.targets = {"lm_head"};
  CHECK_THROWS_WITH_AS(gt::apply_lora(*model, opts), gt::test::contains("'lm_head'"), gt::Error);
  // A real projection name of the other family matches nothing here, which is not an
  // error: an adapter without blocks (n_in = 0) has no projections at all.
  opts.targets = {"gate_proj"};
  CHECK(gt::apply_lora(*model, opts) == 0);
}

TEST_CASE("lora: rank <= 0 is a gt::Error") {
  auto model = gt::load_decoder(fixture_dir("opt-tiny-s1"));
  for (int64_t rank : {0, -1}) {
    gt::LoraOptions opts;
    opts.rank = rank;
    CHECK_THROWS_WITH_AS(gt::apply_lora(*model, opts), gt::test::contains("rank must be positive"),
                         gt::Error);
  }
  CHECK(count_lora_params(*model) == 0);
}

TEST_CASE(
    "lora: LLaMA projections (GQA k/v, o_proj, gate/up/down) take LoRA on the llama fixture") {
  auto model = gt::load_decoder(fixture_dir("llama-tiny-s1"));
  const auto b = reference_batch("llama-tiny-s1");
  const auto before = [&] {
    torch::NoGradGuard no_grad;
    return model->forward(b.ids, b.mask);
  }();
  gt::LoraOptions opts;
  opts.rank = 2;
  opts.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  const auto L = model->cfg.num_layers;
  CHECK(gt::apply_lora(*model, opts) == 7 * L);
  // Factor shapes follow each projection: A (rank, in), B (out, rank).
  int64_t checked = 0;
  for (auto& item : model->named_modules()) {
    auto* linear = item.value()->as<gt::LoraLinearImpl>();
    if (!linear) continue;
    INFO(item.key());
    REQUIRE(linear->has_lora());
    CHECK(linear->lora_A.sizes() == torch::IntArrayRef({2, linear->weight.size(1)}));
    CHECK(linear->lora_B.sizes() == torch::IntArrayRef({linear->weight.size(0), 2}));
    ++checked;
  }
  CHECK(checked == 7 * L);
  {
    torch::NoGradGuard no_grad;
    CHECK(torch::equal(model->forward(b.ids, b.mask), before));
  }
  // One backward reaches every lora_B (lora_A's gradient is 0 while lora_B is 0).
  gt::set_trainable(*model, gt::TrainMode::lora);
  gt::causal_lm_loss(model->forward(b.ids, b.mask), b.labels).backward();
  int64_t with_grad = 0;
  for (const auto& p : model->named_parameters()) {
    INFO(p.key());
    if (ends_with(p.key(), ".lora_A")) {
      REQUIRE(p.value().grad().defined());
      CHECK(p.value().grad().abs().max().item<double>() == 0.0);
      continue;
    }
    if (!ends_with(p.key(), ".lora_B")) {
      CHECK_FALSE(p.value().grad().defined());  // frozen
      continue;
    }
    REQUIRE(p.value().grad().defined());
    CHECK(p.value().grad().abs().max().item<double>() > 0.0);
    ++with_grad;
  }
  CHECK(with_grad == 7 * L);
}

TEST_CASE("lora: parse_train_mode accepts full, lora, frozen and names a bad mode") {
  CHECK(gt::parse_train_mode("full") == gt::TrainMode::full);
  CHECK(gt::parse_train_mode("lora") == gt::TrainMode::lora);
  CHECK(gt::parse_train_mode("frozen") == gt::TrainMode::frozen);
  for (const std::string bad : {"qlora", "LoRA", ""}) {
    INFO("'" << bad << "'");
    CHECK_THROWS_WITH_AS(gt::parse_train_mode(bad), gt::test::contains("'" + bad + "'"), gt::Error);
  }
}
