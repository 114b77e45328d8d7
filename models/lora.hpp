// Which adapter parameters train: all of them, only LoRA factors, or none.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace gt {

struct LoraOptions {
  int64_t rank = 8;
  double alpha = 16.0;
  std::vector<std::string> targets{"q_proj", "v_proj"};  // projection names, as in PEFT
};

enum class TrainMode { full, lora, frozen };

// Adds LoRA factors to every projection of `module` named in options.targets.
// Returns how many layers got LoRA; throws gt::Error for a target name that matches no projection.
int64_t apply_lora(torch::nn::Module& module, const LoraOptions& options);

// full: every parameter trains; lora: only lora_A/lora_B; frozen: nothing.
void set_trainable(torch::nn::Module& module, TrainMode mode);

TrainMode parse_train_mode(const std::string& name);  // "full" | "lora" | "frozen"

}  // namespace gt
