// A client checkpoint restores adapters, optimizer state and progress exactly:
// training on from it gives the same numbers as never having stopped. Files of
// other settings, or damaged ones, are refused with the reason.
#include <fstream>

#include "common/error.hpp"
#include "models/decoder.hpp"
#include "models/lora.hpp"
#include "models/safetensors.hpp"
#include "models/segments.hpp"
#include "strategies/adapter_upload.hpp"
#include "strategies/client_checkpoint.hpp"
#include "strategies/run_log.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/temp_dir.hpp"
#include "tests/test_paths.hpp"

namespace {

using gt::test::TempDir;

struct Client {
  gt::DecoderLM model{nullptr};
  gt::ClientModel trainer;
};

// A fresh client: the same pretrained adapters every time, AdamW without state.
Client make_client() {
  Client c;
  c.model = gt::load_decoder(gt::test::fixture("hf-reference/opt-tiny-s1"));
  c.trainer.seg = gt::split_model(c.model, {1, 1});
  gt::set_trainable(*c.model, gt::TrainMode::frozen);
  gt::set_trainable(*c.trainer.seg.input, gt::TrainMode::full);
  gt::set_trainable(*c.trainer.seg.output, gt::TrainMode::full);
  c.trainer.optimizer = std::make_shared<torch::optim::AdamW>(
      gt::unique_parameters({c.trainer.seg.input.get(), c.trainer.seg.output.get()}),
      torch::optim::AdamWOptions(1e-2).weight_decay(0.1));
  return c;
}

// One optimizer step on a fixed batch through both adapters.
void train_step(Client& c, int64_t step) {
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(50 + step);
  auto ids = torch::randint(3, c.trainer.seg.cfg.vocab_size, {2, 6}, gen, torch::kLong);
  auto mask = torch::ones({2, 6}, torch::kLong);
  auto ctx = gt::make_attention_context(c.trainer.seg.cfg, mask, torch::kFloat);
  auto a1 = c.trainer.seg.input->forward(ids, mask, ctx);
  auto logits = c.trainer.seg.output->forward(a1, ctx);
  auto loss = gt::causal_lm_loss(logits, ids);
  c.trainer.optimizer->zero_grad();
  loss.backward();
  c.trainer.optimizer->step();
}

gt::NamedTensors values(const Client& c) {
  gt::NamedTensors out;
  for (const auto& [name, p] : gt::trainable_adapters(c.trainer.seg))
    out[name] = p.detach().clone();
  return out;
}

void check_equal(const gt::NamedTensors& a, const gt::NamedTensors& b) {
  REQUIRE(a.size() == b.size());
  for (const auto& [name, t] : a) {
    const auto& tensor_name = name;  // clang 14 cannot capture a structured binding
    CAPTURE(tensor_name);
    CHECK(torch::equal(t, b.at(name)));
  }
}

}  // namespace

TEST_CASE("client checkpoint: training on from a checkpoint equals never stopping") {
  TempDir dir;
  const gt::ClientCheckpoint ckpt(dir.str(), "alice", "training.lr = 0.01\n");
  auto first = make_client();
  for (int64_t s = 0; s < 3; ++s) train_step(first, s);

  gt::ClientProgress p;
  p.step = 3;
  p.phase = 1;
  p.phase_steps = 2;
  p.strategy = "online";
  p.epoch = 2;
  p.cursor = 17;
  p.evaluated_before = true;
  p.phase_replies = {R"({"index":0})"};
  gt::WireStats wire;
  wire.add("alice-server", "up", "activations_up", 1234);
  wire.add("alice-server", "up", "activations_up", 1000);
  p.wire = gt::wire_state(wire);
  p.log = nlohmann::json::object({{"steps", 3}});
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(9);
  ckpt.save(p, first.trainer, {gen.get_state()});
  CHECK(std::filesystem::exists(dir.file("alice.checkpoint.safetensors")));

  auto second = make_client();  // the restarted process: pretrained values, empty optimizer
  const auto restored = ckpt.load(second.trainer);
  REQUIRE(restored.has_value());
  check_equal(values(first), values(second));
  const auto& q = restored->progress;
  CHECK(q.step == 3);
  CHECK(q.phase == 1);
  CHECK(q.phase_steps == 2);
  CHECK(q.strategy == "online");
  CHECK(q.epoch == 2);
  CHECK(q.cursor == 17);
  CHECK(q.evaluated_before);
  CHECK(!q.steps_since_upload);
  CHECK(q.phase_replies == p.phase_replies);
  CHECK(q.log == p.log);
  gt::WireStats wire2;
  gt::restore_wire(wire2, q.wire);
  CHECK(gt::wire_state(wire2) == gt::wire_state(wire));
  REQUIRE(restored->random_state.size() == 1);
  CHECK(torch::equal(restored->random_state[0], gen.get_state()));

  // Adam's moments came back too: the next steps agree exactly.
  for (int64_t s = 3; s < 5; ++s) {
    train_step(first, s);
    train_step(second, s);
  }
  check_equal(values(first), values(second));
}

TEST_CASE("client checkpoint: none yet, other settings, damaged files") {
  TempDir dir;
  auto c = make_client();
  const gt::ClientCheckpoint ckpt(dir.str(), "bob", "optimizer.lr = 0.01\ntraining.seed = 0\n");
  CHECK(!ckpt.load(c.trainer).has_value());
  ckpt.save(gt::ClientProgress{}, c.trainer, {});

  const gt::ClientCheckpoint other(dir.str(), "bob", "optimizer.lr = 0.5\ntraining.seed = 0\n");
  CHECK_THROWS_WITH_AS(other.load(c.trainer),
                       doctest::Contains("of other settings (optimizer.lr = 0.01)"), gt::Error);

  // Cut short: named, no crash.
  const auto path = dir.file("bob.checkpoint.safetensors");
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  CHECK_THROWS_WITH_AS(ckpt.load(c.trainer), doctest::Contains(path.c_str()), gt::Error);
  // Some other safetensors file where the checkpoint should be.
  gt::save_safetensors(path, {{"x", torch::zeros({2})}});
  CHECK_THROWS_WITH_AS(ckpt.load(c.trainer), doctest::Contains("not a client checkpoint"),
                       gt::Error);
}

TEST_CASE("run log: its state round-trips") {
  gt::WireStats stats;
  gt::RunLog log;
  log.begin_phase(0, "online", stats);
  log.add_eval({0, 3.5, 33.1, 40});
  for (int64_t s = 1; s <= 3; ++s) {
    stats.add("c-server", "up", "activations_up", 100 * s);
    stats.add("c-server", "down", "activations_down", 50);
    gt::StepRecord r;
    r.step = s;
    r.strategy = "online";
    r.loss = 1.0 / double(s);
    r.dcor = 0.25;
    r.seconds = 0.1;
    log.add_step(r, stats);
  }
  log.end_phase(stats, 1.5);
  log.begin_phase(1, "gradfree", stats);
  log.note_strategy("split");
  const auto copy = gt::RunLog::from_state(nlohmann::json::parse(log.state().dump()));
  CHECK(copy.to_json(stats, 2.0) == log.to_json(stats, 2.0));
  CHECK(copy.state() == log.state());
  CHECK_THROWS_AS(gt::RunLog::from_state(nlohmann::json::object()), nlohmann::json::exception);
}
