// See adapter_io.hpp.
#include "models/adapter_io.hpp"

#include <set>

#include "common/error.hpp"
#include "models/safetensors.hpp"

namespace gt {

std::vector<std::pair<std::string, torch::Tensor>> adapter_parameters(const Segments& seg,
                                                                      bool only_trainable) {
  auto parts = seg.input->parts();
  for (const auto* p : seg.output->parts()) parts.push_back(p);
  auto named = hf_named_parameters(parts);
  // The tied head is named only by the embedding; both sit in the adapters.
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& [name, t] : named)
    if (!only_trainable || t.requires_grad()) out.emplace_back(name, t.detach());
  return out;
}

void save_adapters(const std::string& path, const Segments& seg, bool only_trainable,
                   const std::map<std::string, std::string>& metadata) {
  auto params = adapter_parameters(seg, only_trainable);
  if (params.empty())
    throw error_at(path, "nothing to save: the adapters have no trainable parameters");
  auto meta = metadata;
  meta["format"] = "pt";
  meta["gtune.n_in"] = std::to_string(seg.split.n_in);
  meta["gtune.n_out"] = std::to_string(seg.split.n_out);
  save_safetensors(path, params, meta);
}

void load_adapters(const std::string& path, const Segments& seg) {
  SafetensorsFile file(path);
  std::map<std::string, torch::Tensor> params;
  for (auto& [name, t] : adapter_parameters(seg, false)) params[name] = t;
  // Check every tensor before copying any, so a bad file leaves the adapters untouched.
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;  // (parameter, value)
  for (const auto& name : file.names()) {
    auto it = params.find(name);
    if (it == params.end()) {
      const bool lora = name.find(".lora_") != std::string::npos;
      throw error_at(path,
                     "tensor '" + name + "' is not a parameter of these adapters" +
                         (lora ? " (LoRA factors: was the run's model.train \"lora\"?)" : ""));
    }
    auto value = file.tensor(name, it->second.scalar_type());
    if (value.sizes() != it->second.sizes())
      throw error_at(path, "tensor '" + name + "' has shape " + c10::str(value.sizes()) +
                               ", adapters expect " + c10::str(it->second.sizes()));
    copies.emplace_back(it->second, std::move(value));
  }
  torch::NoGradGuard no_grad;
  for (auto& [param, value] : copies) param.copy_(value);
}

}  // namespace gt
