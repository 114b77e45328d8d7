// See gradfree_client.hpp. Batches are right-padded and attention is causal,
// so a sample's a2 at its real tokens does not depend on the rest of its batch;
// padded positions carry no loss and are never attended to. The cache stays in host memory
// (a2 arrives there from the wire); a cached step moves its batch's rows to the device.
#include "strategies/gradfree_client.hpp"

#include "common/error.hpp"

namespace gt {

GradfreeClient::GradfreeClient(std::shared_ptr<ClientModel> model, bool cache_a2)
    : AdapterStrategy(std::move(model)), cache_a2_(cache_a2) {}

ClientAction GradfreeClient::begin_step(const StepInput& in) {
  in_ = in;
  in_.batch = on_device(in.batch);
  bool all_cached = cache_a2_ && !in.samples.empty();
  for (auto s : in.samples) all_cached = all_cached && cache_.count(s);
  if (all_cached) return train_on(recall());
  in_flight_ = true;
  auto up = eval_up(in_.batch);  // frozen input adapter: no graph to keep
  return up;
}

ClientAction GradfreeClient::on_activations(const torch::Tensor& a2) {
  if (!in_flight_) throw Error("gradfree: a2 without a step in flight");
  in_flight_ = false;
  if (cache_a2_) remember(a2);
  return train_on(a2.to(seg().dtype));
}

StepOutcome GradfreeClient::train_on(const torch::Tensor& a2) {
  auto ctx = make_attention_context(seg().cfg, in_.batch.attention_mask, seg().dtype);
  StepOutcome out;
  out.loss = train_output(in_.batch, on_device(a2).detach(), ctx);
  // A head tied to the token embedding would move the input adapter through
  // the back door: the input adapter, shared weights included, stays frozen.
  for (auto& p : seg().input->parameters()) p.mutable_grad() = torch::Tensor();
  out.tokens = predicted_tokens(in_.batch);
  apply_step();
  return out;
}

void GradfreeClient::remember(const torch::Tensor& a2) {
  const auto& mask = in_.batch.attention_mask;
  const auto lengths = mask.sum(1);
  for (size_t row = 0; row < in_.samples.size(); ++row) {
    const auto len = lengths[row].item<int64_t>();
    // Only right-padded rows (ones, then zeros) have position-independent a2.
    if (mask[row].slice(0, 0, len).eq(1).all().item<bool>())
      cache_[in_.samples[row]] = a2[row].slice(0, 0, len).to(seg().dtype).clone();
  }
}

torch::Tensor GradfreeClient::recall() const {
  const auto B = in_.batch.input_ids.size(0), T = in_.batch.input_ids.size(1);
  auto a2 = torch::zeros({B, T, seg().cfg.hidden_size}, torch::TensorOptions(seg().dtype));
  for (int64_t row = 0; row < B; ++row) {
    const auto& cached = cache_.at(in_.samples[row]);
    a2[row].slice(0, 0, cached.size(0)).copy_(cached);
  }
  return a2;
}

}  // namespace gt
