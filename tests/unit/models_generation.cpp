// Generation with KV caches (issue 18): each step's logits equal the whole sequence's forward
// (whose logits equal transformers', tests/unit/models_decoder.cpp), greedy generation equals
// recomputing the whole sequence each step, and sampling is repeatable from its seed.
#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "models/decoder.hpp"
#include "models/generation.hpp"
#include "models/kv_cache.hpp"
#include "models/segments.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/reference_batch.hpp"

namespace {

using gt::test::fixture_dir;
using gt::test::reference_batch;

const char* const kFixtures[] = {"opt-tiny-s1", "llama-tiny-s1"};

// max |a - b| over the rows' real positions (mask 1).
double masked_max_diff(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& mask) {
  return ((a - b).abs().amax(-1) * mask.to(torch::kFloat)).max().item<double>();
}

// Greedy by recomputing the whole sequence each step: the reference for the cached loop.
std::vector<std::vector<int64_t>> greedy_without_cache(gt::DecoderLM& model, torch::Tensor ids,
                                                       torch::Tensor mask, int64_t n) {
  torch::NoGradGuard no_grad;
  const auto B = ids.size(0);
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(B));
  for (int64_t i = 0; i < n; ++i) {
    auto logits = model->forward(ids, mask);  // (B, T, V)
    auto last = (mask * torch::arange(mask.size(1))).argmax(1);
    auto next = logits.index({torch::arange(B), last}).argmax(-1);  // (B)
    for (int64_t b = 0; b < B; ++b) out[size_t(b)].push_back(next[b].item<int64_t>());
    ids = torch::cat({ids, next.view({B, 1})}, 1);
    mask = torch::cat({mask, torch::ones({B, 1}, torch::kLong)}, 1);
  }
  return out;
}

}  // namespace

TEST_CASE("generation: each cached step's logits equal the whole sequence's forward") {
  for (const std::string name : kFixtures)
    for (bool packed : {false, true}) {
      INFO(name << (packed ? " packed" : " padded"));
      auto model = gt::load_decoder(fixture_dir(name));
      auto seg = gt::split_model(model, {1, 1});
      gt::set_compute_options(seg, packed, true);
      const auto b = reference_batch(name);  // row 1 right-padded, row 2 left-padded
      const auto B = b.ids.size(0), T = b.ids.size(1);
      const auto extra = torch::randint(3, seg.cfg.vocab_size, {B, 3},
                                        at::detail::createCPUGenerator(7), torch::kLong);
      const auto ids = torch::cat({b.ids, extra}, 1);
      const auto mask = torch::cat({b.mask, torch::ones({B, 3}, torch::kLong)}, 1);
      torch::NoGradGuard no_grad;
      const auto full = model->forward(ids, mask);  // (B, T + 3, V)

      gt::KvCache cache;  // one cache for all three segments: one process
      auto step = [&](const torch::Tensor& new_ids, const torch::Tensor& new_mask) {
        auto ctx = gt::step_context(seg.cfg, cache, new_mask, torch::kFloat);
        auto a1 = seg.input->forward(new_ids, cache.attention_mask, ctx);
        return seg.output->forward(seg.backbone->forward(a1, ctx), ctx);
      };
      const auto prompt = step(b.ids, b.mask);
      CHECK(masked_max_diff(prompt, full.slice(1, 0, T), b.mask) < 1e-5);
      for (int64_t j = 0; j < 3; ++j) {
        CAPTURE(j);
        const auto logits = step(extra.slice(1, j, j + 1), torch::ones({B, 1}, torch::kLong));
        CHECK(logits.size(1) == 1);
        CHECK(masked_max_diff(logits, full.slice(1, T + j, T + j + 1),
                              torch::ones({B, 1}, torch::kLong)) < 1e-5);
      }
      CHECK(cache.seen() == T + 3);
      // Every block's keys and values, each (B, K, T + 3, D).
      CHECK(cache.blocks.size() == size_t(seg.cfg.num_layers));
      CHECK(cache.blocks.at(0).first.size(2) == T + 3);
      CHECK(cache.bytes() > 0);
    }
}

TEST_CASE("generation: greedy with caches gives the tokens of recomputing the whole sequence") {
  for (const std::string name : kFixtures) {
    INFO(name);
    auto model = gt::load_decoder(fixture_dir(name));
    auto seg = gt::split_model(model, {1, 1});
    const auto b = reference_batch(name);
    gt::SamplingOptions o;
    o.max_tokens = 6;
    const auto got = gt::generate(seg, b.ids, b.mask, o);
    const auto want = greedy_without_cache(model, b.ids, b.mask, o.max_tokens);
    REQUIRE(got.tokens.size() == want.size());
    for (size_t r = 0; r < want.size(); ++r) {
      CAPTURE(r);
      CHECK(got.tokens[r] == want[r]);
      CHECK(got.finish[r] == "length");
    }
    // A stop token ends a row at its first occurrence, without it; rows without it go on.
    const auto stop = want[0][2];
    o.stop_tokens = {stop};
    const auto stopped = gt::generate(seg, b.ids, b.mask, o);
    for (size_t r = 0; r < want.size(); ++r) {
      CAPTURE(r);
      const auto at = std::find(want[r].begin(), want[r].end(), stop);
      CHECK(stopped.tokens[r] == std::vector<int64_t>(want[r].begin(), at));
      CHECK(stopped.finish[r] == (at == want[r].end() ? "length" : "stop"));
    }
    CHECK(stopped.finish[0] == "stop");
  }
}

TEST_CASE("generation: sampling repeats from its seed, and top_k = 1 is greedy") {
  auto model = gt::load_decoder(fixture_dir("opt-tiny-s1"));
  auto seg = gt::split_model(model, {1, 1});
  const auto b = reference_batch("opt-tiny-s1");
  gt::SamplingOptions o;
  o.max_tokens = 8;
  const auto greedy = gt::generate(seg, b.ids, b.mask, o);
  o.temperature = 1.0;
  o.seed = 11;
  const auto first = gt::generate(seg, b.ids, b.mask, o),
             again = gt::generate(seg, b.ids, b.mask, o);
  CHECK(first.tokens == again.tokens);
  o.top_k = 1;
  CHECK(gt::generate(seg, b.ids, b.mask, o).tokens == greedy.tokens);
  o.top_k = 0;
  o.top_p = 1e-6;  // the most probable token alone
  CHECK(gt::generate(seg, b.ids, b.mask, o).tokens == greedy.tokens);
}

TEST_CASE("generation: next_tokens keeps top_k and top_p to the tokens they allow") {
  const auto logits = torch::log(torch::tensor({{0.5, 0.3, 0.15, 0.05}}));
  auto gen = at::detail::createCPUGenerator(3);
  gt::SamplingOptions o;
  o.temperature = 1;
  o.top_p = 0.7;  // 0.5, then 0.3 reaches 0.8: the first two
  std::set<int64_t> seen;
  for (int i = 0; i < 200; ++i) seen.insert(gt::next_tokens(logits, o, gen).item<int64_t>());
  CHECK(seen == std::set<int64_t>{0, 1});
  o.top_p = 1;
  o.top_k = 3;
  seen.clear();
  for (int i = 0; i < 400; ++i) seen.insert(gt::next_tokens(logits, o, gen).item<int64_t>());
  CHECK(seen == std::set<int64_t>{0, 1, 2});
}

TEST_CASE("generation: bad requests are errors that say what is wrong") {
  auto model = gt::load_decoder(fixture_dir("opt-tiny-s1"));
  auto seg = gt::split_model(model, {1, 1});
  const auto b = reference_batch("opt-tiny-s1");
  gt::SamplingOptions o;
  o.max_tokens = 0;
  CHECK_THROWS_WITH_AS(gt::generate(seg, b.ids, b.mask, o), doctest::Contains("max_tokens"),
                       gt::Error);
  o.max_tokens = 2;
  CHECK_THROWS_WITH_AS(gt::generate(seg, b.ids, torch::zeros_like(b.mask), o),
                       doctest::Contains("at least one real token"), gt::Error);
  CHECK_THROWS_WITH_AS(gt::generate(seg, b.ids, b.mask.slice(1, 1), o),
                       doctest::Contains("same shape"), gt::Error);
}
