// Why leaving padded positions off the wire is lossless: no real value depends on
// what a padded position holds, and every gradient at a padded position is exactly 0.
// Checked at both parties against a run that sends every position, with garbage in
// the padded ones.
#include "models/lora.hpp"
#include "protocols/codec.hpp"
#include "protocols/wire_tensor.hpp"
#include "strategies/client_channel.hpp"
#include "strategies/split_client.hpp"
#include "strategies/split_server.hpp"
#include "strategies/strategy_factory.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/test_paths.hpp"

namespace {

struct Party {
  gt::DecoderLM model{nullptr};
  std::shared_ptr<gt::ClientModel> client;
};

Party make_client(const std::string& dir) {
  Party p;
  p.model = gt::load_decoder(dir);
  auto seg = gt::split_model(p.model, {1, 1});
  gt::set_trainable(*p.model, gt::TrainMode::frozen);
  gt::set_trainable(*seg.input, gt::TrainMode::full);
  gt::set_trainable(*seg.output, gt::TrainMode::full);
  auto opt = std::make_shared<torch::optim::AdamW>(
      gt::unique_parameters({seg.input.get(), seg.output.get()}), torch::optim::AdamWOptions(1e-3));
  p.client = std::make_shared<gt::ClientModel>(gt::ClientModel{seg, opt, 0});
  return p;
}

gt::SplitServer make_server(const std::string& dir) {
  auto model = gt::load_decoder(dir);
  gt::set_trainable(*model, gt::TrainMode::frozen);
  return gt::SplitServer(gt::split_model(model, {1, 1}), "server");
}

template <class T>
T wire(const T& m) {
  return gt::decode(gt::encode(m));
}

// Two right-padded rows of four.
gt::LmBatch padded_batch(int64_t vocab) {
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(7);
  auto ids = torch::randint(3, vocab, {4, 9}, gen, torch::kLong);
  auto mask = torch::ones({4, 9}, torch::kLong);
  mask.index_put_({1, torch::indexing::Slice(6)}, 0);
  mask.index_put_({3, torch::indexing::Slice(2)}, 0);
  return {ids, mask, ids.masked_fill(mask.eq(0), -100)};
}

// `x` with random values in the rows where `mask` is 0.
torch::Tensor with_garbage(const torch::Tensor& x, const torch::Tensor& mask) {
  auto pad = mask.eq(0).unsqueeze(-1);
  return torch::where(pad, torch::randn(x.sizes()) * 5, x);
}

torch::Tensor real_rows(const torch::Tensor& x, const torch::Tensor& mask) {
  return x.index({mask.ne(0)});
}

torch::Tensor padded_rows(const torch::Tensor& x, const torch::Tensor& mask) {
  return x.index({mask.eq(0)});
}

}  // namespace

TEST_CASE("strategies: padded positions carry nothing, so leaving them off the wire is lossless") {
  torch::manual_seed(11);
  const auto dir = gt::test::fixture("hf-reference/opt-tiny-s1");
  auto server = make_server(dir);
  auto party = make_client(dir);
  gt::ClientChannel client(party.client, gt::make_client_strategy("split", party.client, {}));
  client.set_session(server.open(wire(client.hello("c"))).header.session);
  const auto batch = padded_batch(party.client->seg.cfg.vocab_size);
  const auto& mask = batch.attention_mask;
  // The references see every position, with garbage where the padding is: the server's
  // backbone (a second copy) and a client strategy on a second copy of the adapters.
  auto reference = gt::load_decoder(dir);
  gt::set_trainable(*reference, gt::TrainMode::frozen);
  auto backbone = gt::split_model(reference, {1, 1}).backbone;
  const auto ctx = gt::make_attention_context(reference->cfg, mask, torch::kFloat);
  auto other = make_client(dir);
  gt::SplitClient reference_client(other.client, "split");
  (void)reference_client.begin_step({batch, {}});

  // a1 leaves out the 10 padded positions; a2 at every real position is what the backbone
  // gives with garbage at the padded ones.
  auto fwd = std::get<gt::ForwardRequest>(client.begin_step({batch, {}}));
  CHECK(fwd.activations.rows.size() == 5);  // 36 positions, 26 sent
  const auto a1 = gt::from_wire(fwd.activations, "a1");
  CHECK(padded_rows(a1, mask).abs().max().item<float>() == 0);
  const auto a1_full = with_garbage(a1, mask).requires_grad_(true);
  const auto a2_full = backbone->forward(a1_full, ctx);
  CHECK(padded_rows(a2_full, mask).abs().max().item<float>() > 0);
  const auto reply = server.forward(wire(fwd));
  CHECK(!reply.activations.rows.empty());
  const auto a2 = gt::from_wire(reply.activations, "a2");
  CHECK(torch::equal(real_rows(a2, mask), real_rows(a2_full, mask).detach()));

  // The client's g2 is exactly 0 at padded positions whatever a2 holds there, and the same at
  // the real ones.
  const auto g2_full = std::get<gt::GradientsUp>(
                           reference_client.on_activations(with_garbage(a2_full.detach(), mask)))
                           .g2;
  CHECK(padded_rows(g2_full, mask).abs().max().item<float>() == 0);
  auto bwd = std::get<gt::BackwardRequest>(client.on_reply(wire(reply)));
  CHECK(!bwd.gradient.rows.empty());
  const auto g2 = gt::from_wire(bwd.gradient, "g2");
  CHECK(torch::equal(real_rows(g2, mask), real_rows(g2_full, mask)));

  // g1 is exactly 0 at padded positions too, and the same at the real ones.
  a2_full.backward(g2_full);
  const auto g1_full = a1_full.grad();
  CHECK(padded_rows(g1_full, mask).abs().max().item<float>() == 0);
  const auto g1 = gt::from_wire(server.backward(wire(bwd)).gradient, "g1");
  CHECK(torch::equal(real_rows(g1, mask), real_rows(g1_full, mask)));
  CHECK(real_rows(g1, mask).abs().max().item<float>() > 0);
}

TEST_CASE("strategies: an unpadded batch is sent whole, with no row bitmap") {
  const auto dir = gt::test::fixture("hf-reference/opt-tiny-s1");
  auto server = make_server(dir);
  auto party = make_client(dir);
  gt::ClientChannel client(party.client, gt::make_client_strategy("online", party.client, {}));
  client.set_session(server.open(wire(client.hello("c"))).header.session);
  auto ids = torch::randint(3, party.client->seg.cfg.vocab_size, {2, 5}, torch::kLong);
  const gt::LmBatch batch{ids, torch::ones({2, 5}, torch::kLong), ids};
  auto fwd = std::get<gt::ForwardRequest>(client.begin_step({batch, {}}));
  CHECK(fwd.activations.rows.empty());
  CHECK(server.forward(wire(fwd)).activations.rows.empty());
}
