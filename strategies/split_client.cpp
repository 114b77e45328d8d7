// See split_client.hpp. The straight-through estimator makes quantization
// transparent to the client's autograd: g1 (w.r.t. what the server received)
// is applied to a1 itself.
#include "strategies/split_client.hpp"

#include "models/decoder.hpp"
#include "privacy/distance_correlation.hpp"
#include "protocols/codec.hpp"

namespace gt {

void clip_adapter_gradients(torch::optim::Optimizer& optimizer, double max_norm) {
  std::vector<torch::Tensor> params;
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params()) params.push_back(p);
  torch::nn::utils::clip_grad_norm_(params, max_norm);
}

SplitClient::SplitClient(Segments seg, std::shared_ptr<torch::optim::Optimizer> optimizer,
                         SplitOptions options)
    : seg_(std::move(seg)), optimizer_(std::move(optimizer)), options_(options) {}

SessionHello SplitClient::hello(const std::string& client_name, const std::string& strategy) const {
  SessionHello h;
  h.header = header();
  h.client_name = client_name;
  h.strategy = strategy;
  h.model_type = seg_.cfg.model_type;
  h.num_layers = seg_.cfg.num_layers;
  h.hidden_size = seg_.cfg.hidden_size;
  h.n_in = seg_.split.n_in;
  h.n_out = seg_.split.n_out;
  h.backward = true;
  h.quant_a2 = static_cast<uint8_t>(options_.a2);
  h.quant_g1 = static_cast<uint8_t>(options_.g1);
  return h;
}

ForwardRequest SplitClient::start_step(const LmBatch& batch, bool train) {
  batch_ = batch;
  ctx_ = make_attention_context(seg_.cfg, batch.attention_mask, seg_.dtype);
  ForwardRequest req;
  req.header = header();
  req.keep_graph = train;
  torch::Tensor a1;
  if (train) {
    // The embeddings are the "private input" the penalty decorrelates a1 from.
    embeddings_ = seg_.input->embed->forward(batch.input_ids, batch.attention_mask);  // (B, T, C)
    a1 = embeddings_;
    for (auto& block : seg_.input->blocks) a1 = block->forward(a1, ctx_);
    a1_ = a1;
  } else {
    torch::NoGradGuard no_grad;
    a1 = seg_.input->forward(batch.input_ids, batch.attention_mask, ctx_);
  }
  req.activations = to_wire(a1, options_.a1);
  req.attention_mask = to_wire(batch.attention_mask);
  if (train && options_.a1 != QuantScheme::none)
    outcome_.a1_quant_error =
        (from_wire(req.activations, "a1") - a1.detach()).abs().max().item<double>();
  else
    outcome_.a1_quant_error = 0;
  return req;
}

BackwardRequest SplitClient::on_forward_reply(const ForwardReply& reply) {
  const auto B = batch_.input_ids.size(0), T = batch_.input_ids.size(1);
  auto a2 = from_wire(reply.activations, "a2", {B, T, seg_.cfg.hidden_size})
                .to(seg_.dtype)
                .requires_grad_(true);
  auto logits = seg_.output->forward(a2, ctx_);  // (B, T, V)
  auto loss = causal_lm_loss(logits, batch_.labels);
  optimizer_->zero_grad();
  loss.backward();  // output adapter grads, and g2 in a2.grad()
  outcome_.loss = loss.item<double>();
  outcome_.tokens = batch_.labels.slice(1, 1).ne(-100).sum().item<int64_t>();
  BackwardRequest req;
  req.header = header();
  req.gradient = to_wire(a2.grad(), options_.g2);
  return req;
}

StepOutcome SplitClient::on_backward_reply(const BackwardReply& reply) {
  auto g1 = from_wire(reply.gradient, "g1", a1_.sizes().vec()).to(a1_.scalar_type());
  std::vector<torch::Tensor> roots{a1_}, grads{g1};
  outcome_.dcor = 0;
  if (options_.dcor_lambda > 0) {
    // NoPeek: lambda * dCor(embeddings, a1), per sample flattened.
    auto dcor = distance_correlation(embeddings_.detach(), a1_);
    outcome_.dcor = dcor.item<double>();
    roots.push_back(dcor * options_.dcor_lambda);
    grads.push_back(torch::ones({}, dcor.options()));
  }
  torch::autograd::backward(roots, grads);
  if (options_.grad_clip > 0) clip_adapter_gradients(*optimizer_, options_.grad_clip);
  optimizer_->step();
  ++step_;
  embeddings_ = a1_ = torch::Tensor();
  return outcome_;
}

std::pair<double, int64_t> SplitClient::eval_loss(const ForwardReply& reply) {
  torch::NoGradGuard no_grad;
  const auto B = batch_.input_ids.size(0), T = batch_.input_ids.size(1);
  auto a2 = from_wire(reply.activations, "a2", {B, T, seg_.cfg.hidden_size}).to(seg_.dtype);
  auto logits = seg_.output->forward(a2, ctx_);
  const auto V = logits.size(-1);
  auto labels = batch_.labels.slice(1, 1).reshape({-1});
  auto sum = torch::nn::functional::cross_entropy(
      logits.slice(1, 0, -1).reshape({-1, V}).to(torch::kFloat), labels,
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kSum));
  return {sum.item<double>(), labels.ne(-100).sum().item<int64_t>()};
}

}  // namespace gt
