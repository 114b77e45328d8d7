// ROUGE-L by dynamic programming over words; token accuracy by position.
#include "privacy/attacks/scoring.hpp"

#include <algorithm>
#include <cctype>
#include <numeric>
#include <sstream>

#include "common/error.hpp"

namespace gt {
namespace {

size_t lcs_length(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<size_t> prev(b.size() + 1, 0), cur(b.size() + 1, 0);
  for (const auto& x : a) {
    for (size_t j = 0; j < b.size(); ++j)
      cur[j + 1] = x == b[j] ? prev[j] + 1 : std::max(prev[j + 1], cur[j]);
    std::swap(prev, cur);
  }
  return prev.back();
}

// Decoded token by token so that an id the tokenizer does not know (e.g. a padding row of the
// model's embedding) costs the guess that token instead of failing the whole score.
std::string decode_known(const std::vector<int64_t>& ids, const Tokenizer& tokenizer) {
  std::string out;
  for (int64_t id : ids) {
    try {
      out += tokenizer.decode({id}, true);
    } catch (const Error&) {
    }
  }
  return out;
}

double token_accuracy(const std::vector<int64_t>& guess, const std::vector<int64_t>& truth) {
  const size_t n = std::max(guess.size(), truth.size());
  if (n == 0) return 0;
  size_t hits = 0;
  for (size_t i = 0; i < std::min(guess.size(), truth.size()); ++i) hits += guess[i] == truth[i];
  return double(hits) / double(n);
}

double mean(const std::vector<double>& xs) {
  return xs.empty() ? 0 : std::accumulate(xs.begin(), xs.end(), 0.0) / double(xs.size());
}

void recompute_means(AttackScore& s) {
  s.samples = s.rouge_l_samples.size();
  s.rouge_l = mean(s.rouge_l_samples);
  s.token_accuracy = mean(s.token_accuracy_samples);
}

double percentile(const std::vector<double>& sorted, double q) {
  const double pos = q * double(sorted.size() - 1);
  const auto lo = size_t(pos);
  const auto hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - double(lo)) * (sorted[hi] - sorted[lo]);
}

}  // namespace

std::vector<std::string> lowercase_words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string w; in >> w;) {
    for (auto& c : w) c = char(std::tolower(static_cast<unsigned char>(c)));
    words.push_back(std::move(w));
  }
  return words;
}

Reconstruction true_tokens(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  if (input_ids.dim() != 2 || input_ids.sizes() != attention_mask.sizes())
    throw Error("true_tokens: input_ids and attention_mask must both be (B, T) of one shape");
  const auto ids = input_ids.to(torch::kCPU, torch::kLong).contiguous();
  const auto mask = attention_mask.to(torch::kCPU, torch::kLong).contiguous();
  const auto ia = ids.accessor<int64_t, 2>();
  const auto ma = mask.accessor<int64_t, 2>();
  Reconstruction out(size_t(ids.size(0)));
  for (int64_t b = 0; b < ids.size(0); ++b)
    for (int64_t t = 0; t < ids.size(1); ++t)
      if (ma[b][t] != 0) out[size_t(b)].push_back(ia[b][t]);
  return out;
}

double rouge_l_f1(const std::vector<std::string>& guess, const std::vector<std::string>& truth) {
  if (guess.empty() || truth.empty()) return 0;
  const double lcs = double(lcs_length(guess, truth));
  if (lcs == 0) return 0;
  const double p = lcs / double(guess.size()), r = lcs / double(truth.size());
  return 2 * p * r / (p + r);
}

AttackScore score_reconstruction(const std::string& attack, const Reconstruction& guess,
                                 const Reconstruction& truth, const Tokenizer& tokenizer) {
  if (guess.size() != truth.size())
    throw Error("score_reconstruction (" + attack + "): " + std::to_string(guess.size()) +
                " guessed samples for " + std::to_string(truth.size()) + " true ones");
  AttackScore s;
  s.attack = attack;
  for (size_t i = 0; i < guess.size(); ++i) {
    s.rouge_l_samples.push_back(rouge_l_f1(lowercase_words(decode_known(guess[i], tokenizer)),
                                           lowercase_words(decode_known(truth[i], tokenizer))));
    s.token_accuracy_samples.push_back(token_accuracy(guess[i], truth[i]));
  }
  recompute_means(s);
  return s;
}

void merge_scores(AttackScore& into, const AttackScore& more) {
  if (into.attack.empty()) into.attack = more.attack;
  auto append = [](std::vector<double>& to, const std::vector<double>& from) {
    to.insert(to.end(), from.begin(), from.end());
  };
  append(into.rouge_l_samples, more.rouge_l_samples);
  append(into.token_accuracy_samples, more.token_accuracy_samples);
  recompute_means(into);
}

Distribution distribution(std::vector<double> values) {
  if (values.empty()) return {};
  std::sort(values.begin(), values.end());
  return {mean(values), percentile(values, 0.1), percentile(values, 0.5), percentile(values, 0.9)};
}

}  // namespace gt
