// The client's half of split learning (the `split` baseline, and the core of
// `online`): input adapter -> a1 up; a2 down -> output adapter -> loss; g2 up;
// g1 down -> input adapter backward (+ distance-correlation penalty) -> step. With a
// stand-in backbone, g1 is the client's own estimate and only a1 goes up.
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
  // stand_in (online only): the client estimates g1 itself, through this stand-in for the
  // backbone (the privatize phase's emulator); no g2 goes up, so gradient matching and g2
  // inversion have nothing to read. The output adapter still trains on the server's a2.
  SplitClient(std::shared_ptr<ClientModel> model, std::string name, bool private_a1 = false,
              int64_t micro_batches = 1, Backbone stand_in = nullptr);

  std::string name() const override { return name_; }
  SessionTerms terms() const override { return {!stand_in_, QuantScheme::none, QuantScheme::none}; }
  ClientAction begin_step(const StepInput& in) override;
  ClientAction on_activations(const torch::Tensor& a2) override;
  ClientAction on_gradients(const torch::Tensor& g1) override;
  int64_t micro_batches() const override { return micro_batches_; }
  ClientAction on_micro_activations(const torch::Tensor& a2, int64_t first_row) override;

 private:
  std::string name_;
  bool private_a1_;
  int64_t micro_batches_;
  Backbone stand_in_;
  int64_t next_row_ = 0;  // of the next micro-batch's a2
  // In flight between the phases of a step.
  LmBatch batch_;
  AttentionContext ctx_;
  torch::Tensor a1_;
  StepOutcome outcome_;

  // The input adapter's backward from g1 (the server's, or the stand-in's) plus the privacy
  // penalty, and the optimizer step.
  StepOutcome finish(const torch::Tensor& g1);
  torch::Tensor local_g1();  // dLoss/da1 through the stand-in
};

}  // namespace gt
