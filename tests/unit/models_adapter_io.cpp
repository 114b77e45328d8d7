// Adapter files: save/load round trips (full and LoRA) under HuggingFace names, and the
// errors for foreign tensors, wrong shapes and empty saves.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "models/adapter_io.hpp"
#include "models/decoder.hpp"
#include "models/lora.hpp"
#include "models/safetensors.hpp"
#include "models/segments.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/reference_batch.hpp"
#include "tests/temp_dir.hpp"
#include "tests/test_paths.hpp"

namespace fs = std::filesystem;

namespace {

using gt::test::fixture_dir;
using gt::test::reference_batch;

using gt::test::TempDir;

// A model split at `split`, with the adapters (not the backbone) trainable in `mode`.
struct Split {
  gt::DecoderLM model{nullptr};
  gt::Segments seg;
};

Split load_split(const std::string& name, gt::SplitPoints split, gt::TrainMode mode) {
  Split s;
  s.model = gt::load_decoder(fixture_dir(name));
  s.seg = gt::split_model(s.model, split);
  if (mode == gt::TrainMode::lora) {
    gt::LoraOptions opts;
    opts.rank = 4;
    gt::apply_lora(*s.seg.input, opts);
    gt::apply_lora(*s.seg.output, opts);
  }
  gt::set_trainable(*s.model, gt::TrainMode::frozen);
  gt::set_trainable(*s.seg.input, mode);
  gt::set_trainable(*s.seg.output, mode);
  return s;
}

// Moves every trainable adapter parameter, as a few optimizer steps would.
void perturb(const gt::Segments& seg, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& p : gt::unique_parameters({seg.input.get(), seg.output.get()}))
    p.add_(torch::randn_like(p) * 0.05);
}

torch::Tensor logits(gt::DecoderLM model, const gt::test::Batch& b) {
  torch::NoGradGuard no_grad;
  return model->forward(b.ids, b.mask);
}

std::vector<std::string> names_in(const std::string& path) {
  return gt::SafetensorsFile(path).names();
}

bool has(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

TEST_CASE("adapters: full adapters round trip through a file under HF names, logits bit for bit") {
  TempDir dir;
  const auto b = reference_batch("opt-tiny-s1");
  const auto path = dir.file("adapters.safetensors");
  auto trained = load_split("opt-tiny-s1", {1, 1}, gt::TrainMode::full);
  const auto base = logits(trained.model, b);
  perturb(trained.seg, 1);
  const auto want = logits(trained.model, b);
  CHECK_FALSE(torch::equal(want, base));
  gt::save_adapters(path, trained.seg, true, {{"note", "test"}});

  // HF names: embeddings, first block, last block, final norm; no backbone, no tied head copy.
  const auto names = names_in(path);
  CHECK(names.size() == gt::adapter_parameters(trained.seg, true).size());
  CHECK(has(names, "model.decoder.embed_tokens.weight"));
  CHECK(has(names, "model.decoder.embed_positions.weight"));
  CHECK(has(names, "model.decoder.layers.0.fc1.weight"));
  CHECK(has(names, "model.decoder.layers.0.self_attn.q_proj.bias"));
  CHECK(has(names, "model.decoder.layers.3.fc1.weight"));
  CHECK(has(names, "model.decoder.final_layer_norm.weight"));
  for (const auto& n : names) {
    INFO(n);
    CHECK(n.find("layers.1.") == std::string::npos);
    CHECK(n.find("layers.2.") == std::string::npos);
    CHECK(n.find("lm_head") == std::string::npos);
  }
  gt::SafetensorsFile file(path);
  CHECK(file.metadata().at("gtune.n_in") == "1");
  CHECK(file.metadata().at("gtune.n_out") == "1");
  CHECK(file.metadata().at("note") == "test");

  auto fresh = load_split("opt-tiny-s1", {1, 1}, gt::TrainMode::full);
  CHECK(torch::equal(logits(fresh.model, b), base));
  gt::load_adapters(path, fresh.seg);
  CHECK(torch::equal(logits(fresh.model, b), want));
}

TEST_CASE("adapters: LoRA adapters save only the factors and round trip (OPT and LLaMA)") {
  TempDir dir;
  for (const std::string name : {"opt-tiny-s1", "llama-tiny-s1"}) {
    INFO(name);
    const auto b = reference_batch(name);
    const auto path = dir.file(name + ".safetensors");
    const gt::SplitPoints split{2, 1};
    auto trained = load_split(name, split, gt::TrainMode::lora);
    const auto base = logits(trained.model, b);
    perturb(trained.seg, 2);
    const auto want = logits(trained.model, b);
    CHECK_FALSE(torch::equal(want, base));
    gt::save_adapters(path, trained.seg);

    const auto names = names_in(path);
    CHECK(names.size() == 2 * 2 * 3);  // (q_proj, v_proj) x (A, B) x blocks 0, 1, 3
    const std::string layers = name == "opt-tiny-s1" ? "model.decoder.layers." : "model.layers.";
    CHECK(has(names, layers + "0.self_attn.q_proj.lora_A"));
    CHECK(has(names, layers + "1.self_attn.v_proj.lora_B"));
    CHECK(has(names, layers + "3.self_attn.q_proj.lora_B"));
    for (const auto& n : names) {
      INFO(n);
      CHECK((n.find(".lora_A") != std::string::npos || n.find(".lora_B") != std::string::npos));
      CHECK(n.find(layers + "2.") == std::string::npos);
    }

    auto fresh = load_split(name, split, gt::TrainMode::lora);
    CHECK(torch::equal(logits(fresh.model, b), base));  // fresh lora_B = 0
    gt::load_adapters(path, fresh.seg);
    CHECK(torch::equal(logits(fresh.model, b), want));
  }
}

TEST_CASE(
    "adapters: a file with a foreign tensor or a wrong shape is a gt::Error naming the tensor") {
  TempDir dir;
  auto s = load_split("opt-tiny-s1", {1, 1}, gt::TrainMode::full);
  const auto before = gt::adapter_parameters(s.seg, false);
  std::vector<torch::Tensor> kept;
  for (const auto& [n, t] : before) kept.push_back(t.clone());
  const auto unchanged = [&] {
    const auto now = gt::adapter_parameters(s.seg, false);
    bool same = now.size() == kept.size();
    for (size_t i = 0; same && i < now.size(); ++i) same = torch::equal(now[i].second, kept[i]);
    return same;
  };
  const auto fc1 = s.seg.input->blocks[0]->named_parameters()["fc1.weight"];

  SUBCASE("a backbone layer's tensor") {
    const auto path = dir.file("foreign.safetensors");
    const std::string backbone = "model.decoder.layers.2.fc1.weight";
    // Sorted after the valid layers.0 tensor, so a non-atomic load would have copied that one.
    gt::save_safetensors(path, {{"model.decoder.layers.0.fc1.weight", torch::zeros_like(fc1)},
                                {backbone, torch::zeros_like(fc1)}});
    CHECK_THROWS_WITH_AS(gt::load_adapters(path, s.seg), gt::test::contains("'" + backbone + "'"),
                         gt::Error);
    CHECK_THROWS_WITH_AS(gt::load_adapters(path, s.seg), gt::test::contains(path), gt::Error);
    CHECK(unchanged());
  }
  SUBCASE("a name no model has") {
    const auto path = dir.file("unknown.safetensors");
    gt::save_safetensors(path, {{"model.decoder.layers.0.fc3.weight", torch::zeros({2, 2})}});
    CHECK_THROWS_WITH_AS(
        gt::load_adapters(path, s.seg),
        gt::test::contains("'model.decoder.layers.0.fc3.weight' is not a parameter"), gt::Error);
    CHECK(unchanged());
  }
  SUBCASE("a wrong shape") {
    const auto path = dir.file("shape.safetensors");
    const std::string name = "model.decoder.layers.0.fc1.weight";
    auto wrong = torch::zeros({fc1.size(0) / 2, fc1.size(1)});
    gt::save_safetensors(path, {{"model.decoder.embed_tokens.weight",
                                 torch::zeros_like(s.model->embed->token_embedding())},
                                {name, wrong}});
    CHECK_THROWS_WITH_AS(gt::load_adapters(path, s.seg),
                         gt::test::contains("'" + name + "' has shape " + c10::str(wrong.sizes())),
                         gt::Error);
    CHECK_THROWS_WITH_AS(gt::load_adapters(path, s.seg), gt::test::contains(c10::str(fc1.sizes())),
                         gt::Error);
    CHECK(unchanged());
  }
}

TEST_CASE("adapters: saving adapters with nothing trainable is a gt::Error and writes no file") {
  TempDir dir;
  const auto path = dir.file("empty.safetensors");
  auto s = load_split("opt-tiny-s1", {1, 1}, gt::TrainMode::frozen);
  CHECK(gt::adapter_parameters(s.seg, true).empty());
  CHECK_THROWS_WITH_AS(gt::save_adapters(path, s.seg),
                       gt::test::contains(path + ": nothing to save"), gt::Error);
  CHECK_FALSE(fs::exists(path));
  // Everything can still be saved on request.
  gt::save_adapters(path, s.seg, false);
  CHECK(names_in(path).size() == gt::adapter_parameters(s.seg, false).size());
}
