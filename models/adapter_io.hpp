// Adapter weights on disk: safetensors with HuggingFace parameter names, so the
// same file can be plugged into a full model or inspected with standard tools.
#pragma once

#include <map>
#include <string>

#include "models/segments.hpp"

namespace gt {

// The input and output adapters' parameters (each once), with their HF names.
std::vector<std::pair<std::string, torch::Tensor>> adapter_parameters(const Segments& seg,
                                                                      bool only_trainable);

void save_adapters(const std::string& path, const Segments& seg, bool only_trainable = true,
                   const std::map<std::string, std::string>& metadata = {});

// Copies every tensor of the file into the adapter parameter of the same name;
// throws gt::Error for a name the adapters lack or a shape that differs.
void load_adapters(const std::string& path, const Segments& seg);

}  // namespace gt
