// Export to HuggingFace layouts: the merged checkpoint holds the tensors transformers wrote for
// the source (same names and shapes) and loads back into the tuned model's logits; the PEFT
// adapter follows PEFT's names, shapes and formula (W + lora_alpha / r * B A).
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.hpp"
#include "models/hf_export.hpp"
#include "models/lora.hpp"
#include "models/safetensors.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/reference_batch.hpp"
#include "tests/temp_dir.hpp"

namespace {

using gt::test::fixture_dir;
using gt::test::reference_batch;

// The fixture's model with LoRA on both adapters, its factors moved off their start (B = 0) and
// an embedding changed, as full tuning would.
struct TunedModel {
  gt::DecoderLM model{nullptr};
  gt::Segments seg;
  explicit TunedModel(const std::string& name) {
    model = gt::load_decoder(fixture_dir(name));
    seg = gt::split_model(model, {1, 1});
    gt::LoraOptions lora;
    lora.rank = 4;
    lora.alpha = 8.0;
    lora.targets = {"q_proj", "v_proj"};
    gt::apply_lora(*seg.input, lora);
    gt::apply_lora(*seg.output, lora);
    torch::NoGradGuard no_grad;
    torch::manual_seed(3);
    for (auto& p : model->named_parameters())
      if (p.key().find("lora_B") != std::string::npos) p.value().normal_(0.0, 0.05);
    model->embed->parameters().front().add_(0.01);  // a full-tuned adapter weight
  }
};

}  // namespace

TEST_CASE("hf export: the merged checkpoint has the source's tensors and the tuned logits") {
  for (const std::string name : {"opt-tiny-s1", "llama-tiny-s1"}) {
    INFO(name);
    TunedModel tuned(name);
    gt::test::TempDir dir;
    gt::write_model_files(fixture_dir(name), dir.str(), torch::kFloat);
    gt::save_safetensors(dir.file("model.safetensors"),
                         gt::merged_weights(*tuned.model, torch::kFloat));

    // The same tensor names and shapes as the checkpoint transformers wrote.
    gt::SafetensorsFile source(fixture_dir(name) + "/model.safetensors");
    gt::SafetensorsFile merged(dir.file("model.safetensors"));
    CHECK(merged.names() == source.names());
    for (const auto& n : source.names()) {
      INFO(n);
      CHECK(merged.entry(n).shape == source.entry(n).shape);
      CHECK(merged.entry(n).dtype == gt::StDtype::F32);
    }
    const auto config = nlohmann::json::parse(std::ifstream(dir.file("config.json")));
    CHECK(config.value("torch_dtype", config.value("dtype", "")) == "float32");

    const auto b = reference_batch(name);
    auto loaded = gt::load_decoder(dir.str());
    torch::NoGradGuard no_grad;
    const auto want = tuned.model->forward(b.ids, b.mask);
    CHECK(!torch::allclose(want, gt::load_decoder(fixture_dir(name))->forward(b.ids, b.mask)));
    CHECK(torch::allclose(loaded->forward(b.ids, b.mask), want, 1e-5, 1e-5));
  }
}

TEST_CASE("hf export: the PEFT adapter follows PEFT's names, shapes, config and formula") {
  TunedModel tuned("opt-tiny-s1");
  const auto peft = gt::peft_lora_tensors(tuned.seg, torch::kFloat);
  const auto config = nlohmann::json::parse(gt::peft_adapter_config(tuned.seg, "base"));
  CHECK(config["peft_type"] == "LORA");
  CHECK(config["task_type"] == "CAUSAL_LM");
  CHECK(config["r"] == 4);
  CHECK(config["lora_alpha"] == 8.0);
  CHECK(config["target_modules"] == nlohmann::json({"q_proj", "v_proj"}));
  const auto last = tuned.model->cfg.num_layers - 1;
  CHECK(config["layers_to_transform"] == nlohmann::json({0, last}));
  REQUIRE(peft.size() == 8);  // 2 layers x 2 projections x (A, B)

  // PEFT's formula on the source weights gives the merged export's weights.
  gt::SafetensorsFile source(fixture_dir("opt-tiny-s1") + "/model.safetensors");
  std::map<std::string, torch::Tensor> merged;
  for (auto& [n, t] : gt::merged_weights(*tuned.model, torch::kFloat)) merged[n] = t;
  std::map<std::string, torch::Tensor> factors(peft.begin(), peft.end());
  const double scale = config["lora_alpha"].get<double>() / config["r"].get<double>();
  for (const auto& layer : {int64_t{0}, last})
    for (const std::string proj : {"q_proj", "v_proj"}) {
      const auto module = "model.decoder.layers." + std::to_string(layer) + ".self_attn." + proj;
      INFO(module);
      const auto a = factors.at("base_model.model." + module + ".lora_A.weight");
      const auto b = factors.at("base_model.model." + module + ".lora_B.weight");
      const auto w = source.tensor(module + ".weight", torch::kFloat);
      CHECK(a.sizes() == torch::IntArrayRef({4, w.size(1)}));
      CHECK(b.sizes() == torch::IntArrayRef({w.size(0), 4}));
      auto expected = w + scale * torch::matmul(b, a);
      CHECK(torch::allclose(merged.at(module + ".weight"), expected, 1e-6, 1e-6));
    }
}

TEST_CASE("hf export: bad requests are errors") {
  auto model = gt::load_decoder(fixture_dir("opt-tiny-s1"));
  auto seg = gt::split_model(model, {1, 1});
  CHECK_THROWS_WITH_AS(gt::peft_adapter_config(seg, "base"), doctest::Contains("no LoRA"),
                       gt::Error);
  CHECK(gt::peft_lora_tensors(seg, torch::kFloat).empty());
  CHECK_THROWS_AS(gt::hf_dtype_name(torch::kLong), gt::Error);
  gt::test::TempDir dir;
  CHECK_THROWS_WITH_AS(gt::write_model_files(dir.file("nowhere"), dir.file("out"), torch::kFloat),
                       doctest::Contains("cannot read"), gt::Error);
}
