// Coarsened inputs (privacy.token_clusters): the clustering of the vocabulary (its properties,
// its determinism, clear errors) and what it guarantees: an input adapter with the map sends
// bit-identical a1 for texts that differ only within clusters, so no attacker can tell them
// apart.
#include "common/error.hpp"
#include "models/decoder.hpp"
#include "models/segments.hpp"
#include "privacy/token_clusters.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/test_paths.hpp"

namespace {

// Four well-separated directions, five noisy tokens around each; tokens 20 and 21 extra.
torch::Tensor grouped_embedding() {
  torch::manual_seed(3);
  auto directions = torch::eye(8).narrow(0, 0, 4) * 3;
  auto rows = directions.repeat_interleave(5, 0) + 0.05 * torch::randn({20, 8});
  return torch::cat({rows, torch::randn({2, 8})});
}

}  // namespace

TEST_CASE("token clusters: alike tokens share a representative, kept-apart tokens stay alone") {
  const auto e = grouped_embedding();
  gt::TokenClusterOptions o;
  o.clusters = 4;
  o.keep_apart = {20, 21};
  const auto map = gt::cluster_representatives(e, o);
  REQUIRE(map.sizes() == torch::IntArrayRef{22});
  CHECK(map[20].item<int64_t>() == 20);
  CHECK(map[21].item<int64_t>() == 21);
  for (int64_t g = 0; g < 4; ++g) {
    const auto rep = map[5 * g].item<int64_t>();
    CHECK(rep / 5 == g);  // a member of its own group
    for (int64_t i = 0; i < 5; ++i) CHECK(map[5 * g + i].item<int64_t>() == rep);
  }
  // A representative stands for itself; the same map every time (public, no randomness).
  CHECK(torch::equal(map.index({map}), map));
  CHECK(torch::equal(gt::cluster_representatives(e, o), map));
  // More clusters than tokens, or none, is refused with the key's name.
  o.clusters = 21;
  CHECK_THROWS_WITH_AS(gt::cluster_representatives(e, o),
                       doctest::Contains("privacy.token_clusters: 21 clusters for 20 tokens"),
                       gt::Error);
  o.clusters = 0;
  CHECK_THROWS_AS(gt::cluster_representatives(e, o), gt::Error);
}

TEST_CASE("token clusters: a1 depends on the clusters only, on the embedded model") {
  auto model = gt::load_decoder(gt::test::model_dir());
  auto seg = gt::split_model(model, {1, 1});
  gt::TokenClusterOptions o;
  o.clusters = 512;
  o.keep_apart = {seg.cfg.bos_token_id, seg.cfg.eos_token_id, seg.cfg.pad_token_id};
  const auto map = gt::cluster_representatives(seg.input->embed->token_embedding(), o);
  const auto V = seg.cfg.vocab_size;
  CHECK(std::get<0>(at::_unique(map)).numel() <= 512 + 3);
  // Two texts: the second has every token replaced by another member of its cluster where
  // the cluster has one.
  auto ids = torch::randint(4, V, {2, 12}, torch::kLong);
  auto other = ids.clone();
  int64_t swapped = 0;
  for (int64_t i = 0; i < ids.numel(); ++i) {
    const auto t = ids.view(-1)[i].item<int64_t>();
    const auto mates = torch::nonzero(map.eq(map[t])).flatten();
    for (int64_t j = 0; j < mates.numel(); ++j)
      if (mates[j].item<int64_t>() != t) {
        other.view(-1)[i] = mates[j];
        ++swapped;
        break;
      }
  }
  REQUIRE(swapped > 12);
  const auto mask = torch::ones({2, 12}, torch::kLong);
  const auto ctx = gt::make_attention_context(seg.cfg, mask, seg.dtype);
  torch::NoGradGuard no_grad;
  const auto plain_a = seg.input->forward(ids, mask, ctx),
             plain_b = seg.input->forward(other, mask, ctx);
  CHECK_FALSE(torch::equal(plain_a, plain_b));
  seg.input->set_input_map(map);
  CHECK(torch::equal(seg.input->forward(ids, mask, ctx), seg.input->forward(other, mask, ctx)));
}
