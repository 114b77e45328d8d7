// See emulator_distillation.hpp.
#include "strategies/emulator_distillation.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace gt {
namespace {

std::string distill_number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", x);
  return buf;
}

// ---- batches ----

torch::Device device_of(const torch::nn::Module& m) {
  const auto params = m.parameters();
  return params.empty() ? torch::Device(torch::kCPU) : params.front().device();
}

// Endless shuffled passes over 0..n-1 (own Fisher-Yates: std::shuffle varies by library).
class SampleStream {
 public:
  SampleStream(size_t n, uint64_t seed) : order_(n), rng_(seed), next_(n) {
    for (size_t i = 0; i < n; ++i) order_[i] = i;
  }
  std::vector<size_t> take(size_t k) {
    std::vector<size_t> out;
    while (out.size() < k) {
      if (next_ == order_.size()) reshuffle();
      out.push_back(order_[next_++]);
    }
    return out;
  }

 private:
  void reshuffle() {
    for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[rng_() % i]);
    next_ = 0;
  }
  std::vector<size_t> order_;
  std::mt19937_64 rng_;
  size_t next_;  // == size: shuffle before the next sample
};

std::vector<size_t> index_range(size_t begin, size_t end) {
  std::vector<size_t> out;
  for (size_t i = begin; i < end; ++i) out.push_back(i);
  return out;
}

// What the client's frozen input adapter sends for one batch.
struct InputActivations {
  torch::Tensor a1, mask;  // (B, T, C), (B, T) on the model's device
  AttentionContext ctx;
};

InputActivations input_activations(const Segments& seg, const LmBatch& b) {
  const auto dev = device_of(*seg.input);
  InputActivations out;
  out.mask = b.attention_mask.to(dev);
  out.ctx = make_attention_context(seg.cfg, out.mask, seg.dtype);
  out.a1 = seg.input.ptr()->forward(b.input_ids.to(dev), out.mask, out.ctx);
  return out;
}

// Sum of squared errors over real tokens, and how many values it covers.
std::pair<torch::Tensor, double> masked_squared_error(const torch::Tensor& pred,
                                                      const torch::Tensor& target,
                                                      const torch::Tensor& mask) {
  auto m = mask.to(torch::kFloat).unsqueeze(-1);  // (B, T, 1)
  auto se = ((pred.to(torch::kFloat) - target.to(torch::kFloat)).pow(2) * m).sum();
  return {se, m.sum().item<double>() * double(pred.size(-1))};
}

void check_batch_size(int64_t batch) {
  if (batch < 1) throw Error("batch size must be at least 1, got " + std::to_string(batch));
}

void check_distill(const DistillOptions& o, const BatchSource& data) {
  if (o.steps < 1)
    throw Error("distillation needs at least 1 step, got " + std::to_string(o.steps));
  check_batch_size(o.batch);
  if (!(o.lr > 0))
    throw Error("distillation learning rate must be > 0, got " + distill_number(o.lr));
  if (data.size() == 0) throw Error("distillation data is empty");
}

}  // namespace

double emulator_mse(const Backbone& emulator, const Segments& full, const BatchSource& data,
                    int64_t batch) {
  check_batch_size(batch);
  torch::NoGradGuard no_grad;
  double se = 0, count = 0;
  for (size_t start = 0; start < data.size(); start += size_t(batch)) {
    auto act = input_activations(
        full, data.batch(index_range(start, std::min(data.size(), start + size_t(batch)))));
    auto a2 = full.backbone.ptr()->forward(act.a1, act.ctx);
    auto [sum, n] = masked_squared_error(emulator.ptr()->forward(act.a1, act.ctx), a2, act.mask);
    se += sum.item<double>();
    count += n;
  }
  if (count == 0) throw Error("no real tokens to measure the emulator's MSE on");
  return se / count;
}

double distill_emulator(Backbone& emulator, const Segments& full, const BatchSource& data,
                        const DistillOptions& o, Progress* progress) {
  check_distill(o, data);
  auto params = unique_parameters({emulator.get()});
  if (params.empty()) throw Error("the emulator has no trainable parameters to distil");
  torch::optim::Adam optimizer(params, torch::optim::AdamOptions(o.lr));
  SampleStream samples(data.size(), o.seed);
  const auto batch = std::min(data.size(), size_t(o.batch));
  double mse = 0;
  for (int64_t step = 0; step < o.steps; ++step) {
    InputActivations act;
    torch::Tensor a2;
    {
      torch::NoGradGuard no_grad;  // the pretrained model stays frozen
      act = input_activations(full, data.batch(samples.take(batch)));
      a2 = full.backbone.ptr()->forward(act.a1, act.ctx);
    }
    auto [se, count] = masked_squared_error(emulator->forward(act.a1, act.ctx), a2, act.mask);
    auto loss = se / std::max(count, 1.0);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    mse = loss.item<double>();
    if (!std::isfinite(mse))
      throw Error("distillation diverged at step " + std::to_string(step + 1) +
                  " (MSE is not finite); lower the learning rate");
    if (progress) progress->update(step + 1, "mse " + distill_number(mse));
  }
  if (progress) progress->finish("mse " + distill_number(mse));
  return mse;
}

double lm_loss_through(const Segments& seg, const Backbone& middle, const BatchSource& data,
                       int64_t batch) {
  check_batch_size(batch);
  torch::NoGradGuard no_grad;
  double total = 0;
  int64_t tokens = 0;
  for (size_t start = 0; start < data.size(); start += size_t(batch)) {
    const auto b = data.batch(index_range(start, std::min(data.size(), start + size_t(batch))));
    auto act = input_activations(seg, b);
    const auto loss = seg.output.ptr()->lm_loss(middle.ptr()->forward(act.a1, act.ctx), act.ctx,
                                                b.labels.to(act.a1.device()));
    total += loss.sum.item<double>();
    tokens += loss.tokens;
  }
  if (tokens == 0) throw Error("no labelled tokens to compute the loss on");
  return total / double(tokens);
}

}  // namespace gt
