// See centralized.hpp.
#include "strategies/centralized.hpp"

#include "models/decoder.hpp"
#include "protocols/messages.hpp"

namespace gt {

CentralizedTrainer::CentralizedTrainer(Segments seg,
                                       std::shared_ptr<torch::optim::Optimizer> optimizer,
                                       double grad_clip)
    : seg_(std::move(seg)), optimizer_(std::move(optimizer)), grad_clip_(grad_clip) {}

LmLoss CentralizedTrainer::loss(const LmBatch& batch) {
  auto ctx = make_attention_context(seg_.cfg, batch.attention_mask, seg_.dtype);
  auto a1 = seg_.input->forward(batch.input_ids, batch.attention_mask, ctx);
  return seg_.output->lm_loss(seg_.backbone->forward(a1, ctx), ctx, batch.labels);
}

StepOutcome CentralizedTrainer::step(const LmBatch& batch, WireStats& stats,
                                     const std::string& link) {
  DataUpload upload;
  upload.header.step = step_;
  upload.input_ids = to_wire(batch.input_ids);
  upload.attention_mask = to_wire(batch.attention_mask);
  upload.labels = to_wire(batch.labels);
  stats.add(link, "up", message_kind<DataUpload>(),
            static_cast<int64_t>(encode(upload).bytes.size()));

  const auto b = to_device(batch, seg_.device());
  const auto summed = loss(b);
  const auto mean = summed.mean();
  clear_gradients(*optimizer_);
  mean.backward();
  if (grad_clip_ > 0) clip_gradients(*optimizer_, grad_clip_);
  optimizer_->step();
  ++step_;
  StepOutcome out;
  out.loss = mean.item<double>();
  out.tokens = summed.tokens;
  return out;
}

std::pair<double, int64_t> CentralizedTrainer::eval_loss(const LmBatch& cpu_batch) {
  torch::NoGradGuard no_grad;
  const auto batch = to_device(cpu_batch, seg_.device());
  return summed_lm_loss(loss(batch));
}

}  // namespace gt
