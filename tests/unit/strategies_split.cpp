// Split learning (client and server halves through the codec) against the
// centralized baseline, Online training on the embedded model, and why leaving
// padded positions off the wire is lossless: no real value depends on what a padded
// position holds, and every gradient there is exactly 0 (checked at both parties
// against references that see every position, with garbage in the padded ones).
#include <cmath>

#include "common/error.hpp"
#include "data/instructions.hpp"
#include "models/lora.hpp"
#include "models/tokenizer.hpp"
#include "protocols/codec.hpp"
#include "protocols/wire_tensor.hpp"
#include "strategies/centralized.hpp"
#include "strategies/client_channel.hpp"
#include "strategies/split_client.hpp"
#include "strategies/split_server.hpp"
#include "strategies/strategy_factory.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/test_paths.hpp"

namespace {

struct Party {
  gt::DecoderLM model{nullptr};
  gt::Segments seg;
  std::shared_ptr<torch::optim::Optimizer> optimizer;
};

// Each party loads its own copy, as in a deployment; adapters train fully.
Party make_client(const std::string& dir, double lr) {
  Party p;
  p.model = gt::load_decoder(dir);
  p.seg = gt::split_model(p.model, {1, 1});
  gt::set_trainable(*p.model, gt::TrainMode::frozen);
  gt::set_trainable(*p.seg.input, gt::TrainMode::full);
  gt::set_trainable(*p.seg.output, gt::TrainMode::full);
  p.optimizer = std::make_shared<torch::optim::AdamW>(
      gt::unique_parameters({p.seg.input.get(), p.seg.output.get()}),
      torch::optim::AdamWOptions(lr));
  return p;
}

gt::SplitServer make_server(const std::string& dir) {
  auto model = gt::load_decoder(dir);
  gt::set_trainable(*model, gt::TrainMode::frozen);
  return gt::SplitServer(gt::split_model(model, {1, 1}), "server");
}

// Every message goes through encode/decode, exactly what crosses the wire.
template <class T>
T wire(const T& m) {
  return gt::decode(gt::encode(m));
}

gt::StepOutcome split_step(gt::ClientChannel& client, gt::SplitServer& server,
                           const gt::LmBatch& batch) {
  auto fwd = server.forward(wire(std::get<gt::ForwardRequest>(client.begin_step({batch, {}}))));
  auto up = client.on_reply(wire(fwd));
  auto bwd = server.backward(wire(std::get<gt::BackwardRequest>(up)));
  return std::get<gt::StepOutcome>(client.on_reply(wire(bwd)));
}

// A channel over the party's adapters running `strategy` (split, online, ...).
gt::ClientChannel channel(const Party& p, const std::string& strategy,
                          const gt::StrategySettings& settings = {}) {
  auto model = std::make_shared<gt::ClientModel>(gt::ClientModel{p.seg, p.optimizer, 0, nullptr});
  return gt::ClientChannel(model, gt::make_client_strategy(strategy, model, settings));
}

gt::LmBatch random_batch(int64_t vocab, int64_t step) {
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(1000 + step);
  auto ids = torch::randint(3, vocab, {4, 9}, gen, torch::kLong);
  auto mask = torch::ones({4, 9}, torch::kLong);
  mask.index_put_({1, torch::indexing::Slice(6)}, 0);  // one right-padded row
  return {ids, mask, ids.masked_fill(mask.eq(0), -100)};
}

}  // namespace

TEST_CASE(
    "split: fp32 split learning without dCor trains the same adapters as centralized training") {
  const auto dir = gt::test::fixture("hf-reference/opt-tiny-s1");
  auto central = make_client(dir, 1e-3);
  auto split = make_client(dir, 1e-3);
  auto server = make_server(dir);
  gt::CentralizedTrainer trainer(central.seg, central.optimizer);
  auto client = channel(split, "split");
  client.set_session(server.open(wire(client.hello("c"))).header.session);
  gt::WireStats stats;
  for (int64_t step = 0; step < 6; ++step) {
    auto batch = random_batch(split.seg.cfg.vocab_size, step);
    auto a = trainer.step(batch, stats, "link");
    auto b = split_step(client, server, batch);
    CHECK(a.loss == doctest::Approx(b.loss).epsilon(1e-6));
  }
  // The wire carries fp32 exactly and the gradients through the cut are bit-equal
  // (segments tests), so the weights agree to rounding: tolerance 1e-6 absolute.
  auto pa = central.model->named_parameters(), pb = split.model->named_parameters();
  double worst = 0;
  int64_t changed = 0;
  for (const auto& item : pa) {
    auto other = pb[item.key()];
    worst = std::max(worst, (item.value() - other).abs().max().item<double>());
    changed += item.value().requires_grad();
  }
  INFO("max |weight difference| = " << worst);
  CHECK(worst <= 1e-6);
  CHECK(changed > 0);
}

TEST_CASE("split: online's local backward through the real backbone takes the server's steps") {
  // The stand-in is exact here, so g1 computed at the client equals the server's g1: the
  // same adapters (to float rounding) while no gradient crosses the wire.
  const auto dir = gt::test::fixture("hf-reference/opt-tiny-s1");
  auto remote = make_client(dir, 1e-3), local = make_client(dir, 1e-3);
  auto server = make_server(dir);
  auto stand_in_model = gt::load_decoder(dir);
  gt::StrategySettings settings;
  auto a = channel(remote, "online", settings);
  settings.local_backward = true;
  CHECK_THROWS_WITH_AS(channel(local, "online", settings), doctest::Contains("emulator"),
                       gt::Error);
  auto model =
      std::make_shared<gt::ClientModel>(gt::ClientModel{local.seg, local.optimizer, 0, nullptr});
  gt::ClientChannel b(model,
                      gt::make_client_strategy("online", model, settings,
                                               gt::split_model(stand_in_model, {1, 1}).backbone));
  CHECK_FALSE(b.strategy().terms().backward);
  a.set_session(server.open(wire(a.hello("a"))).header.session);
  b.set_session(server.open(wire(b.hello("b"))).header.session);
  for (int64_t step = 0; step < 4; ++step) {
    auto batch = random_batch(local.seg.cfg.vocab_size, step);
    const auto x = split_step(a, server, batch);
    auto up = std::get<gt::ForwardRequest>(b.begin_step({batch, {}}));
    CHECK_FALSE(up.keep_graph);
    auto done = b.on_reply(wire(server.forward(wire(up))));  // nothing more goes up
    REQUIRE(std::holds_alternative<gt::StepOutcome>(done));
    CHECK(std::get<gt::StepOutcome>(done).loss == doctest::Approx(x.loss).epsilon(1e-5));
  }
  auto pa = remote.model->named_parameters(), pb = local.model->named_parameters();
  double worst = 0;
  for (const auto& item : pa)
    worst = std::max(worst, (item.value() - pb[item.key()]).abs().max().item<double>());
  INFO("max |weight difference| = " << worst);
  CHECK(worst <= 1e-5);
  settings.micro_batches = 2;
  CHECK_THROWS_WITH_AS(gt::make_client_strategy("online", model, settings,
                                                gt::split_model(stand_in_model, {1, 1}).backbone),
                       doctest::Contains("unpipelined"), gt::Error);
}

TEST_CASE("split: online int8 + dCor lowers the loss over 50 steps of the embedded model") {
  const auto dir = gt::test::model_dir();
  auto party = make_client(dir, 3e-4);
  auto server = make_server(dir);
  gt::StrategySettings settings;
  settings.online.a1 = gt::QuantScheme::int8;
  settings.privacy.dcor_weight = 0.1;
  auto client = channel(party, "online", settings);
  client.set_session(server.open(wire(client.hello("c"))).header.session);
  auto tokenizer = gt::Tokenizer::from_dir(dir);
  auto examples = gt::wordnet_instructions("/usr/share/wordnet", 0.05, 400, 0);
  gt::InstructionDataset data(examples.train, tokenizer, 48);
  std::vector<double> losses;
  for (int64_t step = 0; step < 50; ++step) {
    std::vector<size_t> idx;
    for (size_t i = 0; i < 8; ++i) idx.push_back((step * 8 + i) % data.size());
    auto out = split_step(client, server, data.batch(idx));
    CHECK(std::isfinite(out.loss));
    CHECK(out.a1_quant_error > 0);  // int8 really changed what the server saw
    CHECK(out.dcor > 0);
    losses.push_back(out.loss);
  }
  double first = 0, last = 0;
  for (int i = 0; i < 10; ++i) first += losses[i] / 10, last += losses[40 + i] / 10;
  INFO("mean loss of steps 1-10: " << first << ", of steps 41-50: " << last);
  CHECK(last < first - 0.5);
}

namespace {

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

// Equal up to float summation order: the parties compute on the real tokens only (packed
// batches), the references on every position.
bool summation_close(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() <= 1e-5 * b.abs().max().item<double>() + 1e-7;
}

}  // namespace

TEST_CASE("strategies: padded positions carry nothing, so leaving them off the wire is lossless") {
  torch::manual_seed(11);
  const auto dir = gt::test::fixture("hf-reference/opt-tiny-s1");
  auto server = make_server(dir);
  auto party = make_client(dir, 1e-3);
  auto client = channel(party, "split");
  client.set_session(server.open(wire(client.hello("c"))).header.session);
  const auto batch = padded_batch(party.seg.cfg.vocab_size);
  const auto& mask = batch.attention_mask;
  // The references see every position, with garbage where the padding is: the server's
  // backbone (a second copy) and a client strategy on a second copy of the adapters.
  auto reference = gt::load_decoder(dir);
  gt::set_trainable(*reference, gt::TrainMode::frozen);
  auto backbone = gt::split_model(reference, {1, 1}).backbone;
  backbone->packed = false;  // every position, garbage included
  const auto ctx = gt::make_attention_context(reference->cfg, mask, torch::kFloat);
  auto other = make_client(dir, 1e-3);
  gt::SplitClient reference_client(
      std::make_shared<gt::ClientModel>(gt::ClientModel{other.seg, other.optimizer, 0, nullptr}),
      "split");
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
  CHECK(summation_close(real_rows(a2, mask), real_rows(a2_full, mask).detach()));

  // The client's g2 is exactly 0 at padded positions whatever a2 holds there, and the same at
  // the real ones.
  const auto g2_full = std::get<gt::GradientsUp>(
                           reference_client.on_activations(with_garbage(a2_full.detach(), mask)))
                           .g2;
  CHECK(padded_rows(g2_full, mask).abs().max().item<float>() == 0);
  auto bwd = std::get<gt::BackwardRequest>(client.on_reply(wire(reply)));
  CHECK(!bwd.gradient.rows.empty());
  const auto g2 = gt::from_wire(bwd.gradient, "g2");
  CHECK(summation_close(real_rows(g2, mask), real_rows(g2_full, mask)));

  // g1 is exactly 0 at padded positions too, and the same at the real ones.
  a2_full.backward(g2_full);
  const auto g1_full = a1_full.grad();
  CHECK(padded_rows(g1_full, mask).abs().max().item<float>() == 0);
  const auto g1 = gt::from_wire(server.backward(wire(bwd)).gradient, "g1");
  CHECK(summation_close(real_rows(g1, mask), real_rows(g1_full, mask)));
  CHECK(real_rows(g1, mask).abs().max().item<float>() > 0);
}

TEST_CASE("strategies: an unpadded batch is sent whole, with no row bitmap") {
  const auto dir = gt::test::fixture("hf-reference/opt-tiny-s1");
  auto server = make_server(dir);
  auto party = make_client(dir, 1e-3);
  auto client = channel(party, "online");
  client.set_session(server.open(wire(client.hello("c"))).header.session);
  auto ids = torch::randint(3, party.seg.cfg.vocab_size, {2, 5}, torch::kLong);
  const gt::LmBatch batch{ids, torch::ones({2, 5}, torch::kLong), ids};
  auto fwd = std::get<gt::ForwardRequest>(client.begin_step({batch, {}}));
  CHECK(fwd.activations.rows.empty());
  CHECK(server.forward(wire(fwd)).activations.rows.empty());
}

TEST_CASE("split: a hello asking for an unknown reply compression is refused, no session opened") {
  const auto dir = gt::test::fixture("hf-reference/opt-tiny-s1");
  auto server = make_server(dir);
  auto party = make_client(dir, 1e-3);
  auto client = channel(party, "split");
  auto hello = client.hello("c");
  hello.compress = 7;
  CHECK_THROWS_WITH_AS(server.open(wire(hello)), gt::test::contains("unknown compression 7"),
                       gt::ProtocolError);
  CHECK(server.num_sessions() == 0);
  client.set_compression(gt::Compression::zstd);
  const auto accept = server.open(wire(client.hello("c")));
  CHECK(server.compression(accept.header.session) == gt::Compression::zstd);
}
