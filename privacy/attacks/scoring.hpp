// Scoring a data-reconstruction attack against the truth: ROUGE-L F1 over words of the
// decoded texts and token accuracy over ids, per sample and as means and distributions.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "models/tokenizer.hpp"
#include "privacy/attacks/attack.hpp"

namespace gt {

// The true token ids at real positions of each row (what a reconstruction is scored against).
// input_ids and attention_mask: (B, T); throws gt::Error when the shapes differ.
Reconstruction true_tokens(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);

// ROUGE-L F1 (longest common subsequence; P = LCS/|guess|, R = LCS/|truth|, F1 = 2PR/(P+R);
// 0 when either is empty).
double rouge_l_f1(const std::vector<std::string>& guess, const std::vector<std::string>& truth);
// The lowercased whitespace-separated words ROUGE-L compares.
std::vector<std::string> lowercase_words(const std::string& text);

struct AttackScore {
  std::string attack;
  size_t samples = 0;
  double rouge_l = 0, token_accuracy = 0;                       // means over samples
  std::vector<double> rouge_l_samples, token_accuracy_samples;  // per sample, for distributions
};

// ROUGE-L F1 over lowercased whitespace-separated words of the decoded texts (tokenizer.decode,
// special tokens skipped; a guessed id the tokenizer does not know decodes to nothing); token
// accuracy = share of positions whose guessed id equals the true id (positions beyond the
// shorter sequence count as wrong; 0 when both are empty). Sizes must match (gt::Error
// otherwise).
AttackScore score_reconstruction(const std::string& attack, const Reconstruction& guess,
                                 const Reconstruction& truth, const Tokenizer& tokenizer);

// Appends `more`'s samples and recomputes the means (into.attack is kept unless empty).
void merge_scores(AttackScore& into, const AttackScore& more);

// Mean and the 10th/50th/90th percentiles of a distribution, for reports (linear
// interpolation between order statistics, as numpy's default; all 0 when empty).
struct Distribution {
  double mean = 0, p10 = 0, p50 = 0, p90 = 0;
};
Distribution distribution(std::vector<double> values);

}  // namespace gt
