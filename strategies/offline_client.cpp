// See offline_client.hpp.
#include "strategies/offline_client.hpp"

#include "models/decoder.hpp"

namespace gt {

OfflineClient::OfflineClient(std::shared_ptr<ClientModel> model, Backbone emulator,
                             std::string name)
    : AdapterStrategy(std::move(model)), emulator_(std::move(emulator)), name_(std::move(name)) {
  for (auto& p : emulator_->parameters()) p.requires_grad_(false);  // the emulator stays frozen
  emulator_->to(seg().device());            // it arrives from a file, in host memory
  emulator_->packed = seg().input->packed;  // run.packed_batches, as the client's segments
}

ClientAction OfflineClient::begin_step(const StepInput& in) {
  const auto b = on_device(in.batch);
  auto ctx = make_attention_context(seg().cfg, b.attention_mask, seg().dtype);
  auto a1 = seg().input->forward(b.input_ids, b.attention_mask, ctx);
  StepOutcome out;
  out.loss = train_output(b, emulator_->forward(a1, ctx), ctx);
  out.tokens = predicted_tokens(b);
  apply_step();
  return out;
}

std::pair<double, int64_t> OfflineClient::local_eval_loss(const LmBatch& cpu_batch) {
  torch::NoGradGuard no_grad;
  const auto b = on_device(cpu_batch);
  auto ctx = make_attention_context(seg().cfg, b.attention_mask, seg().dtype);
  auto a1 = seg().input->forward(b.input_ids, b.attention_mask, ctx);
  return summed_lm_loss(seg().output->lm_loss(emulator_->forward(a1, ctx), ctx, b.labels));
}

}  // namespace gt
