// See wire_quantization.hpp.
#include "strategies/wire_quantization.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include "common/error.hpp"

namespace gt {

WireQuantization::WireQuantization(std::unique_ptr<ClientStrategy> inner, WireSchemes schemes)
    : StrategyWrapper(std::move(inner)), schemes_(schemes) {}

SessionTerms WireQuantization::terms() const {
  auto t = StrategyWrapper::terms();
  t.a2 = schemes_.a2;
  t.g1 = t.backward ? schemes_.g1 : QuantScheme::none;
  return t;
}

ClientAction WireQuantization::up(ClientAction action) {
  if (auto* a = std::get_if<ActivationsUp>(&action)) {
    a->scheme = schemes_.a1;
    a1_error_ = a->scheme == QuantScheme::none
                    ? 0
                    : (dequantize(quantize(a->a1, a->scheme)) - a->a1.to(torch::kFloat))
                          .abs()
                          .max()
                          .item<double>();
  } else if (auto* g = std::get_if<GradientsUp>(&action)) {
    g->scheme = schemes_.g2;
  } else if (auto* done = std::get_if<StepOutcome>(&action)) {
    done->a1_quant_error = a1_error_;
    a1_error_ = 0;
  }
  return action;
}

ActivationsUp WireQuantization::up_eval(ActivationsUp a) {
  a.scheme = schemes_.a1;
  return a;
}

GaussianNoise::GaussianNoise(std::unique_ptr<ClientStrategy> inner, double std, uint64_t seed)
    : StrategyWrapper(std::move(inner)),
      std_(std),
      generator_(at::make_generator<at::CPUGeneratorImpl>(seed)) {}

ClientAction GaussianNoise::up(ClientAction action) {
  if (auto* a = std::get_if<ActivationsUp>(&action); a && std_ > 0)
    // Drawn on the CPU generator whatever the device, so the noise (and a checkpoint's
    // generator state) is the same on every device.
    a->a1 = a->a1 + torch::randn(a->a1.sizes(), generator_, a->a1.options().device(torch::kCPU))
                            .to(a->a1.device()) *
                        std_;
  return action;
}

std::vector<torch::Tensor> GaussianNoise::random_state() const {
  auto state = StrategyWrapper::random_state();
  state.push_back(generator_.get_state());
  return state;
}

void GaussianNoise::set_random_state(std::vector<torch::Tensor> state) {
  if (state.empty()) throw Error("gaussian noise: no generator state to restore");
  generator_.set_state(state.back());
  state.pop_back();
  StrategyWrapper::set_random_state(std::move(state));
}

GradientNoise::GradientNoise(std::unique_ptr<ClientStrategy> inner, double relative_std,
                             uint64_t seed)
    : StrategyWrapper(std::move(inner)),
      relative_std_(relative_std),
      generator_(at::make_generator<at::CPUGeneratorImpl>(seed)) {}

ClientAction GradientNoise::up(ClientAction action) {
  if (auto* g = std::get_if<GradientsUp>(&action); g && relative_std_ > 0) {
    const auto rms = g->g2.to(torch::kFloat).pow(2).mean(-1, true).sqrt();
    const auto noise = torch::randn(g->g2.sizes(), generator_,
                                    g->g2.options().device(torch::kCPU).dtype(torch::kFloat))
                           .to(g->g2.device());
    g->g2 = (g->g2.to(torch::kFloat) + noise * rms * relative_std_).to(g->g2.scalar_type());
  }
  return action;
}

std::vector<torch::Tensor> GradientNoise::random_state() const {
  auto state = StrategyWrapper::random_state();
  state.push_back(generator_.get_state());
  return state;
}

void GradientNoise::set_random_state(std::vector<torch::Tensor> state) {
  if (state.empty()) throw Error("gradient noise: no generator state to restore");
  generator_.set_state(state.back());
  state.pop_back();
  StrategyWrapper::set_random_state(std::move(state));
}

}  // namespace gt
