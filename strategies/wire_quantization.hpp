// Cross-cutting wire behaviour as wrappers around any client strategy (the
// decorator pattern): quantization of what crosses the wire, and Gaussian
// noise on a1. `online` = WireQuantization(SplitClient with dCor).
#pragma once

#include <memory>

#include "strategies/client_strategy.hpp"

namespace gt {

// Forwards every call to an inner strategy (the base of the wrappers).
class StrategyWrapper : public ClientStrategy {
 public:
  explicit StrategyWrapper(std::unique_ptr<ClientStrategy> inner) : inner_(std::move(inner)) {}
  std::string name() const override { return inner_->name(); }
  SessionTerms terms() const override { return inner_->terms(); }
  bool uploads_adapters() const override { return inner_->uploads_adapters(); }
  ClientAction begin_step(const StepInput& in) override { return up(inner_->begin_step(in)); }
  ClientAction on_activations(const torch::Tensor& a2) override {
    return up(inner_->on_activations(a2));
  }
  ClientAction on_gradients(const torch::Tensor& g1) override {
    return up(inner_->on_gradients(g1));
  }
  int64_t micro_batches() const override { return inner_->micro_batches(); }
  ClientAction on_micro_activations(const torch::Tensor& a2, int64_t first_row) override {
    return up(inner_->on_micro_activations(a2, first_row));
  }
  ActivationsUp eval_up(const LmBatch& batch) override { return up_eval(inner_->eval_up(batch)); }
  std::pair<double, int64_t> eval_loss(const LmBatch& batch, const torch::Tensor& a2) override {
    return inner_->eval_loss(batch, a2);
  }
  bool evaluates_locally() const override { return inner_->evaluates_locally(); }
  std::pair<double, int64_t> local_eval_loss(const LmBatch& batch) override {
    return inner_->local_eval_loss(batch);
  }
  std::vector<torch::Tensor> random_state() const override { return inner_->random_state(); }
  void set_random_state(std::vector<torch::Tensor> state) override {
    inner_->set_random_state(std::move(state));
  }
  ClientStrategy& inner() { return *inner_; }

 protected:
  // Rewrites what goes up (or a finished step); identity by default.
  virtual ClientAction up(ClientAction action) { return action; }
  // Rewrites an evaluation's a1; like a training a1 by default.
  virtual ActivationsUp up_eval(ActivationsUp a) {
    return std::get<ActivationsUp>(up(std::move(a)));
  }

 private:
  std::unique_ptr<ClientStrategy> inner_;
};

struct WireSchemes {
  QuantScheme a1 = QuantScheme::none, a2 = QuantScheme::none;  // activations up / down
  QuantScheme g2 = QuantScheme::none, g1 = QuantScheme::none;  // gradients up / down
};

// Per-token quantization of a1 and g2 (sent) and of a2 and g1 (asked of the
// server); records the a1 quantization error in the step's outcome.
class WireQuantization : public StrategyWrapper {
 public:
  WireQuantization(std::unique_ptr<ClientStrategy> inner, WireSchemes schemes);
  SessionTerms terms() const override;

 protected:
  ClientAction up(ClientAction action) override;
  ActivationsUp up_eval(ActivationsUp a) override;

 private:
  WireSchemes schemes_;
  double a1_error_ = 0;  // of the training step in flight
};

// Adds N(0, std^2) noise to every a1 the client sends (seeded: runs repeat).
class GaussianNoise : public StrategyWrapper {
 public:
  GaussianNoise(std::unique_ptr<ClientStrategy> inner, double std, uint64_t seed);
  // The inner strategy's states, then this generator's.
  std::vector<torch::Tensor> random_state() const override;
  void set_random_state(std::vector<torch::Tensor> state) override;

 protected:
  ClientAction up(ClientAction action) override;

 private:
  double std_;
  torch::Generator generator_;
};

// Protects g2 against gradient matching and g2 inversion: adds to every row of g2 sent
// N(0, (relative_std * rms(row))^2) noise per coordinate (seeded). Relative to each row's own
// RMS because g2's scale varies by orders of magnitude between positions and steps; the
// attacks normalise rows anyway, so it is the signal-to-noise ratio that counts.
class GradientNoise : public StrategyWrapper {
 public:
  GradientNoise(std::unique_ptr<ClientStrategy> inner, double relative_std, uint64_t seed);
  std::vector<torch::Tensor> random_state() const override;
  void set_random_state(std::vector<torch::Tensor> state) override;

 protected:
  ClientAction up(ClientAction action) override;

 private:
  double relative_std_;
  torch::Generator generator_;
};

}  // namespace gt
