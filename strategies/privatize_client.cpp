// See privatize_client.hpp.
#include "strategies/privatize_client.hpp"

#include <set>

#include "common/error.hpp"
#include "models/decoder.hpp"

namespace gt {

PrivatizeClient::PrivatizeClient(std::shared_ptr<ClientModel> model, Backbone stand_in,
                                 bool train_output)
    : AdapterStrategy(std::move(model)), stand_in_(std::move(stand_in)) {
  if (!stand_in_) throw Error("privatize: needs a stand-in backbone (the emulator)");
  if (!model_->privacy || !model_->privacy->active())
    throw Error(
        "privatize: the privacy objective has no weight (privacy.adversary_weight or "
        "strategy.dcor_lambda must be > 0)");
  for (auto& p : stand_in_->parameters()) p.requires_grad_(false);
  stand_in_->to(seg().device());
  stand_in_->packed = seg().input->packed;  // run.packed_batches, as the client's own segments
  if (!train_output) {
    std::set<const void*> input;
    for (const auto& p : seg().input->parameters()) input.insert(p.unsafeGetTensorImpl());
    for (const auto& p : seg().output->parameters())
      if (!input.count(p.unsafeGetTensorImpl())) frozen_.push_back(p);
  }
}

ClientAction PrivatizeClient::begin_step(const StepInput& in) {
  const auto b = on_device(in.batch);
  auto ctx = make_attention_context(seg().cfg, b.attention_mask, seg().dtype);
  auto a1 = seg().input->forward(b.input_ids, b.attention_mask, ctx);
  auto a2 = stand_in_->forward(a1, ctx);
  auto task = seg().output->lm_loss(a2, ctx, b.labels).mean();
  auto privacy = model_->privacy->terms(a1, b.input_ids, b.attention_mask);
  auto privacy_a2 = model_->privacy->a2_terms(a2, b.input_ids, b.attention_mask);
  clear_gradients(*model_->optimizer);
  (task + (privacy.penalty + privacy_a2.penalty).to(task.scalar_type())).backward();
  for (auto& p : frozen_) p.mutable_grad() = torch::Tensor();  // skipped by the optimizer
  apply_step();
  StepOutcome out;
  out.loss = task.item<double>();
  out.tokens = predicted_tokens(b);
  out.dcor = privacy.dcor;
  out.inverter_accuracy = privacy.inverter_accuracy;
  return out;
}

std::pair<double, int64_t> PrivatizeClient::local_eval_loss(const LmBatch& cpu_batch) {
  torch::NoGradGuard no_grad;
  const auto b = on_device(cpu_batch);
  auto ctx = make_attention_context(seg().cfg, b.attention_mask, seg().dtype);
  auto a1 = seg().input->forward(b.input_ids, b.attention_mask, ctx);
  return summed_lm_loss(seg().output->lm_loss(stand_in_->forward(a1, ctx), ctx, b.labels));
}

}  // namespace gt
