// Common ground of the strategies that train a ClientModel: evaluation through
// the wire (input adapter -> server's backbone -> output adapter), the same for
// every design so held-out losses compare like for like.
#pragma once

#include <memory>

#include "strategies/client_strategy.hpp"

namespace gt {

class AdapterStrategy : public ClientStrategy {
 public:
  explicit AdapterStrategy(std::shared_ptr<ClientModel> model) : model_(std::move(model)) {}
  ActivationsUp eval_up(const LmBatch& batch) override;
  std::pair<double, int64_t> eval_loss(const LmBatch& batch, const torch::Tensor& a2) override;

 protected:
  // Output adapter on a2 -> loss; backward; optimizer step. a2 may require grad
  // (its gradient is then g2). Returns the loss; `ctx` from the batch's mask.
  double train_output(const LmBatch& batch, const torch::Tensor& a2, const AttentionContext& ctx);
  // The same for some rows of a batch (a micro-batch), without clearing the gradients: the
  // rows' summed loss / `batch_tokens` (the whole batch's predicted tokens), so the gradients
  // the micro-batches accumulate are the batch's. Returns that share of the loss.
  double train_output_rows(const LmBatch& rows, const torch::Tensor& a2,
                           const AttentionContext& ctx, int64_t batch_tokens);
  void apply_step();  // clip (if configured) and optimizer step
  // A batch, or a tensor from the wire (in the model's dtype), on the model's device; the
  // same tensors, no copy, when they are there already (always on the CPU).
  LmBatch on_device(const LmBatch& batch) const;
  torch::Tensor on_device(const torch::Tensor& received) const;

  Segments& seg() const { return model_->seg; }
  std::shared_ptr<ClientModel> model_;
};

}  // namespace gt
