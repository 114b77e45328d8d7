// LmDataset: tokenize once, pad per batch.
#include "data/lm_dataset.hpp"

#include <algorithm>
#include <numeric>
#include <random>

#include "common/error.hpp"

namespace gt {

LmDataset::LmDataset(const std::vector<std::string>& texts, const Tokenizer& tokenizer,
                     int64_t max_len) {
  if (max_len < 2)
    throw Error("max sequence length must be at least 2, got " + std::to_string(max_len));
  const auto& sp = tokenizer.special();
  pad_id_ = sp.pad >= 0 ? sp.pad : (sp.eos >= 0 ? sp.eos : 0);
  sequences_.reserve(texts.size());
  for (const auto& text : texts) {
    std::vector<int64_t> ids;
    if (sp.bos >= 0) ids.push_back(sp.bos);
    auto body = tokenizer.encode(text);
    ids.insert(ids.end(), body.begin(), body.end());
    if (sp.eos >= 0) ids.push_back(sp.eos);
    if (static_cast<int64_t>(ids.size()) > max_len) ids.resize(max_len);
    sequences_.push_back(std::move(ids));
  }
}

int64_t LmDataset::num_tokens() const {
  int64_t n = 0;
  for (const auto& s : sequences_) n += static_cast<int64_t>(s.size());
  return n;
}

LmBatch LmDataset::batch(const std::vector<size_t>& indices) const {
  size_t T = 0;
  for (auto i : indices) T = std::max(T, sequences_.at(i).size());
  const auto B = static_cast<int64_t>(indices.size());
  auto ids = torch::full({B, static_cast<int64_t>(T)}, pad_id_, torch::kLong);
  auto mask = torch::zeros({B, static_cast<int64_t>(T)}, torch::kLong);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& seq = sequences_[indices[b]];
    for (size_t t = 0; t < seq.size(); ++t) {
      ids_a[b][t] = seq[t];
      mask_a[b][t] = 1;
    }
  }
  return {ids, mask, ids.masked_fill(mask.eq(0), -100)};
}

std::vector<size_t> epoch_order(size_t n, uint64_t seed, int64_t epoch) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  // mt19937_64 + our own Fisher-Yates: std::shuffle's algorithm is unspecified across libraries.
  std::mt19937_64 rng(seed * 1000003ULL + static_cast<uint64_t>(epoch));
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  return order;
}

}  // namespace gt
