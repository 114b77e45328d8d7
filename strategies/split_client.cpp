// See split_client.hpp. The server's g1 is the gradient w.r.t. what it
// received; with quantization on the wire that is applied to a1 itself
// (straight-through estimator).
#include "strategies/split_client.hpp"

#include "common/error.hpp"
#include "models/decoder.hpp"

namespace gt {

SplitClient::SplitClient(std::shared_ptr<ClientModel> model, std::string name, bool private_a1,
                         int64_t micro_batches, Backbone stand_in)
    : AdapterStrategy(std::move(model)),
      name_(std::move(name)),
      private_a1_(private_a1),
      micro_batches_(micro_batches),
      stand_in_(std::move(stand_in)) {
  if (micro_batches_ < 1) throw Error(name_ + ": micro_batches must be >= 1");
  if (stand_in_) {
    if (micro_batches_ > 1)
      throw Error(name_ + ": a local backward runs unpipelined (micro_batches must be 1)");
    for (auto& p : stand_in_->parameters()) p.requires_grad_(false);
    stand_in_->to(seg().device());
    stand_in_->packed = seg().input->packed;  // run.packed_batches, as the client's segments
  }
}

ClientAction SplitClient::begin_step(const StepInput& in) {
  batch_ = on_device(in.batch);
  ctx_ = make_attention_context(seg().cfg, batch_.attention_mask, seg().dtype);
  a1_ = seg().input->forward(batch_.input_ids, batch_.attention_mask, ctx_);
  outcome_ = StepOutcome{};
  outcome_.tokens = predicted_tokens(batch_);
  next_row_ = 0;
  return ActivationsUp{a1_.detach(), batch_.attention_mask, !stand_in_, QuantScheme::none};
}

ClientAction SplitClient::on_activations(const torch::Tensor& a2_in) {
  if (!a1_.defined()) throw Error(name_ + ": a2 without a step in flight");
  auto a2 = on_device(a2_in);
  if (stand_in_) {  // no g2 to send: the output adapter's gradients only
    outcome_.loss = train_output(batch_, a2, ctx_);
    return finish(local_g1());
  }
  a2.requires_grad_(true);
  outcome_.loss = train_output(batch_, a2, ctx_);  // output adapter grads, and g2 in a2.grad()
  return GradientsUp{a2.grad(), QuantScheme::none};
}

torch::Tensor SplitClient::local_g1() {
  // With respect to a1 alone: the output adapter's gradients are the real a2's, kept as they
  // are; the stand-in only tells the input adapter which way the loss falls.
  const auto a2 = stand_in_->forward(a1_, ctx_);
  const auto loss = seg().output->lm_loss(a2, ctx_, batch_.labels).mean();
  return torch::autograd::grad({loss}, {a1_}, {}, /*retain_graph=*/true)[0];
}

// The output adapter on rows [first_row, first_row + b) alone: its attention never crosses
// rows, so the rows' logits are the whole batch's; their loss share accumulates the gradients.
ClientAction SplitClient::on_micro_activations(const torch::Tensor& a2_in, int64_t first_row) {
  if (!a1_.defined()) throw Error(name_ + ": a2 without a step in flight");
  const auto rows = a2_in.size(0), B = batch_.input_ids.size(0);
  if (first_row != next_row_ || rows < 1 || first_row + rows > B)
    throw Error(name_ + ": a2 of rows " + std::to_string(first_row) + ".." +
                std::to_string(first_row + rows) + " where rows from " + std::to_string(next_row_) +
                " of " + std::to_string(B) + " were expected");
  if (first_row == 0) clear_gradients(*model_->optimizer);
  const LmBatch part{batch_.input_ids.narrow(0, first_row, rows),
                     batch_.attention_mask.narrow(0, first_row, rows),
                     batch_.labels.narrow(0, first_row, rows)};
  const auto ctx = make_attention_context(seg().cfg, part.attention_mask, seg().dtype);
  auto a2 = on_device(a2_in).requires_grad_(true);
  const double share = train_output_rows(part, a2, ctx, outcome_.tokens);
  outcome_.loss = first_row == 0 ? share : outcome_.loss + share;
  next_row_ = first_row + rows;
  return GradientsUp{a2.grad(), QuantScheme::none};
}

ClientAction SplitClient::on_gradients(const torch::Tensor& g1) {
  if (!a1_.defined()) throw Error(name_ + ": g1 without a step in flight");
  if (stand_in_) throw Error(name_ + ": g1 from the server, but this client computes its own");
  if (next_row_ != 0 && next_row_ != batch_.input_ids.size(0))  // a pipelined step
    throw Error(name_ + ": g1 before the a2 of every micro-batch");
  return finish(g1);
}

StepOutcome SplitClient::finish(const torch::Tensor& g1) {
  std::vector<torch::Tensor> roots{a1_}, grads{g1.to(a1_.device(), a1_.scalar_type())};
  if (auto* privacy = model_->privacy.get()) {
    if (private_a1_ && privacy->active()) {
      auto t = privacy->terms(a1_, batch_.input_ids, batch_.attention_mask);
      outcome_.dcor = t.dcor;
      outcome_.inverter_accuracy = t.inverter_accuracy;
      roots.push_back(t.penalty);
      grads.push_back(torch::ones({}, t.penalty.options()));
    } else {
      outcome_.dcor = privacy->score(a1_, batch_.input_ids, batch_.attention_mask);
    }
  }
  torch::autograd::backward(roots, grads);
  apply_step();
  a1_ = torch::Tensor();
  return outcome_;
}

}  // namespace gt
