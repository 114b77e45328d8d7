// The Offsite-Tuning emulator: which layers it keeps, that it is a copy, that it composes with
// the adapters, its file (round trip, int8, every kind of bad file), distillation, and that
// dropping layers really costs utility on the embedded model.
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "data/default_task.hpp"
#include "data/lm_dataset.hpp"
#include "data/lm_eval.hpp"
#include "data/wordnet.hpp"
#include "models/decoder.hpp"
#include "models/emulator.hpp"
#include "models/safetensors.hpp"
#include "models/tokenizer.hpp"
#include "strategies/emulator_distillation.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/reference_batch.hpp"
#include "tests/temp_dir.hpp"
#include "tests/test_paths.hpp"

namespace {

using gt::test::contains;
using Layers = std::vector<int64_t>;

Layers every(int64_t n, int64_t k) {
  return gt::emulator_layers(n, {k, 0, false});
}
Layers ratio(int64_t n, double r) {
  return gt::emulator_layers(n, {2, r, false});
}

gt::Segments embedded_segments(gt::SplitPoints split = {1, 1}) {
  return gt::split_model(gt::load_decoder(gt::test::model_dir()), split);
}

// Dictionary-style definitions (written for these tests), like the model's GCIDE training text.
const std::vector<std::string> kDefinitions = {
    "Dog, n. A domesticated carnivorous mammal kept as a pet or for hunting.",
    "River, n. A large natural stream of water flowing in a channel to the sea.",
    "Bread, n. A food made of flour or meal mixed with water and yeast, and baked.",
    "To walk, v. i. To move along on foot at a moderate pace.",
    "Lamp, n. A vessel with a wick for burning oil, used to give light.",
    "Bridge, n. A structure built to carry a road or path across a river or valley.",
    "Honey, n. A sweet viscid fluid made by bees from the nectar of flowers.",
    "To sing, v. i. To utter sounds with musical inflections of the voice.",
    "Winter, n. The coldest season of the year, between autumn and spring.",
    "Anchor, n. A heavy iron instrument which holds a ship fast to the bottom.",
    "Oak, n. A tree of the genus Quercus, valued for its hard and durable wood.",
    "To borrow, v. t. To receive something from another with the intention of returning it.",
};

const gt::Tokenizer& embedded_tokenizer() {
  static const gt::Tokenizer tok = gt::Tokenizer::from_dir(gt::test::model_dir());
  return tok;
}

gt::LmDataset definitions_dataset() {
  return gt::LmDataset(kDefinitions, embedded_tokenizer(), 48);
}

torch::Tensor composed_logits(const gt::Segments& seg, gt::Backbone middle,
                              const torch::Tensor& ids, const torch::Tensor& mask) {
  torch::NoGradGuard no_grad;
  auto ctx = gt::make_attention_context(seg.cfg, mask, seg.dtype);
  auto a1 = seg.input.ptr()->forward(ids, mask, ctx);
  return seg.output.ptr()->forward(middle->forward(a1, ctx), ctx);
}

std::map<std::string, torch::Tensor> snapshot(const torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

bool same_values(const std::map<std::string, torch::Tensor>& a, const torch::nn::Module& m) {
  for (const auto& p : m.named_parameters())
    if (!torch::equal(a.at(p.key()), p.value())) return false;
  return true;
}

// Rewrites an emulator file after `edit` changed its tensors and metadata.
using Tensors = std::map<std::string, torch::Tensor>;
using Metadata = std::map<std::string, std::string>;
std::string rewritten(const std::string& src, const std::string& dst,
                      const std::function<void(Tensors&, Metadata&)>& edit) {
  gt::SafetensorsFile f(src);
  Tensors tensors;
  for (const auto& name : f.names()) tensors[name] = f.tensor(name);
  Metadata meta = f.metadata();
  edit(tensors, meta);
  std::vector<std::pair<std::string, torch::Tensor>> out(tensors.begin(), tensors.end());
  gt::save_safetensors(dst, out, meta);
  return dst;
}

}  // namespace

TEST_CASE("emulator: layers kept by keep_every and keep_ratio, and bad options") {
  CHECK(every(4, 2) == Layers{0, 2});
  CHECK(every(5, 2) == Layers{0, 2, 4});
  CHECK(every(4, 1) == Layers{0, 1, 2, 3});
  CHECK(every(6, 3) == Layers{0, 3});
  CHECK(every(4, 10) == Layers{0});
  CHECK(every(1, 2) == Layers{0});
  // Evenly spaced, first and last kept: round(j * (n - 1) / (m - 1)).
  CHECK(ratio(4, 0.5) == Layers{0, 3});
  CHECK(ratio(4, 1.0) == Layers{0, 1, 2, 3});
  CHECK(ratio(4, 0.1) == Layers{0});           // round(0.4) = 0 -> at least one
  CHECK(ratio(7, 0.5) == Layers{0, 2, 4, 6});  // round(3.5) = 4
  CHECK(ratio(8, 0.75) == Layers{0, 1, 3, 4, 6, 7});
  CHECK(ratio(10, 0.3) == Layers{0, 5, 9});  // 4.5 rounds to 5
  // keep_ratio wins over keep_every.
  CHECK(gt::emulator_layers(6, {3, 1.0, false}).size() == 6);

  for (int64_t k : {0, -1}) CHECK_THROWS_WITH_AS(every(4, k), contains("keep_every"), gt::Error);
  for (double r : {-0.5, 1.5, std::numeric_limits<double>::quiet_NaN()})
    CHECK_THROWS_WITH_AS(ratio(4, r), contains("keep_ratio"), gt::Error);
  CHECK_THROWS_AS(every(0, 1), gt::Error);
}

TEST_CASE("emulator: build_emulator deep-copies the kept blocks, OPT and LLaMA") {
  for (const std::string name : {"opt-tiny-s1", "llama-tiny-s1"}) {
    INFO(name);
    auto seg = gt::split_model(gt::load_decoder(gt::test::fixture_dir(name)), {1, 0});
    REQUIRE(seg.backbone->blocks.size() == 3);
    auto emu = gt::build_emulator(seg, {2, 0, false});
    REQUIRE(emu->blocks.size() == 2);
    const size_t kept[] = {0, 2};
    for (size_t i = 0; i < 2; ++i) {
      const auto& src = *seg.backbone->blocks[kept[i]];
      const auto& copy = *emu->blocks[i];
      // The copy keeps the source layer's checkpoint names (layer n_in + k).
      CHECK(copy.hf_name("x") == src.hf_name("x"));
      auto src_params = src.named_parameters();
      for (const auto& p : copy.named_parameters()) {
        INFO(p.key());
        const auto& s = src_params[p.key()];
        CHECK(torch::equal(p.value(), s));
        CHECK(p.value().data_ptr() != s.data_ptr());
      }
    }
    // Changing the emulator leaves the model alone, and the other way round.
    const auto model_before = snapshot(*seg.backbone);
    const auto emu_before = snapshot(*emu);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : emu->parameters()) p.add_(1.0);
    }
    CHECK(same_values(model_before, *seg.backbone));
    {
      torch::NoGradGuard no_grad;
      for (auto& p : seg.backbone->parameters()) p.mul_(2.0);
    }
    CHECK_FALSE(same_values(emu_before, *emu));  // still +1, not affected by * 2
    for (const auto& [pname, before] : emu_before)
      CHECK(torch::allclose(emu->named_parameters()[pname], before + 1.0));
  }
}

TEST_CASE("emulator: keeping every block gives the full model's logits bit for bit") {
  for (const std::string name : {"opt-tiny-s1", "llama-tiny-s1"}) {
    INFO(name);
    auto model = gt::load_decoder(gt::test::fixture_dir(name));
    const auto b = gt::test::reference_batch(name);
    torch::Tensor full;
    {
      torch::NoGradGuard no_grad;
      full = model->forward(b.ids, b.mask);
    }
    auto seg = gt::split_model(model, {1, 1});
    auto emu = gt::build_emulator(seg, {1, 0, false});
    CHECK(emu->blocks.size() == seg.backbone->blocks.size());
    // Padded, as the full model computes (packing changes the padding's logits and the last
    // bits: tests/unit/models_packed.cpp).
    gt::set_compute_options(seg, /*packed_batches=*/false, /*label_only_logits=*/true);
    emu->packed = false;
    CHECK(torch::equal(composed_logits(seg, emu, b.ids, b.mask), full));
  }
  // The embedded model, on text of different lengths (right padding).
  auto seg = embedded_segments();
  const auto batch = definitions_dataset().batch({0, 1, 2, 3});
  CHECK(torch::equal(composed_logits(seg, gt::build_emulator(seg, {1, 0, false}), batch.input_ids,
                                     batch.attention_mask),
                     composed_logits(seg, seg.backbone, batch.input_ids, batch.attention_mask)));
}

TEST_CASE("emulator: save and load round trip, fp32 exact and int8 within half a step") {
  gt::test::TempDir dir;
  auto seg = embedded_segments();
  const gt::EmulatorOptions options{2, 0, false};
  auto emu = gt::build_emulator(seg, options);
  const auto kept = gt::emulator_layers(4, options);
  const auto fp32_path = dir.file("emulator.safetensors");
  const auto int8_path = dir.file("emulator-int8.safetensors");
  gt::save_emulator(fp32_path, emu, seg, kept, false);
  gt::save_emulator(int8_path, emu, seg, kept, true);

  const auto exact = gt::load_emulator(fp32_path, seg.cfg);
  CHECK(exact.kept == kept);
  CHECK_FALSE(exact.int8_weights);
  CHECK(exact.split.n_in == 1);
  CHECK(exact.split.n_out == 1);
  REQUIRE(exact.backbone->blocks.size() == 2);
  CHECK(exact.backbone->blocks[1]->hf_name("x") == emu->blocks[1]->hf_name("x"));
  const auto original = emu->named_parameters();
  for (const auto& p : exact.backbone->named_parameters()) {
    INFO(p.key());
    CHECK(torch::equal(p.value(), original[p.key()]));
  }

  const auto q = gt::load_emulator(int8_path, seg.cfg);
  CHECK(q.int8_weights);
  int64_t matrices = 0;
  for (const auto& p : q.backbone->named_parameters()) {
    INFO(p.key());
    const auto& want = original[p.key()];
    if (p.value().dim() != 2) {  // norms and biases stay fp32
      CHECK(torch::equal(p.value(), want));
      continue;
    }
    ++matrices;
    // Symmetric per-row int8: error at most half a step, step = max|row| / 127.
    const auto half_step = want.abs().amax(1, true) / 254.0;
    CHECK(((p.value() - want).abs() <= half_step * (1 + 1e-5)).all().item<bool>());
    CHECK_FALSE(torch::equal(p.value(), want));
  }
  CHECK(matrices == 2 * 6);  // q, k, v, out_proj, fc1, fc2 per block
  const auto fp32_bytes = std::filesystem::file_size(fp32_path);
  const auto int8_bytes = std::filesystem::file_size(int8_path);
  INFO("fp32 " << fp32_bytes << " bytes, int8 " << int8_bytes << " bytes");
  CHECK(int8_bytes < fp32_bytes * 3 / 10);

  // Loading converts to the requested dtype.
  const auto dbl = gt::load_emulator(fp32_path, seg.cfg, torch::kDouble);
  CHECK((dbl.backbone->parameters().front().scalar_type() == torch::kDouble));

  // LLaMA blocks come back too.
  auto lseg = gt::split_model(gt::load_decoder(gt::test::fixture_dir("llama-tiny-s1")), {1, 0});
  auto lemu = gt::build_emulator(lseg, {2, 0.5, false});
  const auto lpath = dir.file("llama.safetensors");
  gt::save_emulator(lpath, lemu, lseg, gt::emulator_layers(3, {2, 0.5, false}), false);
  const auto lloaded = gt::load_emulator(lpath, lseg.cfg);
  CHECK(lloaded.kept == Layers{0, 2});
  const auto b = gt::test::reference_batch("llama-tiny-s1");
  CHECK(torch::equal(composed_logits(lseg, lloaded.backbone, b.ids, b.mask),
                     composed_logits(lseg, lemu, b.ids, b.mask)));
}

TEST_CASE("emulator: a bad or mismatched file is a gt::Error naming the file and the problem") {
  gt::test::TempDir dir;
  auto seg = embedded_segments();
  auto emu = gt::build_emulator(seg, {2, 0, false});
  const auto good = dir.file("good.safetensors");
  const auto good_int8 = dir.file("good-int8.safetensors");
  gt::save_emulator(good, emu, seg, {0, 2}, false);
  gt::save_emulator(good_int8, emu, seg, {0, 2}, true);
  const auto& cfg = seg.cfg;

  const auto fails_with = [&](const std::string& path, const gt::ModelConfig& c,
                              const std::string& what) {
    INFO(path << ": " << what);
    CHECK_THROWS_WITH_AS(gt::load_emulator(path, c), contains(path), gt::Error);
    CHECK_THROWS_WITH_AS(gt::load_emulator(path, c), contains(what), gt::Error);
  };
  const auto edited = [&](const std::string& name, const std::string& src,
                          const std::function<void(Tensors&, Metadata&)>& edit) {
    return rewritten(src, dir.file(name), edit);
  };

  fails_with(dir.write("garbage.safetensors", "this is not a safetensors file at all"), cfg,
             "header");
  fails_with(dir.file("absent.safetensors"), cfg, "cannot open");
  fails_with(gt::test::model_dir() + "/model.safetensors", cfg, "not a gtune emulator");

  auto other = cfg;
  other.hidden_size = 256;
  fails_with(good, other, "hidden size 384, this model has 256");
  other = cfg;
  other.model_type = "llama";
  fails_with(good, other, "model type 'opt', this model has 'llama'");
  other = cfg;
  other.num_layers = 8;
  fails_with(good, other, "layer count 6, this model has 8");
  other = cfg;
  other.ffn_dim = 1024;
  fails_with(good, other, "has shape [1536, 384], the model expects [1024, 384]");

  fails_with(edited("missing.safetensors", good,
                    [](Tensors& t, Metadata&) { t.erase("emulator.1.fc1.weight"); }),
             cfg, "missing tensor 'emulator.1.fc1.weight'");
  fails_with(edited("missing-scale.safetensors", good_int8,
                    [](Tensors& t, Metadata&) { t.erase("emulator.0.fc2.weight.scale"); }),
             cfg, "missing tensor 'emulator.0.fc2.weight.scale'");
  fails_with(edited("extra.safetensors", good,
                    [](Tensors& t, Metadata&) { t["emulator.2.fc1.bias"] = torch::zeros({4}); }),
             cfg, "unexpected tensor 'emulator.2.fc1.bias'");
  fails_with(edited("not-int8.safetensors", good,
                    [](Tensors&, Metadata& m) { m["gtune.emulator.int8"] = "true"; }),
             cfg, "dtype F32, expected I8");
  fails_with(edited("int-weight.safetensors", good,
                    [](Tensors& t, Metadata&) {
                      auto& w = t["emulator.0.self_attn.q_proj.weight"];
                      w = w.to(torch::kLong);
                    }),
             cfg, "dtype I64, expected a floating-point dtype");
  fails_with(edited("nan.safetensors", good,
                    [](Tensors& t, Metadata&) {
                      t["emulator.0.fc1.bias"][3] = std::numeric_limits<float>::quiet_NaN();
                    }),
             cfg, "'emulator.0.fc1.bias' has non-finite values");
  fails_with(edited("zero-scale.safetensors", good_int8,
                    [](Tensors& t, Metadata&) { t["emulator.1.fc1.weight.scale"][0] = 0.0; }),
             cfg, "not positive");
  fails_with(edited("version.safetensors", good,
                    [](Tensors&, Metadata& m) { m["gtune.emulator.format"] = "99"; }),
             cfg, "format version '99' is not supported");
  fails_with(edited("layers.safetensors", good,
                    [](Tensors&, Metadata& m) { m["gtune.emulator.layers"] = "0,4"; }),
             cfg, "kept layer 4 is outside the 4-block backbone");
  fails_with(edited("order.safetensors", good,
                    [](Tensors&, Metadata& m) { m["gtune.emulator.layers"] = "2,0"; }),
             cfg, "not strictly increasing");
  fails_with(edited("hidden.safetensors", good,
                    [](Tensors&, Metadata& m) { m["gtune.hidden_size"] = "384x"; }),
             cfg, "'gtune.hidden_size' is not an integer: '384x'");
  fails_with(
      edited("split.safetensors", good, [](Tensors&, Metadata& m) { m["gtune.n_in"] = "5"; }), cfg,
      "split points n_in=5, n_out=1 out of range");
  fails_with(edited("no-type.safetensors", good,
                    [](Tensors&, Metadata& m) { m.erase("gtune.model_type"); }),
             cfg, "metadata lacks 'gtune.model_type'");
  fails_with(edited("flag.safetensors", good,
                    [](Tensors&, Metadata& m) { m["gtune.emulator.int8"] = "yes"; }),
             cfg, "must be true or false");

  // Saving checks the kept layers against the emulator and the backbone.
  CHECK_THROWS_WITH_AS(gt::save_emulator(dir.file("x"), emu, seg, {0}, false),
                       contains("1 kept layers for an emulator of 2 blocks"), gt::Error);
  CHECK_THROWS_WITH_AS(gt::save_emulator(dir.file("x"), emu, seg, {0, 7}, false),
                       contains("outside the 4-block backbone"), gt::Error);
}

TEST_CASE("emulator: distillation lowers the MSE to the backbone and leaves the model frozen") {
  auto seg = embedded_segments();
  const auto data = definitions_dataset();
  auto emu = gt::build_emulator(seg, {2, 0, false});
  const auto model_before = snapshot(*seg.backbone);
  const auto input_before = snapshot(*seg.input);

  const double before = gt::emulator_mse(emu, seg, data);
  const gt::DistillOptions options{20, 1e-4, 4, 7};
  const double last_step = gt::distill_emulator(emu, seg, data, options);
  const double after = gt::emulator_mse(emu, seg, data);
  INFO("MSE before " << before << ", after " << after << ", last step " << last_step);
  CHECK(std::isfinite(last_step));
  CHECK(last_step > 0);
  CHECK(after < 0.8 * before);
  CHECK(same_values(model_before, *seg.backbone));
  CHECK(same_values(input_before, *seg.input));
  for (const auto& p : seg.backbone->parameters()) CHECK_FALSE(p.grad().defined());

  // The full backbone is its own perfect emulator.
  CHECK(gt::emulator_mse(seg.backbone, seg, data) == 0.0);

  // Same seed, same result.
  auto a = gt::build_emulator(seg, {2, 0, false});
  auto b = gt::build_emulator(seg, {2, 0, false});
  const gt::DistillOptions short_run{2, 1e-4, 4, 3};
  CHECK(gt::distill_emulator(a, seg, data, short_run) ==
        gt::distill_emulator(b, seg, data, short_run));
  CHECK(same_values(snapshot(*a), *b));

  CHECK_THROWS_WITH_AS(gt::distill_emulator(a, seg, data, {0, 1e-4, 4, 0}), contains("step"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(gt::distill_emulator(a, seg, data, {1, 0.0, 4, 0}),
                       contains("learning rate"), gt::Error);
  CHECK_THROWS_WITH_AS(gt::distill_emulator(a, seg, data, {1, 1e-4, 0, 0}), contains("batch size"),
                       gt::Error);
}

TEST_CASE("emulator: on WordNet definitions, dropping every other layer costs utility") {
  auto model = gt::load_decoder(gt::test::model_dir());
  auto seg = gt::split_model(model, {1, 1});
  const auto texts = gt::wordnet_definitions(gt::kDefaultWordnetDir, 0.1, 1, 128).valid;
  REQUIRE(texts.size() == 128);
  const gt::LmDataset data(texts, embedded_tokenizer(), 64);

  const double full = gt::lm_loss_through(seg, seg.backbone, data);
  // Through the unsplit model, the same number.
  const auto whole =
      gt::evaluate_lm([&](const torch::Tensor& ids,
                          const torch::Tensor& mask) { return model->forward(ids, mask); },
                      data, 32);
  CHECK(full == doctest::Approx(whole.loss).epsilon(1e-6));

  gt::test::TempDir dir;
  const gt::EmulatorOptions options{2, 0, false};
  auto emu = gt::build_emulator(seg, options);
  const double dropped = gt::lm_loss_through(seg, emu, data);
  gt::save_emulator(dir.file("e.safetensors"), emu, seg, gt::emulator_layers(4, options), true);
  const auto shipped = gt::load_emulator(dir.file("e.safetensors"), seg.cfg);
  const double dropped_int8 = gt::lm_loss_through(seg, shipped.backbone, data);
  INFO("loss: full " << full << ", emulator " << dropped << ", int8 emulator " << dropped_int8);
  CHECK(full < dropped - 0.1);
  CHECK(std::abs(dropped_int8 - dropped) < 0.05);  // int8 weights cost little
}
