// See lm_loss.hpp. Shapes: N labelled rows, E head input width, V vocabulary.
#include "models/lm_loss.hpp"

#include <algorithm>

#include "common/error.hpp"

namespace gt {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void check_targets(const torch::Tensor& h, const torch::Tensor& weight,
                   const torch::Tensor& targets) {
  if (h.dim() != 2 || weight.dim() != 2 || h.size(1) != weight.size(1) || targets.dim() != 1 ||
      targets.size(0) != h.size(0))
    throw Error("linear cross-entropy: shapes h " + std::string(c10::str(h.sizes())) + ", weight " +
                std::string(c10::str(weight.sizes())) + ", targets " +
                std::string(c10::str(targets.sizes())) + " do not fit (N, E), (V, E), (N)");
  if (targets.numel() == 0) return;
  const auto lo = targets.min().item<int64_t>(), hi = targets.max().item<int64_t>();
  if (lo < 0 || hi >= weight.size(0))
    throw Error("linear cross-entropy: target ids span [" + std::to_string(lo) + ", " +
                std::to_string(hi) + "], outside the vocabulary of " +
                std::to_string(weight.size(0)));
}

// The softmax's gradient is made in the forward, one chunk of logits at a time, and kept for
// the backward: what autograd would keep is every chunk's (rows, V) softmax.
struct LinearCrossEntropy : torch::autograd::Function<LinearCrossEntropy> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& h,
                               const torch::Tensor& weight, const torch::Tensor& targets,
                               int64_t chunk_rows) {
    const bool grad_h = h.requires_grad(), grad_w = weight.requires_grad();
    const auto hf = h.to(torch::kFloat), wf = weight.to(torch::kFloat);
    const auto N = hf.size(0);
    auto total = torch::zeros({}, hf.options());
    auto dh = grad_h ? torch::empty_like(hf) : torch::Tensor();
    auto dw = grad_w ? torch::zeros_like(wf) : torch::Tensor();
    for (int64_t start = 0; start < N; start += chunk_rows) {
      const auto end = std::min(N, start + chunk_rows);
      const auto hc = hf.slice(0, start, end);
      const auto yc = targets.slice(0, start, end).unsqueeze(1);  // (n, 1)
      auto z = torch::mm(hc, wf.t());                             // (n, V)
      const auto lse = z.logsumexp(1, true);                      // (n, 1)
      total += (lse - z.gather(1, yc)).sum();
      if (!grad_h && !grad_w) continue;
      z.sub_(lse).exp_();                                                  // softmax, in place
      z.scatter_add_(1, yc, torch::full(yc.sizes(), -1.0f, z.options()));  // - one-hot
      if (grad_h) dh.slice(0, start, end).copy_(torch::mm(z, wf));
      if (grad_w) dw.addmm_(z.t(), hc);
    }
    if (ctx)
      ctx->save_for_backward(
          {grad_h ? dh.to(h.scalar_type()) : dh, grad_w ? dw.to(weight.scalar_type()) : dw});
    return total;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const auto& g = grad_out[0];
    auto scaled = [&](const torch::Tensor& d) { return d.defined() ? d * g : torch::Tensor(); };
    return {scaled(saved[0]), scaled(saved[1]), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

LabelledRows labelled_rows(const torch::Tensor& hidden, const torch::Tensor& labels) {
  if (hidden.dim() != 3 || labels.dim() != 2 || hidden.size(0) != labels.size(0) ||
      hidden.size(1) != labels.size(1))
    throw Error("labelled rows: hidden states " + std::string(c10::str(hidden.sizes())) +
                " and labels " + std::string(c10::str(labels.sizes())) +
                " do not fit (B, T, C) and (B, T)");
  const auto next = labels.slice(1, 1).to(hidden.device());  // (B, T-1): the label t predicts
  const auto keep = next.ne(-100);
  return {hidden.slice(1, 0, -1).index({keep}), next.index({keep})};
}

int64_t default_chunk_rows(int64_t vocab) {
  return std::max<int64_t>(1, (int64_t(16) << 20) / std::max<int64_t>(vocab, 1));
}

torch::Tensor linear_cross_entropy_sum(const torch::Tensor& h, const torch::Tensor& weight,
                                       const torch::Tensor& targets, int64_t chunk_rows) {
  check_targets(h, weight, targets);
  if (chunk_rows <= 0) chunk_rows = default_chunk_rows(weight.size(0));
  if (!torch::GradMode::is_enabled()) {
    torch::NoGradGuard no_grad;  // the inputs may require grad: make none in the forward
    return LinearCrossEntropy::forward(nullptr, h.detach(), weight.detach(), targets, chunk_rows);
  }
  return LinearCrossEntropy::apply(h, weight, targets, chunk_rows);
}

torch::Tensor linear_target_log_probs(const torch::Tensor& h, const torch::Tensor& weight,
                                      const torch::Tensor& targets, int64_t chunk_rows) {
  check_targets(h, weight, targets);
  if (chunk_rows <= 0) chunk_rows = default_chunk_rows(weight.size(0));
  torch::NoGradGuard no_grad;
  const auto wf = weight.to(torch::kFloat);
  const auto N = h.size(0);
  auto out = torch::empty({N}, wf.options());
  for (int64_t start = 0; start < N; start += chunk_rows) {
    const auto end = std::min(N, start + chunk_rows);
    const auto z = torch::mm(h.slice(0, start, end).to(torch::kFloat), wf.t());  // (n, V)
    const auto yc = targets.slice(0, start, end).unsqueeze(1);
    out.slice(0, start, end).copy_((z.gather(1, yc) - z.logsumexp(1, true)).squeeze(1));
  }
  return out;
}

}  // namespace gt
