// The privatize phase: nothing leaves the client (no message, local evaluation), and its effect
// on what an attacker learns from the pretrained adapter: an inverter fitted through the
// pretrained input adapter reads the client's tokens before privatization and not after.
#include <set>

#include "common/error.hpp"
#include "data/default_task.hpp"
#include "data/instructions.hpp"
#include "data/lm_dataset.hpp"
#include "models/emulator.hpp"
#include "models/lora.hpp"
#include "models/tokenizer.hpp"
#include "privacy/attacks/learned_inversion.hpp"
#include "privacy/attacks/scoring.hpp"
#include "strategies/privatize_client.hpp"
#include "strategies/strategy_factory.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/test_paths.hpp"

namespace {

std::shared_ptr<gt::ClientModel> client_model(gt::DecoderLM& model, double adversary_weight) {
  model = gt::load_decoder(gt::test::model_dir());
  auto seg = gt::split_model(model, {1, 1});
  gt::set_trainable(*model, gt::TrainMode::frozen);
  gt::set_trainable(*seg.input, gt::TrainMode::full);
  gt::set_trainable(*seg.output, gt::TrainMode::full);
  auto m = std::make_shared<gt::ClientModel>();
  m->seg = seg;
  m->grad_clip = 1.0;
  m->optimizer = std::make_shared<torch::optim::AdamW>(
      gt::unique_parameters({seg.input.get(), seg.output.get()}), torch::optim::AdamWOptions(3e-4));
  gt::PrivacyOptions o;
  o.adversary_weight = adversary_weight;
  o.adversary.fit_steps = 20;
  o.adversary.seed = 7;
  m->privacy = std::make_shared<gt::PrivacyObjective>(seg.input->embed->token_embedding(),
                                                      seg.cfg.hidden_size, o);
  return m;
}

// Token accuracy of `attack` on what a server would receive from `seg` for `batch`.
double inverted(gt::LearnedInversion& attack, const gt::Segments& seg, const gt::LmBatch& batch) {
  const auto in = gt::simulate_intercept(seg, batch, gt::Tap::a1);
  const auto guess = attack.reconstruct(in);
  const auto truth = gt::true_tokens(batch.input_ids, batch.attention_mask);
  size_t right = 0, all = 0;
  for (size_t i = 0; i < truth.size(); ++i)
    for (size_t t = 0; t < truth[i].size(); ++t, ++all) right += guess[i][t] == truth[i][t];
  return double(right) / double(all);
}

}  // namespace

TEST_CASE("privatize: steps and evaluation stay on the client, against an emulator") {
  gt::DecoderLM model{nullptr};
  auto m = client_model(model, 1.0);
  auto emulator = gt::build_emulator(m->seg, {});
  auto s = gt::make_client_strategy("privatize", m, {}, emulator);
  CHECK(s->name() == "privatize");
  CHECK_FALSE(s->terms().backward);
  CHECK(s->evaluates_locally());
  const auto tok = gt::Tokenizer::from_dir(gt::test::model_dir());
  const auto texts = gt::wordnet_definitions("/usr/share/wordnet", 0.05, 64, 0).train;
  gt::LmDataset data(texts, tok, 32);
  const auto batch = data.batch({0, 1, 2, 3});
  // A step is a finished outcome at once: no activation, nothing to send.
  const auto out = std::get<gt::StepOutcome>(s->begin_step({batch, {}}));
  CHECK(std::isfinite(out.loss));
  CHECK(out.inverter_accuracy >= 0);
  const auto [sum, tokens] = s->local_eval_loss(batch);
  CHECK(tokens == gt::predicted_tokens(batch));
  CHECK(std::isfinite(sum));
  // Without an emulator, or without a privacy weight, there is nothing to privatize against.
  CHECK_THROWS_WITH_AS(gt::make_client_strategy("privatize", m, {}), doctest::Contains("emulator"),
                       gt::Error);
  gt::DecoderLM other{nullptr};
  CHECK_THROWS_WITH_AS(gt::PrivatizeClient(client_model(other, 0.0), emulator),
                       doctest::Contains("no weight"), gt::Error);
}

TEST_CASE("privatize: an inverter fitted on the pretrained adapter no longer reads a1") {
  gt::DecoderLM model{nullptr};
  auto m = client_model(model, 1.0);
  const auto tok = gt::Tokenizer::from_dir(gt::test::model_dir());
  // Public text for the attacker and private text for the client: disjoint WordNet glosses.
  const auto glosses = gt::wordnet_definitions("/usr/share/wordnet", 0.05, 1200, 0).train;
  const std::vector<std::string> public_text(glosses.begin(), glosses.begin() + 600),
      private_text(glosses.begin() + 600, glosses.end());
  gt::LmDataset attacker_data(public_text, tok, 32), client_data(private_text, tok, 32);
  gt::DecoderLM pretrained_model = gt::load_decoder(gt::test::model_dir());
  gt::set_trainable(*pretrained_model, gt::TrainMode::frozen);
  const auto pretrained = gt::split_model(pretrained_model, {1, 1});
  gt::LearnedInversionOptions o;
  o.steps = 150;
  gt::LearnedInversion attack(o);
  attack.fit(pretrained, attacker_data);
  const auto probe = client_data.batch({0, 1, 2, 3, 4, 5, 6, 7});
  const double before = inverted(attack, m->seg, probe);

  gt::PrivatizeClient privatize(m, gt::build_emulator(m->seg, {}));
  for (size_t step = 0; step < 60; ++step) {
    std::vector<size_t> rows;
    for (size_t i = 0; i < 8; ++i) rows.push_back((8 + step * 8 + i) % client_data.size());
    privatize.begin_step({client_data.batch(rows), {}});
  }
  const double after = inverted(attack, m->seg, probe);
  INFO("token accuracy of the pretrained-adapter inverter: " << before << " before, " << after
                                                             << " after privatizing");
  CHECK(before > 0.8);
  CHECK(after < 0.3);
}

TEST_CASE(
    "privatize: with privatize_output = false only the input adapter (and a tied head) moves") {
  gt::DecoderLM model{nullptr};
  auto m = client_model(model, 1.0);
  const auto tok = gt::Tokenizer::from_dir(gt::test::model_dir());
  const auto texts = gt::wordnet_definitions("/usr/share/wordnet", 0.05, 64, 0).train;
  gt::LmDataset data(texts, tok, 32);
  const auto snapshot = [](const torch::nn::Module& module) {
    std::vector<torch::Tensor> out;
    for (const auto& p : module.parameters()) out.push_back(p.detach().clone());
    return out;
  };
  const auto input_before = snapshot(*m->seg.input), output_before = snapshot(*m->seg.output);
  gt::PrivatizeClient privatize(m, gt::build_emulator(m->seg, {}), /*train_output=*/false);
  for (size_t step = 0; step < 3; ++step)
    privatize.begin_step({data.batch({4 * step, 4 * step + 1, 4 * step + 2, 4 * step + 3}), {}});
  std::set<const void*> input_params;
  for (const auto& p : m->seg.input->parameters()) input_params.insert(p.unsafeGetTensorImpl());
  const auto input_after = m->seg.input->parameters(), output_after = m->seg.output->parameters();
  bool input_moved = false;
  for (size_t i = 0; i < input_after.size(); ++i)
    input_moved |= !torch::equal(input_after[i], input_before[i]);
  CHECK(input_moved);
  size_t own = 0;
  for (size_t i = 0; i < output_after.size(); ++i) {
    if (input_params.count(output_after[i].unsafeGetTensorImpl())) continue;  // the tied head
    ++own;
    CHECK(torch::equal(output_after[i], output_before[i]));
  }
  CHECK(own > 0);
}
