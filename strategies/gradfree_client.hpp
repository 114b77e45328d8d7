// The `gradfree` design: the input adapter is frozen (with any weight the
// output adapter shares with it, e.g. a tied LM head) and only the output
// adapter trains, so no gradient crosses the wire in either direction. While
// the input adapter is frozen the server's a2 for a sample never changes: with
// the cache on, each sample's a2 is kept, and a batch whose samples are all
// cached is trained without any traffic (from the second epoch on).
#pragma once

#include <map>

#include "strategies/adapter_strategy.hpp"

namespace gt {

class GradfreeClient : public AdapterStrategy {
 public:
  GradfreeClient(std::shared_ptr<ClientModel> model, bool cache_a2);

  std::string name() const override { return "gradfree"; }
  SessionTerms terms() const override { return {false, QuantScheme::none, QuantScheme::none}; }
  ClientAction begin_step(const StepInput& in) override;
  ClientAction on_activations(const torch::Tensor& a2) override;

  size_t cached_samples() const { return cache_.size(); }

 private:
  StepOutcome train_on(const torch::Tensor& a2);
  void remember(const torch::Tensor& a2);
  torch::Tensor recall() const;  // the batch's a2 from the cache, zero-padded

  bool cache_a2_;
  std::map<size_t, torch::Tensor> cache_;  // sample -> a2 of its real tokens (len, C)
  StepInput in_;
  bool in_flight_ = false;
};

}  // namespace gt
