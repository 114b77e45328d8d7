// The input adapter / backbone / output adapter cut: same logits and gradients as the
// unsplit model (also when gradients cross the cut as detached "wire" tensors), and split checks.
#include <map>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "models/decoder.hpp"
#include "models/safetensors.hpp"
#include "models/segments.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/reference_batch.hpp"
#include "tests/test_paths.hpp"

namespace {

using gt::test::fixture_dir;
using gt::test::reference_batch;

const char* const kFixtures[] = {"opt-tiny-s1", "llama-tiny-s1"};

// Every split of an L-layer model that leaves the backbone at least one block.
std::vector<gt::SplitPoints> valid_splits(int64_t L) {
  std::vector<gt::SplitPoints> out;
  for (int64_t n_in = 0; n_in < L; ++n_in)
    for (int64_t n_out = 0; n_in + n_out < L; ++n_out) out.push_back({n_in, n_out});
  return out;
}

std::string split_str(gt::SplitPoints s) {
  return "n_in=" + std::to_string(s.n_in) + ", n_out=" + std::to_string(s.n_out);
}

std::map<std::string, torch::Tensor> grads_by_name(const gt::DecoderLM& model) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, p] : gt::hf_named_parameters(gt::all_parts(*model))) out[name] = p.grad();
  return out;
}

}  // namespace

TEST_CASE(
    "segments: input -> backbone -> output gives the unsplit logits bit for bit, every split") {
  for (const std::string name : kFixtures) {
    auto model = gt::load_decoder(fixture_dir(name));
    const auto b = reference_batch(name);
    torch::NoGradGuard no_grad;
    const auto full = model->forward(b.ids, b.mask);
    REQUIRE(model->cfg.num_layers == 4);
    const auto splits = valid_splits(model->cfg.num_layers);
    CHECK(splits.size() == 10);  // (0,0) ... (3,0), (0,3): n_in + n_out <= 3
    for (auto s : splits) {
      INFO(name << " " << split_str(s));
      auto seg = gt::split_model(model, s);
      // Padded, as the unsplit model computes: packed blocks leave padding at zero (and equal
      // this at the real tokens up to summation order, tests/unit/models_packed.cpp).
      gt::set_compute_options(seg, /*packed_batches=*/false, /*label_only_logits=*/true);
      CHECK(static_cast<int64_t>(seg.input->blocks.size()) == s.n_in);
      CHECK(static_cast<int64_t>(seg.backbone->blocks.size()) == 4 - s.n_in - s.n_out);
      CHECK(static_cast<int64_t>(seg.output->blocks.size()) == s.n_out);
      auto ctx = gt::make_attention_context(seg.cfg, b.mask, torch::kFloat);
      auto a1 = seg.input->forward(b.ids, b.mask, ctx);
      auto a2 = seg.backbone->forward(a1, ctx);
      auto logits = seg.output->forward(a2, ctx);
      CHECK(torch::equal(logits, full));
    }
  }
}

TEST_CASE("segments: gradients sent back across the cut equal the unsplit model's gradients") {
  const gt::SplitPoints splits[] = {{1, 1}, {0, 0}, {2, 1}, {0, 3}};
  for (const std::string name : kFixtures) {
    const auto b = reference_batch(name);
    // The unsplit reference: one model, one backward.
    auto whole = gt::load_decoder(fixture_dir(name));
    auto whole_loss = gt::causal_lm_loss(whole->forward(b.ids, b.mask), b.labels);
    whole_loss.backward();
    const auto expected = grads_by_name(whole);

    for (auto s : splits) {
      INFO(name << " " << split_str(s));
      auto model = gt::load_decoder(fixture_dir(name));  // same weights, separate instance
      auto seg = gt::split_model(model, s);
      // Padded, as the unsplit model computes: packing sums the weight gradients over other
      // rows (equal up to summation order, tests/unit/models_packed.cpp).
      gt::set_compute_options(seg, /*packed_batches=*/false, /*label_only_logits=*/true);
      auto ctx = gt::make_attention_context(seg.cfg, b.mask, torch::kFloat);
      // As over the network: each party sees only a detached copy of what it receives.
      auto a1 = seg.input->forward(b.ids, b.mask, ctx);
      auto a1_wire = a1.detach().requires_grad_();
      auto a2 = seg.backbone->forward(a1_wire, ctx);
      auto a2_wire = a2.detach().requires_grad_();
      auto loss = gt::causal_lm_loss(seg.output->forward(a2_wire, ctx), b.labels);
      CHECK(torch::equal(loss, whole_loss));
      loss.backward();
      REQUIRE(a2_wire.grad().defined());
      a2.backward(a2_wire.grad());
      REQUIRE(a1_wire.grad().defined());
      a1.backward(a1_wire.grad());

      const auto got = grads_by_name(model);
      REQUIRE(got.size() == expected.size());
      int64_t exact = 0;
      for (const auto& [pname, g] : got) {
        const auto& param = pname;  // clang 14 cannot capture a structured binding
        INFO(param);
        const auto& want = expected.at(pname);
        REQUIRE(g.defined());
        REQUIRE(want.defined());
        // The split runs the very same kernels in the same order; only where two
        // contributions meet (the tied OPT embedding/head) might the summation order
        // differ, so allow 1e-6 absolute and count how many are exactly equal.
        CHECK((g - want).abs().max().item<double>() <= 1e-6);
        exact += torch::equal(g, want);
      }
      // Observed: every gradient matches exactly (LibTorch 1.13, CPU).
      CHECK(exact == static_cast<int64_t>(got.size()));
    }
  }
}

TEST_CASE("segments: out-of-range split points are a gt::Error naming n_in, n_out and the layers") {
  for (const std::string name : kFixtures) {
    auto model = gt::load_decoder(fixture_dir(name));
    const auto& cfg = model->cfg;
    const auto L = cfg.num_layers;
    const std::string layers = std::to_string(L) + " layers";
    const gt::SplitPoints bad[] = {{-1, 1}, {1, -1},    {-1, -1},   {L, 0},
                                   {0, L},  {L - 1, 1}, {2, L - 2}, {L, L}};
    for (auto s : bad) {
      INFO(name << " " << split_str(s));
      CHECK_THROWS_WITH_AS(gt::check_split_points(cfg, s), gt::test::contains(split_str(s)),
                           gt::Error);
      CHECK_THROWS_WITH_AS(gt::check_split_points(cfg, s), gt::test::contains(layers), gt::Error);
      CHECK_THROWS_WITH_AS(gt::split_model(model, s), gt::test::contains(split_str(s)), gt::Error);
    }
    // The extremes that still leave one backbone block are fine.
    for (auto s : {gt::SplitPoints{L - 1, 0}, gt::SplitPoints{0, L - 1}, gt::SplitPoints{0, 0}}) {
      INFO(name << " " << split_str(s));
      CHECK_NOTHROW(gt::check_split_points(cfg, s));
    }
  }
}

TEST_CASE(
    "segments: the tied OPT head's embedding is one parameter, listed once for both adapters") {
  auto model = gt::load_decoder(fixture_dir("opt-tiny-s1"));
  REQUIRE(model->cfg.tie_word_embeddings);
  auto seg = gt::split_model(model, {1, 1});
  const auto embedding = model->embed->token_embedding();
  // The output adapter's head holds the very tensor the input adapter embeds with.
  CHECK(seg.output->head->named_parameters()["lm_head"].is_same(embedding));

  const auto count_embedding = [&](const std::vector<torch::Tensor>& ps) {
    int64_t n = 0;
    for (const auto& p : ps) n += p.is_same(embedding);
    return n;
  };
  const auto in_params = seg.input->parameters(), out_params = seg.output->parameters();
  CHECK(count_embedding(in_params) == 1);
  CHECK(count_embedding(out_params) == 1);
  const auto unique = gt::unique_parameters({seg.input.get(), seg.output.get()});
  CHECK(count_embedding(unique) == 1);
  CHECK(unique.size() == in_params.size() + out_params.size() - 1);
  // Frozen parameters are skipped unless asked for.
  embedding.set_requires_grad(false);
  CHECK(count_embedding(gt::unique_parameters({seg.input.get(), seg.output.get()})) == 0);
  CHECK(count_embedding(gt::unique_parameters({seg.input.get(), seg.output.get()}, false)) == 1);
  embedding.set_requires_grad(true);

  // LLaMA's head is untied: nothing to deduplicate.
  auto llama = gt::load_decoder(fixture_dir("llama-tiny-s1"));
  auto lseg = gt::split_model(llama, {1, 1});
  const auto lunique = gt::unique_parameters({lseg.input.get(), lseg.output.get()});
  CHECK(lunique.size() == lseg.input->parameters().size() + lseg.output->parameters().size());
}

TEST_CASE("segments: a client that holds no backbone (hollow blocks) computes its adapters alike") {
  for (const std::string name : kFixtures) {
    INFO(name);
    auto model = gt::load_decoder(fixture_dir(name));
    auto client = gt::load_decoder(fixture_dir(name), torch::kFloat, gt::BlockRange{1, 3});
    const auto b = reference_batch(name);
    torch::NoGradGuard no_grad;
    for (int64_t i = 0; i < 4; ++i) {
      INFO("block " << i);
      CHECK(gt::is_hollow(*client->blocks[size_t(i)]) == (i == 1 || i == 2));
      if (i == 1 || i == 2) {
        for (const auto& p : client->blocks[size_t(i)]->parameters()) CHECK(p.numel() == 0);
        continue;
      }
      const auto want = model->blocks[size_t(i)]->parameters();
      const auto got = client->blocks[size_t(i)]->parameters();
      REQUIRE(got.size() == want.size());
      for (size_t k = 0; k < got.size(); ++k) CHECK(torch::equal(got[k], want[k]));
    }
    auto full = gt::split_model(model, {1, 1});
    auto mine = gt::split_model(client, {1, 1});
    auto ctx = gt::make_attention_context(full.cfg, b.mask, torch::kFloat);
    const auto a1 = full.input->forward(b.ids, b.mask, ctx);
    CHECK(torch::equal(mine.input->forward(b.ids, b.mask, ctx), a1));
    const auto a2 = full.backbone->forward(a1, ctx);
    CHECK(torch::equal(mine.output->forward(a2, ctx), full.output->forward(a2, ctx)));
    // Running what it does not hold is a clear error, not a shape mismatch deep in a matmul.
    CHECK_THROWS_WITH_AS(mine.backbone->forward(a1, ctx),
                         doctest::Contains("holds no backbone weights"), gt::Error);
  }
}
