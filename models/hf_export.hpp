// A tuned model out of GuardedTuning, in the layouts HuggingFace tools read:
// - the adapters alone, under transformers' tensor names (for a base model's load_state_dict),
//   and their LoRA factors as a PEFT adapter (adapter_config.json + adapter_model.safetensors);
// - the whole model with the adapters in place and LoRA merged into its weights: a checkpoint
//   directory (config.json, model.safetensors, tokenizer files) like the one it came from.
#pragma once

#include <torch/types.h>

#include <string>
#include <utility>
#include <vector>

#include "models/decoder.hpp"
#include "models/segments.hpp"

namespace gt {

using HfTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Every weight of `model` under its HF name (tied ones once), each LoRA pair merged into its
// weight (W + alpha / r * B A) and the factors left out; converted to `dtype`.
HfTensors merged_weights(const DecoderLMImpl& model, torch::ScalarType dtype);

// The LoRA of the adapters as PEFT saves it: "base_model.model.<HF name>.lora_A.weight" (r, in)
// and ".lora_B.weight" (out, r). Empty when the adapters have no LoRA.
HfTensors peft_lora_tensors(const Segments& seg, torch::ScalarType dtype);
// PEFT's adapter_config.json for those tensors: rank, alpha, target modules and the layers
// that carry them (layers_to_transform), read from the model itself.
std::string peft_adapter_config(const Segments& seg, const std::string& base_model);

// Writes `model`'s config.json (its dtype entry set to `dtype`) and the tokenizer and generation
// files of the checkpoint directory `source` into `dir` (created if missing).
void write_model_files(const std::string& source, const std::string& dir, torch::ScalarType dtype);

// "float32", "float16", "bfloat16": as config.json names a dtype; throws gt::Error for others.
std::string hf_dtype_name(torch::ScalarType dtype);

}  // namespace gt
