// See generation.hpp.
#include "models/generation.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <limits>

#include "common/error.hpp"
#include "models/kv_cache.hpp"

namespace gt {

torch::Tensor next_tokens(const torch::Tensor& logits, const SamplingOptions& o,
                          at::Generator& generator) {
  auto l = logits.to(torch::kFloat);
  if (o.temperature <= 0) return l.argmax(-1);
  l = l / o.temperature;
  const auto inf = -std::numeric_limits<float>::infinity();
  if (o.top_k > 0 && o.top_k < l.size(-1)) {
    auto kth = std::get<0>(l.topk(o.top_k, -1)).narrow(-1, o.top_k - 1, 1);  // (B, 1)
    l = l.masked_fill(l < kth, inf);
  }
  if (o.top_p < 1) {
    auto [sorted, order] = l.sort(-1, /*descending=*/true);
    auto probs = torch::softmax(sorted, -1);
    // Drop a token when the ones before it already reach top_p (the first is always kept).
    auto drop = (probs.cumsum(-1) - probs) >= o.top_p;
    l = torch::full_like(l, inf).scatter(-1, order, sorted.masked_fill(drop, inf));
  }
  auto probs = torch::softmax(l, -1);
  return torch::multinomial(probs.cpu(), 1, false, generator).squeeze(-1).to(logits.device());
}

Generation generate(Segments& seg, const BackboneStep& backbone, const torch::Tensor& prompt_ids,
                    const torch::Tensor& prompt_mask, const SamplingOptions& o,
                    const TokenCallback& on_token) {
  if (prompt_ids.dim() != 2 || prompt_mask.sizes() != prompt_ids.sizes())
    throw Error("generate: prompt ids and mask must be (B, T) of the same shape");
  if (o.max_tokens < 1) throw Error("generate: max_tokens must be at least 1");
  if (prompt_mask.sum(1).min().item<int64_t>() < 1)
    throw Error("generate: every prompt needs at least one real token");
  torch::NoGradGuard no_grad;
  const auto device = seg.device();
  const auto B = prompt_ids.size(0);
  auto generator = at::detail::createCPUGenerator(o.seed);
  KvCache cache;  // the client's: its input and output adapters' blocks
  Generation out;
  out.tokens.resize(size_t(B));
  out.finish.assign(size_t(B), "length");
  std::vector<bool> done(size_t(B), false);

  auto ids = prompt_ids.to(device), mask = prompt_mask.to(device, torch::kLong);
  // The prompt's last real column per row (right padding ends earlier), then column 0.
  auto last = (mask * torch::arange(mask.size(1), mask.options())).argmax(1);
  for (int64_t step = 0; step < o.max_tokens; ++step) {
    auto ctx = step_context(seg.cfg, cache, mask, seg.dtype);
    auto a1 = seg.input->forward(ids, cache.attention_mask, ctx);
    auto a2 = backbone(a1, mask);
    auto h = seg.output->hidden(a2, ctx);                           // (B, T, C)
    auto rows = h.index({torch::arange(B, last.options()), last});  // (B, C)
    auto next = next_tokens(seg.output->head->forward(rows), o, generator).cpu();
    for (int64_t b = 0; b < B; ++b) {
      if (done[size_t(b)]) continue;
      const auto t = next[b].item<int64_t>();
      if (std::find(o.stop_tokens.begin(), o.stop_tokens.end(), t) != o.stop_tokens.end()) {
        done[size_t(b)] = true;
        out.finish[size_t(b)] = "stop";
        continue;
      }
      out.tokens[size_t(b)].push_back(t);
      if (on_token && !on_token(b, t)) {
        done[size_t(b)] = true;
        out.finish[size_t(b)] = "stop";
      }
    }
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
    // The next step feeds each row its new token; a finished row feeds padding.
    auto live = torch::tensor(std::vector<int64_t>(done.begin(), done.end())).eq(0);
    ids = next.masked_fill(live.logical_not(), 0).view({B, 1}).to(device);
    mask = live.to(torch::kLong).view({B, 1}).to(device);
    last = torch::zeros({B}, torch::kLong).to(device);
  }
  return out;
}

Generation generate(Segments& seg, const torch::Tensor& prompt_ids,
                    const torch::Tensor& prompt_mask, const SamplingOptions& o,
                    const TokenCallback& on_token) {
  KvCache backbone_cache;  // the server's, here in the same process
  const BackboneStep backbone = [&](const torch::Tensor& a1, const torch::Tensor& new_mask) {
    auto ctx = step_context(seg.cfg, backbone_cache, new_mask, seg.dtype);
    return seg.backbone->forward(a1, ctx);
  };
  return generate(seg, backbone, prompt_ids, prompt_mask, o, on_token);
}

}  // namespace gt
