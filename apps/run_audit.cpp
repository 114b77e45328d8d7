// See run_audit.hpp.
#include "apps/run_audit.hpp"

#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <set>

#include "data/lm_dataset.hpp"
#include "privacy/attacks/membership.hpp"

namespace gt::cli {
namespace {

int64_t bytes_of(const torch::Tensor& t) {
  return t.defined() ? int64_t(t.numel()) * int64_t(t.element_size()) : 0;
}

int64_t optimizer_state_bytes(torch::optim::Optimizer& optimizer) {
  int64_t total = 0;
  for (const auto& [key, state] : optimizer.state()) {
    (void)key;
    if (const auto* adamw = dynamic_cast<const torch::optim::AdamWParamState*>(state.get()))
      total += bytes_of(adamw->exp_avg()) + bytes_of(adamw->exp_avg_sq()) +
               bytes_of(adamw->max_exp_avg_sq());
    else if (const auto* sgd = dynamic_cast<const torch::optim::SGDParamState*>(state.get()))
      total += bytes_of(sgd->momentum_buffer());
  }
  return total;
}

}  // namespace

std::vector<size_t> trained_examples(size_t shard_size, uint64_t seed, int64_t steps,
                                     int64_t batch) {
  std::set<size_t> seen;
  const auto draws = size_t(std::max<int64_t>(0, steps * batch));
  for (int64_t epoch = 0; seen.size() < shard_size && size_t(epoch) * shard_size < draws; ++epoch) {
    const auto order = epoch_order(shard_size, seed, epoch);
    for (size_t i = 0; i < order.size() && size_t(epoch) * shard_size + i < draws; ++i)
      seen.insert(order[i]);
  }
  return {seen.begin(), seen.end()};
}

nlohmann::json membership_report(const RunConfig& cfg, const std::vector<ClientSide>& clients,
                                 int64_t steps_per_client, size_t max_samples) {
  auto pretrained_model = load_decoder(cfg.model.path, parse_dtype(cfg.model.dtype));
  const auto pretrained = split_model(pretrained_model, {cfg.model.n_in, cfg.model.n_out});
  auto out = nlohmann::json::array();
  for (const auto& c : clients) {
    auto members =
        trained_examples(c.train->size(), cfg.training.seed, steps_per_client, cfg.training.batch);
    const auto n = std::min({members.size(), c.valid->size(), max_samples});
    members.resize(n);  // the smallest indices: any fixed choice among members will do
    std::vector<size_t> held_out(n);
    for (size_t i = 0; i < n; ++i) held_out[i] = i;
    // The client's adapters are the ones the server plugged, bit for bit (tested in
    // strategies_designs), on the same backbone.
    const auto r = membership_inference(pretrained, c.seg(), SubsetSource(c.train, members),
                                        SubsetSource(c.valid, held_out));
    out.push_back({{"client", c.name},
                   {"auc", r.auc},
                   {"advantage", r.advantage},
                   {"members", r.members},
                   {"non_members", r.non_members}});
  }
  return out;
}

nlohmann::json client_memory(const ClientSide& client, int64_t emulator_bytes) {
  const auto& seg = client.seg();
  const std::vector<const torch::nn::Module*> adapters{seg.input.get(), seg.output.get()};
  int64_t parameters = 0, gradients = 0;
  for (const auto& p : unique_parameters(adapters, false)) parameters += bytes_of(p);
  for (const auto& p : unique_parameters(adapters, true)) gradients += bytes_of(p);
  const int64_t optimizer = optimizer_state_bytes(*client.trainer->optimizer);
  return {{"parameters_bytes", parameters},
          {"gradient_bytes", gradients},
          {"optimizer_bytes", optimizer},
          {"emulator_bytes", emulator_bytes},
          {"total_bytes", parameters + gradients + optimizer + emulator_bytes}};
}

}  // namespace gt::cli
