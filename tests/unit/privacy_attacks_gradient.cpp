// Gradient matching (BiSR-style) on what a split server intercepts, and membership inference
// on adapters an offline client returns, both on the embedded model and WordNet text.
#include <chrono>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "data/default_task.hpp"
#include "data/instructions.hpp"
#include "data/lm_dataset.hpp"
#include "data/wordnet.hpp"
#include "models/lora.hpp"
#include "models/tokenizer.hpp"
#include "privacy/attacks/gradient_matching.hpp"
#include "privacy/attacks/membership.hpp"
#include "privacy/attacks/scoring.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/test_paths.hpp"

namespace {

struct Loaded {
  gt::DecoderLM model{nullptr};
  gt::Segments seg;
};

// A frozen copy of the embedded model cut at (n_in, n_out) = (1, 1).
Loaded load_frozen() {
  Loaded l;
  l.model = gt::load_decoder(gt::test::model_dir());
  gt::set_trainable(*l.model, gt::TrainMode::frozen);
  l.seg = gt::split_model(l.model, {1, 1});
  return l;
}

// What the server sees in one split step of `client`: a1, its own a2, and g2 = dLoss/da2.
gt::Intercept intercept(gt::Segments& client, const gt::LmBatch& b) {
  auto ctx = gt::make_attention_context(client.cfg, b.attention_mask, client.dtype);
  gt::Intercept in;
  in.attention_mask = b.attention_mask;
  in.a1 = client.input->forward(b.input_ids, b.attention_mask, ctx).detach();
  {
    torch::NoGradGuard no_grad;
    in.a2 = client.backbone->forward(in.a1, ctx);
  }
  auto a2 = in.a2.clone().requires_grad_(true);
  auto loss = gt::causal_lm_loss(client.output->forward(a2, ctx), b.labels);
  in.g2 = torch::autograd::grad({loss}, {a2})[0];
  return in;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs the attack and scores it against the batch's true tokens.
gt::AttackScore attack_and_score(gt::GradientMatching& attack, const std::string& label,
                                 const gt::Intercept& in, const gt::LmBatch& b,
                                 const gt::Tokenizer& tokenizer) {
  const auto t0 = std::chrono::steady_clock::now();
  auto guess = attack.reconstruct(in);
  auto score = gt::score_reconstruction(label, guess,
                                        gt::true_tokens(b.input_ids, b.attention_mask), tokenizer);
  MESSAGE(label << ": ROUGE-L " << score.rouge_l << ", token accuracy " << score.token_accuracy
                << " (" << seconds_since(t0) << " s)");
  return score;
}

}  // namespace

TEST_CASE("gradient matching: recovers WordNet text from a1 and g2 at n_in = 1 (no drift)") {
  auto tokenizer = gt::Tokenizer::from_dir(gt::test::model_dir());
  const auto texts = gt::wordnet_definitions(gt::kDefaultWordnetDir, 0.1, 1, 8).valid;
  gt::LmDataset data(texts, tokenizer, 24);
  const auto batch = data.batch({0, 1, 2, 3, 4, 5, 6, 7});
  auto client = load_frozen();  // the client tunes nothing yet: its adapters are pretrained
  const auto in = intercept(client.seg, batch);
  auto attacker = load_frozen();

  gt::GradientMatchingOptions opt;  // the defaults: 100 Adam steps
  gt::GradientMatching both(attacker.seg, opt);
  REQUIRE(both.applicable(in));
  auto combined = attack_and_score(both, "forward + backward", in, batch, tokenizer);

  opt.forward_weight = 0;
  gt::GradientMatching backward_only(attacker.seg, opt);
  REQUIRE(backward_only.applicable(in));
  CHECK(both.name() == "gradient_matching");
  CHECK(backward_only.name() == "gradient_matching_g2");  // attacker.attacks names it so
  auto backward = attack_and_score(backward_only, "backward only", in, batch, tokenizer);

  opt.forward_weight = 1;
  opt.backward_weight = 0;
  gt::GradientMatching forward_only(attacker.seg, opt);
  CHECK(forward_only.name() == "gradient_matching_a1");
  auto forward = attack_and_score(forward_only, "forward only", in, batch, tokenizer);

  opt.steps = 0;  // the start itself: the mean embedding's nearest token, i.e. chance level
  gt::GradientMatching start(attacker.seg, opt);
  auto chance = attack_and_score(start, "no optimisation", in, batch, tokenizer);

  CHECK(combined.token_accuracy > 0.9);
  CHECK(combined.rouge_l > 0.8);
  CHECK(backward.token_accuracy > 0.7);  // the first token carries no label: at most 95% here
  CHECK(forward.token_accuracy > 0.7);
  CHECK(chance.token_accuracy < 0.1);
}

TEST_CASE("gradient matching: starts from another attack's guess") {
  auto tokenizer = gt::Tokenizer::from_dir(gt::test::model_dir());
  gt::LmDataset data({"dog (noun): a domesticated canid", "run (verb): move fast"}, tokenizer, 16);
  const auto batch = data.batch({0, 1});  // the second row is right-padded
  auto client = load_frozen();
  const auto in = intercept(client.seg, batch);
  auto attacker = load_frozen();
  gt::GradientMatchingOptions opt;
  opt.steps = 0;
  gt::GradientMatching attack(attacker.seg, opt);
  const auto truth = gt::true_tokens(batch.input_ids, batch.attention_mask);
  CHECK(attack.reconstruct_from(in, truth) == truth);  // each start row is its token's embedding
  auto short_guess = truth;
  short_guess[1].pop_back();
  CHECK_THROWS_AS(attack.reconstruct_from(in, short_guess), gt::Error);
  CHECK_THROWS_AS(attack.reconstruct_from(in, {truth[0]}), gt::Error);
}

TEST_CASE("gradient matching: not applicable without g2") {
  auto attacker = load_frozen();
  gt::GradientMatching attack(attacker.seg);
  gt::Intercept in;
  in.attention_mask = torch::ones({1, 4}, torch::kLong);
  in.a1 = torch::zeros({1, 4, attacker.seg.cfg.hidden_size});
  in.a2 = in.a1.clone();
  CHECK_FALSE(attack.applicable(in));
  in.g2 = in.a1.clone();
  CHECK(attack.applicable(in));
  in.a1 = torch::Tensor();
  CHECK_FALSE(attack.applicable(in));  // both terms are on by default
}

TEST_CASE("membership: AUC and advantage by rank, ties half") {
  CHECK(gt::roc_auc({3, 4}, {1, 2}) == doctest::Approx(1.0));
  CHECK(gt::roc_auc({1, 2}, {3, 4}) == doctest::Approx(0.0));
  CHECK(gt::roc_auc({1, 1}, {1, 1}) == doctest::Approx(0.5));
  CHECK(gt::roc_auc({2, 0}, {1}) == doctest::Approx(0.5));
  CHECK(gt::roc_auc({2, 1}, {1, 0}) == doctest::Approx(0.875));  // 3 wins + 1 tie of 4
  CHECK(gt::max_advantage({3, 4}, {1, 2}) == doctest::Approx(1.0));
  CHECK(gt::max_advantage({1, 1}, {1, 1}) == doctest::Approx(0.0));
  CHECK(gt::max_advantage({3, 1}, {2, 0}) == doctest::Approx(0.5));
}

TEST_CASE("membership: the loss difference singles out the texts an adapter was tuned on") {
  const auto t0 = std::chrono::steady_clock::now();
  auto tokenizer = gt::Tokenizer::from_dir(gt::test::model_dir());
  const auto split = gt::wordnet_instructions(gt::kDefaultWordnetDir, 0.1, 32, 32);
  gt::InstructionDataset members(split.train, tokenizer, 32);
  gt::InstructionDataset non_members(split.valid, tokenizer, 32);
  auto pretrained = load_frozen();

  SUBCASE("identical models: chance") {
    auto r = gt::membership_inference(pretrained.seg, pretrained.seg, members, non_members);
    CHECK(r.members == members.size());
    CHECK(r.non_members == non_members.size());
    CHECK(r.auc == doctest::Approx(0.5));
    CHECK(r.advantage == doctest::Approx(0.0));
  }

  SUBCASE("output adapter tuned for several epochs on the members") {
    auto tuned = load_frozen();
    gt::set_trainable(*tuned.seg.output, gt::TrainMode::full);
    torch::optim::AdamW adam(gt::unique_parameters({tuned.seg.output.get()}),
                             torch::optim::AdamWOptions(1e-3));
    for (int64_t epoch = 0; epoch < 6; ++epoch)
      for (size_t start = 0; start < members.size(); start += 8) {
        std::vector<size_t> idx;
        for (size_t i = start; i < std::min(members.size(), start + 8); ++i) idx.push_back(i);
        auto b = members.batch(idx);
        auto ctx = gt::make_attention_context(tuned.seg.cfg, b.attention_mask, tuned.seg.dtype);
        auto a1 = tuned.seg.input->forward(b.input_ids, b.attention_mask, ctx);
        auto logits = tuned.seg.output->forward(tuned.seg.backbone->forward(a1, ctx), ctx);
        adam.zero_grad();
        gt::causal_lm_loss(logits, b.labels).backward();
        adam.step();
      }
    auto r = gt::membership_inference(pretrained.seg, tuned.seg, members, non_members);
    MESSAGE("membership AUC " << r.auc << ", advantage " << r.advantage << " (" << r.members
                              << " members, " << r.non_members << " non-members, "
                              << seconds_since(t0) << " s)");
    CHECK(r.auc > 0.7);
    CHECK(r.advantage > 0.3);
  }
}
