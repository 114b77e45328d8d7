// Our OPT and LLaMA decoders against HuggingFace transformers' outputs.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "models/decoder.hpp"
#include "models/reference_check.hpp"
#include "models/tokenizer.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/test_paths.hpp"

namespace {

// Reference agreement of an independent fp32 implementation is ~1e-5 (fixture README).
constexpr double kTolerance = 1e-4;

void check_fixture(const std::string& name) {
  auto diffs = gt::compare_with_reference(
      gt::test::fixture("hf-reference/" + name),
      gt::test::fixture("hf-reference/" + name + "/reference.safetensors"));
  int grads = 0, hidden = 0;
  for (const auto& d : diffs) {
    INFO(name << " " << d.name << " max |diff| = " << d.max_abs_diff);
    CHECK(d.max_abs_diff <= kTolerance);
    grads += d.name.rfind("grad.", 0) == 0;
    hidden += d.name.rfind("hidden_state_", 0) == 0;
  }
  CHECK(grads > 0);
  CHECK(hidden == 5);
}

}  // namespace

TEST_CASE(
    "decoder: OPT (pre-LN, tied head) matches transformers: hidden states, logits, loss, "
    "gradients") {
  check_fixture("opt-tiny-s1");
}

TEST_CASE("decoder: LLaMA (RMSNorm, RoPE, GQA, SwiGLU, untied head) matches transformers") {
  check_fixture("llama-tiny-s1");
}

TEST_CASE(
    "decoder: the embedded fp16 opt-mini loads in fp32 and predicts real text far better than "
    "chance") {
  auto model = gt::load_decoder(gt::test::model_dir(), torch::kFloat);
  CHECK(model->cfg.num_layers == 6);
  CHECK(model->cfg.vocab_size == 8192);
  CHECK((model->embed->token_embedding().scalar_type() == torch::kFloat));
  // The tied head shares the token embedding's storage.
  auto opt_head = model->head->named_parameters()["lm_head"];
  CHECK(opt_head.data_ptr() == model->embed->token_embedding().data_ptr());

  // Dictionary-style definitions (written for this test), like the GCIDE text it was trained on.
  const std::vector<std::string> sentences = {
      "Dog, n. A domesticated carnivorous mammal kept as a pet or for hunting, having a keen "
      "sense of smell and a barking voice.",
      "River, n. A large natural stream of water flowing in a channel to the sea, a lake, or "
      "another stream.",
      "Bread, n. A food made of flour or meal mixed with water and yeast, kneaded, and baked "
      "in an oven.",
      "To walk, v. i. To move along on foot at a moderate pace, lifting and setting down each "
      "foot in turn.",
  };
  const auto tok = gt::Tokenizer::from_dir(gt::test::model_dir());
  const int64_t bos = model->cfg.bos_token_id, pad = model->cfg.pad_token_id;
  REQUIRE(bos >= 0);
  REQUIRE(pad >= 0);
  std::vector<std::vector<int64_t>> rows;
  size_t T = 0;
  for (const auto& s : sentences) {
    auto ids = tok.encode(s);
    ids.insert(ids.begin(), bos);  // as transformers' OPT tokenizer does
    T = std::max(T, ids.size());
    rows.push_back(std::move(ids));
  }
  const auto B = static_cast<int64_t>(rows.size());
  auto input_ids = torch::full({B, static_cast<int64_t>(T)}, pad, torch::kLong);
  auto mask = torch::zeros({B, static_cast<int64_t>(T)}, torch::kLong);
  for (int64_t b = 0; b < B; ++b)
    for (size_t t = 0; t < rows[b].size(); ++t) {
      input_ids[b][t] = rows[b][t];
      mask[b][t] = 1;
    }
  torch::NoGradGuard no_grad;
  auto loss_of = [&](const torch::Tensor& ids) {
    return gt::causal_lm_loss(model->forward(ids, mask), gt::labels_from_mask(ids, mask))
        .item<double>();
  };
  const double loss = loss_of(input_ids);
  const double chance = std::log(double(model->cfg.vocab_size));  // uniform prediction
  INFO("mean loss " << loss << " nats, chance " << chance);
  CHECK(loss < 0.6 * chance);

  // The same tokens in a random order (BOS kept first) are much harder to predict: the model
  // follows the text, it does not merely know the token frequencies.
  torch::manual_seed(0);
  auto shuffled = input_ids.clone();
  for (int64_t b = 0; b < B; ++b) {
    const auto n = static_cast<int64_t>(rows[b].size());
    auto perm = torch::randperm(n - 1, torch::kLong) + 1;
    shuffled[b].slice(0, 1, n).copy_(input_ids[b].index_select(0, perm));
  }
  const double shuffled_loss = loss_of(shuffled);
  INFO("shuffled loss " << shuffled_loss);
  CHECK(shuffled_loss > loss + 1.0);
}

TEST_CASE("decoder: post-LN OPT with project_in/out (OPT-350m shape) runs and keeps shapes") {
  auto cfg = gt::parse_model_config(R"({"model_type":"opt","vocab_size":50,"hidden_size":16,
    "num_hidden_layers":2,"num_attention_heads":2,"ffn_dim":32,"max_position_embeddings":20,
    "do_layer_norm_before":false,"word_embed_proj_dim":8})",
                                    "inline");
  auto model = gt::make_decoder(cfg, 1);
  auto ids = torch::randint(0, 50, {2, 7}, torch::kLong);
  auto mask = torch::ones({2, 7}, torch::kLong);
  auto logits = model->forward(ids, mask);
  CHECK(logits.sizes() == torch::IntArrayRef({2, 7, 50}));
  // Post-LN: a block's output is LayerNorm'ed, so each position has ~zero mean, ~unit variance.
  auto h = model->hidden_states(ids, mask)[1];
  CHECK(h.mean(-1).abs().max().item<double>() < 1e-4);
  CHECK((h.var(-1, false) - 1).abs().max().item<double>() < 1e-2);
}

TEST_CASE("decoder: weights saved under HF names load back into an identical model (OPT, LLaMA)") {
  namespace fs = std::filesystem;
  for (const std::string name : {"opt-tiny-s1", "llama-tiny-s1"}) {
    const auto src = gt::test::fixture("hf-reference/" + name);
    auto model = gt::load_decoder(src, torch::kFloat);
    {
      torch::NoGradGuard no_grad;  // make the saved weights differ from the fixture's
      for (auto& p : model->parameters()) p.add_(0.01);
    }
    const auto dir = fs::temp_directory_path() / ("gt_save_decoder_" + name);
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::copy_file(src + "/config.json", dir / "config.json");
    gt::save_decoder_weights((dir / "model.safetensors").string(), *model);
    auto loaded = gt::load_decoder(dir.string(), torch::kFloat);
    auto ids = torch::randint(0, model->cfg.vocab_size, {2, 6}, torch::kLong);
    auto mask = torch::ones({2, 6}, torch::kLong);
    torch::NoGradGuard no_grad;
    CHECK(torch::equal(model->forward(ids, mask), loaded->forward(ids, mask)));
    fs::remove_all(dir);
  }
}
