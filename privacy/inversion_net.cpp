// See inversion_net.hpp.
#include "privacy/inversion_net.hpp"

#include <cmath>
#include <string>
#include <vector>

namespace gt {

InversionNetImpl::InversionNetImpl(int64_t channels, int64_t context, int64_t hidden,
                                   int64_t classes)
    : context(context) {
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({channels})));
  fc1 = register_module("fc1", torch::nn::Linear(channels * (2 * context + 1), hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, classes));
}

torch::Tensor InversionNetImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  return fc2(features(x, mask));
}

torch::Tensor InversionNetImpl::features(const torch::Tensor& x, const torch::Tensor& mask) {
  // Unit RMS first: LayerNorm's eps would otherwise dominate tiny rows (g2 ~ 1/tokens).
  const auto rms = x.pow(2).mean(-1, true).sqrt().clamp_min(1e-30);
  auto h = norm(x / rms) * mask.unsqueeze(-1).to(x.dtype());
  if (context > 0) {
    const auto T = h.size(1);
    const auto padded = torch::constant_pad_nd(h, {0, 0, context, context});
    std::vector<torch::Tensor> window;
    for (int64_t d = 0; d <= 2 * context; ++d) window.push_back(padded.slice(1, d, d + T));
    h = torch::cat(window, -1);
  }
  return torch::gelu(fc1(h));
}

void initialise_inversion_net(InversionNetImpl& net, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& p : net.named_parameters()) {
    auto& t = p.value();
    if (p.key().find("norm") != std::string::npos) continue;  // LayerNorm keeps 1 and 0
    if (t.dim() != 2) {
      t.zero_();  // biases
      continue;
    }
    const double bound = 1.0 / std::sqrt(double(t.size(1)));  // PyTorch's default range
    t.copy_(torch::empty(t.sizes(), torch::kFloat).uniform_(-bound, bound, gen));
  }
}

void use_embedding_head(InversionNetImpl& net, const torch::Tensor& embedding,
                        const torch::Tensor& vocabulary) {
  torch::NoGradGuard no_grad;
  net.fc2->weight.copy_(
      embedding.index_select(0, vocabulary.to(embedding.device())).to(torch::kFloat));
  net.fc2->weight.requires_grad_(false);
}

std::vector<torch::Tensor> trainable_parameters(const torch::nn::Module& net) {
  std::vector<torch::Tensor> out;
  for (const auto& p : net.parameters())
    if (p.requires_grad()) out.push_back(p);
  return out;
}

}  // namespace gt
