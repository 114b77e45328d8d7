// Nearest-embedding search in chunks of rows, so a large batch never builds a (B*T, V) matrix.
#include "privacy/attacks/embedding_inversion.hpp"

#include <algorithm>

#include "common/error.hpp"
#include "privacy/attacks/scoring.hpp"

namespace gt {
namespace {

constexpr int64_t kRowsPerChunk = 1024;

// Embeddings of `ids` (B, T) with every position real, in float32.
torch::Tensor embed_all_real(EmbeddingsImpl& embed, const torch::Tensor& ids) {
  return embed.forward(ids, torch::ones_like(ids)).to(torch::kFloat);
}

}  // namespace

EmbeddingInversion::EmbeddingInversion(const Segments& pretrained, EmbeddingMetric metric)
    : embed_(pretrained.input->embed),
      metric_(metric),
      max_positions_(pretrained.cfg.max_positions) {
  torch::NoGradGuard no_grad;
  const auto V = embed_->token_embedding().size(0);
  const auto ids = torch::arange(V, torch::kLong).view({V, 1});
  candidates_ = embed_all_real(*embed_, ids).squeeze(1);  // (V, C)
  if (metric_ == EmbeddingMetric::cosine)
    candidates_ = torch::nn::functional::normalize(
        candidates_, torch::nn::functional::NormalizeFuncOptions().dim(1));
  else
    candidate_sq_ = candidates_.pow(2).sum(1);
}

bool EmbeddingInversion::applicable(const Intercept& in) const {
  return in.a1.defined() && in.attention_mask.defined();
}

torch::Tensor EmbeddingInversion::position_terms(int64_t length) {
  if (length > max_positions_)
    throw Error("embedding inversion: " + std::to_string(length) +
                " positions, more than the model's " + std::to_string(max_positions_));
  if (!positions_.defined() || positions_.size(0) < length) {
    torch::NoGradGuard no_grad;
    const auto grown = positions_.defined() ? 2 * positions_.size(0) : 64;
    const auto n = std::max(length, std::min(grown, max_positions_));
    const auto rows = embed_all_real(*embed_, torch::zeros({1, n}, torch::kLong)).squeeze(0);
    positions_ = rows - rows[0];  // the token term of id 0 cancels
  }
  return positions_.slice(0, 0, length);
}

torch::Tensor EmbeddingInversion::nearest(const torch::Tensor& rows) const {
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < rows.size(0); i += kRowsPerChunk) {
    auto x = rows.slice(0, i, std::min(i + kRowsPerChunk, rows.size(0)));
    // cosine: argmax of x.c/|c| (|x| does not change the argmax); l2: argmin |x - c|^2 =
    // argmax 2 x.c - |c|^2.
    auto score = metric_ == EmbeddingMetric::cosine
                     ? torch::matmul(x, candidates_.t())
                     : 2 * torch::matmul(x, candidates_.t()) - candidate_sq_;
    out.push_back(score.argmax(1));
  }
  return out.empty() ? torch::empty({0}, torch::kLong) : torch::cat(out);
}

Reconstruction EmbeddingInversion::reconstruct(const Intercept& in) {
  if (!applicable(in)) throw Error("embedding inversion needs a1 and the attention mask");
  if (in.a1.dim() != 3 || in.a1.sizes().slice(0, 2) != in.attention_mask.sizes() ||
      in.a1.size(2) != candidates_.size(1))
    throw Error("embedding inversion: a1 must be (B, T, " + std::to_string(candidates_.size(1)) +
                ") matching the (B, T) attention mask");
  torch::NoGradGuard no_grad;
  const auto mask = in.attention_mask.to(torch::kCPU, torch::kLong);
  const auto real = mask.ne(0);
  // Positions count real tokens only, as OPT's embeddings do (left padding does not shift them).
  const auto pos = (torch::cumsum(mask, 1) - 1).clamp_min(0).masked_select(real);
  const auto dev = candidates_.device();
  const auto rows = in.a1.to(dev, torch::kFloat).index({real.to(dev)});  // (N, C)
  const auto T = in.a1.size(1);
  const auto ids = nearest(rows - position_terms(T).index_select(0, pos.to(dev))).to(torch::kCPU);
  // Back to one list per sample, in order.
  return true_tokens(torch::zeros_like(mask).masked_scatter(real, ids), mask);
}

}  // namespace gt
