// The `centralized` baseline: the same adapters trained with the whole model in
// one place. No privacy: the client's raw batch goes to the model owner, and
// that upload is what the baseline costs on the wire.
#pragma once

#include <memory>

#include "data/batch_source.hpp"
#include "models/segments.hpp"
#include "protocols/codec.hpp"
#include "strategies/client_strategy.hpp"

namespace gt {

class CentralizedTrainer {
 public:
  CentralizedTrainer(Segments seg, std::shared_ptr<torch::optim::Optimizer> optimizer,
                     double grad_clip = 0);
  // One step; counts the raw-data upload in `stats` under `link`.
  StepOutcome step(const LmBatch& batch, WireStats& stats, const std::string& link);
  // Summed loss and counted tokens (evaluation, no gradients).
  std::pair<double, int64_t> eval_loss(const LmBatch& batch);
  int64_t steps_done() const { return step_; }

 private:
  LmLoss loss(const LmBatch& batch);

  Segments seg_;
  std::shared_ptr<torch::optim::Optimizer> optimizer_;
  double grad_clip_;
  int64_t step_ = 0;
};

}  // namespace gt
