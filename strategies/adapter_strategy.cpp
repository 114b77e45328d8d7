// See adapter_strategy.hpp.
#include "strategies/adapter_strategy.hpp"

#include "models/decoder.hpp"

namespace gt {

ActivationsUp AdapterStrategy::eval_up(const LmBatch& cpu_batch) {
  torch::NoGradGuard no_grad;
  const auto batch = on_device(cpu_batch);
  auto ctx = make_attention_context(seg().cfg, batch.attention_mask, seg().dtype);
  ActivationsUp up;
  up.a1 = seg().input->forward(batch.input_ids, batch.attention_mask, ctx);
  up.attention_mask = batch.attention_mask;
  up.keep_graph = false;
  return up;
}

std::pair<double, int64_t> AdapterStrategy::eval_loss(const LmBatch& cpu_batch,
                                                      const torch::Tensor& a2) {
  torch::NoGradGuard no_grad;
  const auto batch = on_device(cpu_batch);
  auto ctx = make_attention_context(seg().cfg, batch.attention_mask, seg().dtype);
  return summed_lm_loss(seg().output->lm_loss(on_device(a2), ctx, batch.labels));
}

double AdapterStrategy::train_output(const LmBatch& batch, const torch::Tensor& a2,
                                     const AttentionContext& ctx) {
  auto loss = seg().output->lm_loss(a2, ctx, batch.labels).mean();
  clear_gradients(*model_->optimizer);
  loss.backward();
  return loss.item<double>();
}

double AdapterStrategy::train_output_rows(const LmBatch& rows, const torch::Tensor& a2,
                                          const AttentionContext& ctx, int64_t batch_tokens) {
  auto loss =
      seg().output->lm_loss(a2, ctx, rows.labels).sum / double(std::max<int64_t>(batch_tokens, 1));
  loss.backward();
  return loss.item<double>();
}

LmBatch AdapterStrategy::on_device(const LmBatch& batch) const {
  return to_device(batch, seg().device());
}

torch::Tensor AdapterStrategy::on_device(const torch::Tensor& received) const {
  return received.to(seg().device(), seg().dtype);
}

void AdapterStrategy::apply_step() {
  if (model_->grad_clip > 0) clip_gradients(*model_->optimizer, model_->grad_clip);
  model_->optimizer->step();
}

}  // namespace gt
