// See split_client.hpp. The server's g1 is the gradient w.r.t. what it
// received; with quantization on the wire that is applied to a1 itself
// (straight-through estimator).
#include "strategies/split_client.hpp"

#include "common/error.hpp"
#include "privacy/distance_correlation.hpp"

namespace gt {

SplitClient::SplitClient(std::shared_ptr<ClientModel> model, std::string name, double dcor_lambda)
    : AdapterStrategy(std::move(model)), name_(std::move(name)), dcor_lambda_(dcor_lambda) {}

ClientAction SplitClient::begin_step(const StepInput& in) {
  batch_ = on_device(in.batch);
  ctx_ = make_attention_context(seg().cfg, batch_.attention_mask, seg().dtype);
  // The embeddings are the "private input" the penalty decorrelates a1 from.
  embeddings_ = seg().input->embed->forward(batch_.input_ids, batch_.attention_mask);
  a1_ = embeddings_;
  for (auto& block : seg().input->blocks) a1_ = block->forward(a1_, ctx_);
  outcome_ = StepOutcome{};
  outcome_.tokens = predicted_tokens(batch_);
  return ActivationsUp{a1_.detach(), batch_.attention_mask, true, QuantScheme::none};
}

ClientAction SplitClient::on_activations(const torch::Tensor& a2_in) {
  if (!a1_.defined()) throw Error(name_ + ": a2 without a step in flight");
  auto a2 = on_device(a2_in).requires_grad_(true);
  outcome_.loss = train_output(batch_, a2, ctx_);  // output adapter grads, and g2 in a2.grad()
  return GradientsUp{a2.grad(), QuantScheme::none};
}

ClientAction SplitClient::on_gradients(const torch::Tensor& g1) {
  if (!a1_.defined()) throw Error(name_ + ": g1 without a step in flight");
  std::vector<torch::Tensor> roots{a1_}, grads{g1.to(a1_.device(), a1_.scalar_type())};
  if (dcor_lambda_ > 0) {
    auto dcor = distance_correlation(embeddings_.detach(), a1_);
    outcome_.dcor = dcor.item<double>();
    roots.push_back(dcor * dcor_lambda_);
    grads.push_back(torch::ones({}, dcor.options()));
  }
  torch::autograd::backward(roots, grads);
  apply_step();
  embeddings_ = a1_ = torch::Tensor();
  return outcome_;
}

}  // namespace gt
