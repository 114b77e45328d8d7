// The client's half of split learning (the `split` baseline, and the core of
// `online`): input adapter -> a1 up; a2 down -> output adapter -> loss; g2 up;
// g1 down -> input adapter backward (+ distance-correlation penalty) -> step.
// Online's wire quantization is a wrapper (wire_quantization.hpp).
#pragma once

#include "strategies/adapter_strategy.hpp"

namespace gt {

class SplitClient : public AdapterStrategy {
 public:
  // private_a1: the input adapter trains against the model's privacy objective (online); else
  // a1's privacy score is only reported (split). micro_batches > 1: steps are pipelined
  // (client_strategy.hpp): the input adapter and the penalty run on the whole batch, the output
  // adapter on each micro-batch as its a2 arrives.
  SplitClient(std::shared_ptr<ClientModel> model, std::string name, bool private_a1 = false,
              int64_t micro_batches = 1);

  std::string name() const override { return name_; }
  ClientAction begin_step(const StepInput& in) override;
  ClientAction on_activations(const torch::Tensor& a2) override;
  ClientAction on_gradients(const torch::Tensor& g1) override;
  int64_t micro_batches() const override { return micro_batches_; }
  ClientAction on_micro_activations(const torch::Tensor& a2, int64_t first_row) override;

 private:
  std::string name_;
  bool private_a1_;
  int64_t micro_batches_;
  int64_t next_row_ = 0;  // of the next micro-batch's a2
  // In flight between the phases of a step.
  LmBatch batch_;
  AttentionContext ctx_;
  torch::Tensor a1_;
  StepOutcome outcome_;
};

}  // namespace gt
