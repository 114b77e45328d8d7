// See client_strategy.hpp.
#include "strategies/client_strategy.hpp"

#include "common/error.hpp"

namespace gt {

ClientAction ClientStrategy::on_activations(const torch::Tensor&) {
  throw Error(name() + ": no activations expected now");
}

ClientAction ClientStrategy::on_gradients(const torch::Tensor&) {
  throw Error(name() + ": no gradients expected now");
}

ClientAction ClientStrategy::on_micro_activations(const torch::Tensor&, int64_t) {
  throw Error(name() + ": does not pipeline micro-batches");
}

std::pair<double, int64_t> ClientStrategy::local_eval_loss(const LmBatch&) {
  throw Error(name() + ": evaluates through the server, not locally");
}

void clear_gradients(torch::optim::Optimizer& optimizer) {
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params()) p.mutable_grad() = torch::Tensor();
}

void clip_gradients(torch::optim::Optimizer& optimizer, double max_norm) {
  std::vector<torch::Tensor> params;
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params())
      if (p.grad().defined()) params.push_back(p);
  torch::nn::utils::clip_grad_norm_(params, max_norm);
}

std::pair<double, int64_t> summed_lm_loss(const LmLoss& loss) {
  return {loss.sum.item<double>(), loss.tokens};
}

int64_t predicted_tokens(const LmBatch& batch) {
  return batch.labels.slice(1, 1).ne(-100).sum().item<int64_t>();
}

}  // namespace gt
