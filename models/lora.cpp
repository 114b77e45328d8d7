// LoRA insertion and trainability switches over a module tree.
#include "models/lora.hpp"

#include <set>

#include "common/error.hpp"
#include "models/parts.hpp"

namespace gt {
namespace {
std::string last_component(const std::string& name) {
  auto dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}
}  // namespace

int64_t apply_lora(torch::nn::Module& module, const LoraOptions& options) {
  if (options.rank <= 0)
    throw Error("lora rank must be positive, got " + std::to_string(options.rank));
  static const std::set<std::string> known{"q_proj",  "k_proj",   "v_proj", "out_proj",
                                           "fc1",     "fc2",      "o_proj", "gate_proj",
                                           "up_proj", "down_proj"};
  for (const auto& target : options.targets)
    if (!known.count(target))
      throw Error("lora target '" + target +
                  "' is not a projection (OPT: q_proj k_proj v_proj out_proj fc1 fc2; " +
                  "LLaMA: q_proj k_proj v_proj o_proj gate_proj up_proj down_proj)");
  const std::set<std::string> wanted(options.targets.begin(), options.targets.end());
  int64_t count = 0;
  for (auto& item : module.named_modules()) {
    auto* linear = item.value()->as<LoraLinearImpl>();
    if (!linear) continue;
    auto name = last_component(item.key());
    if (!wanted.count(name)) continue;
    linear->enable_lora(options.rank, options.alpha);
    ++count;
  }
  return count;
}

void set_trainable(torch::nn::Module& module, TrainMode mode) {
  for (auto& p : module.named_parameters()) {
    const auto name = last_component(p.key());
    const bool is_lora = name == "lora_A" || name == "lora_B";
    p.value().set_requires_grad(mode == TrainMode::full || (mode == TrainMode::lora && is_lora));
  }
}

TrainMode parse_train_mode(const std::string& name) {
  if (name == "full") return TrainMode::full;
  if (name == "lora") return TrainMode::lora;
  if (name == "frozen") return TrainMode::frozen;
  throw Error("train mode '" + name + "' unknown (allowed: full, lora, frozen)");
}

}  // namespace gt
