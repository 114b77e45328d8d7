// The `privatize` phase: privacy before the first byte. The client trains its adapters around
// a stand-in backbone (the model owner's emulator, one download, as in the offline designs)
// against the task loss plus the privacy objective on a1 (privacy_objective.hpp), so that the
// first a1 an `online` or `gradfree` phase sends already comes from a privatized input adapter.
// No activation crosses the wire: steps and held-out evaluation run on the client alone.
#pragma once

#include "strategies/adapter_strategy.hpp"

namespace gt {

class PrivatizeClient : public AdapterStrategy {
 public:
  // `stand_in` replaces the backbone on the client (frozen). The model's privacy objective must
  // be active (a weight > 0): a privatize phase without one would only be an offline phase.
  // train_output = false: only the input adapter trains here (the output adapter's own weights
  // stay as they are; a head tied to the embedding trains with the input adapter), so the
  // output adapter meets the real backbone untouched by the emulator.
  PrivatizeClient(std::shared_ptr<ClientModel> model, Backbone stand_in, bool train_output = true);

  std::string name() const override { return "privatize"; }
  SessionTerms terms() const override { return {false, QuantScheme::none, QuantScheme::none}; }
  ClientAction begin_step(const StepInput& in) override;
  bool evaluates_locally() const override { return true; }
  std::pair<double, int64_t> local_eval_loss(const LmBatch& batch) override;

 private:
  Backbone stand_in_;
  std::vector<torch::Tensor> frozen_;  // output-adapter weights this phase leaves as they are
};

}  // namespace gt
