// See reference_check.hpp. Padded positions are undefined in the reference, so
// per-position tensors are compared only where attention_mask is 1.
#include "models/reference_check.hpp"

#include <cmath>
#include <map>

#include "common/error.hpp"
#include "models/decoder.hpp"
#include "models/safetensors.hpp"

namespace gt {
namespace {

double masked_max_diff(const torch::Tensor& ours, const torch::Tensor& ref,
                       const torch::Tensor& mask) {
  auto diff = (ours.to(torch::kFloat) - ref.to(torch::kFloat)).abs();  // (B, T, ...)
  auto keep = mask.to(torch::kBool);
  return diff.index({keep}).max().item<double>();
}

}  // namespace

std::vector<TensorDiff> compare_with_reference(const std::string& model_dir,
                                               const std::string& reference_file) {
  SafetensorsFile ref(reference_file);
  for (const char* key : {"input_ids", "attention_mask", "labels", "logits", "loss"})
    if (!ref.contains(key))
      throw error_at(reference_file, std::string("reference has no tensor '") + key + "'");
  auto model = load_decoder(model_dir, torch::kFloat);
  auto ids = ref.tensor("input_ids", torch::kLong);
  auto mask = ref.tensor("attention_mask", torch::kLong);
  auto labels = ref.tensor("labels", torch::kLong);

  std::vector<TensorDiff> out;
  auto hidden = model->hidden_states(ids, mask);
  for (size_t i = 0; i < hidden.size(); ++i) {
    auto name = "hidden_state_" + std::to_string(i);
    if (ref.contains(name))
      out.push_back({name, masked_max_diff(hidden[i], ref.tensor(name, torch::kFloat), mask)});
  }

  model->zero_grad();
  auto logits = model->forward(ids, mask);
  auto loss = causal_lm_loss(logits, labels);
  loss.backward();
  out.push_back(
      {"logits", masked_max_diff(logits.detach(), ref.tensor("logits", torch::kFloat), mask)});
  out.push_back(
      {"loss", std::abs(loss.item<double>() - ref.tensor("loss", torch::kFloat).item<double>())});

  std::map<std::string, torch::Tensor> params;
  for (auto& [name, p] : hf_named_parameters(all_parts(*model))) params[name] = p;
  for (const auto& name : ref.names()) {
    if (name.rfind("grad.", 0) != 0) continue;
    auto it = params.find(name.substr(5));
    if (it == params.end())
      throw error_at(reference_file, "gradient for unknown parameter '" + name.substr(5) + "'");
    auto expected = ref.tensor(name, torch::kFloat);
    if (!it->second.grad().defined())
      throw error_at(reference_file, "our model computed no gradient for " + name);
    out.push_back({name, (it->second.grad() - expected).abs().max().item<double>()});
  }
  return out;
}

}  // namespace gt
