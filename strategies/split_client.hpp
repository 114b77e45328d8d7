// The client's half of split learning (the `split` baseline, and the core of
// `online`): input adapter -> a1 up; a2 down -> output adapter -> loss; g2 up;
// g1 down -> input adapter backward (+ distance-correlation penalty) -> step.
// Online's wire quantization is a wrapper (wire_quantization.hpp).
#pragma once

#include "strategies/adapter_strategy.hpp"

namespace gt {

class SplitClient : public AdapterStrategy {
 public:
  // dcor_lambda: weight of dCor(input embeddings, a1) in the loss (NoPeek); 0 = off.
  SplitClient(std::shared_ptr<ClientModel> model, std::string name, double dcor_lambda = 0);

  std::string name() const override { return name_; }
  ClientAction begin_step(const StepInput& in) override;
  ClientAction on_activations(const torch::Tensor& a2) override;
  ClientAction on_gradients(const torch::Tensor& g1) override;

 private:
  std::string name_;
  double dcor_lambda_;
  // In flight between the phases of a step.
  LmBatch batch_;
  AttentionContext ctx_;
  torch::Tensor embeddings_, a1_;
  StepOutcome outcome_;
};

}  // namespace gt
