// Split learning (client and server halves through the codec) against the
// centralized baseline, and Online training on the embedded model.
#include <cmath>

#include "data/instructions.hpp"
#include "models/lora.hpp"
#include "models/tokenizer.hpp"
#include "protocols/codec.hpp"
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
  auto model = std::make_shared<gt::ClientModel>(gt::ClientModel{p.seg, p.optimizer, 0});
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

TEST_CASE("split: online int8 + dCor lowers the loss over 50 steps of the embedded model") {
  const auto dir = gt::test::model_dir();
  auto party = make_client(dir, 3e-4);
  auto server = make_server(dir);
  gt::StrategySettings settings;
  settings.online.a1 = gt::QuantScheme::int8;
  settings.dcor_lambda = 0.1;
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
