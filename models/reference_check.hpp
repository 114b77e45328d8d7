// Compares our forward pass, loss and gradients with a reference file written by
// HuggingFace transformers (layout of tests/fixtures/hf-reference/*/reference.safetensors).
#pragma once

#include <string>
#include <vector>

namespace gt {

struct TensorDiff {
  std::string name;     // "logits", "loss", "hidden_state_3", "grad.<hf parameter name>"
  double max_abs_diff;  // over positions where attention_mask is 1
};

// Loads the model in fp32, runs the reference's inputs through it with its labels,
// and returns one diff per tensor in the reference. Throws gt::Error for bad files.
std::vector<TensorDiff> compare_with_reference(const std::string& model_dir,
                                               const std::string& reference_file);

}  // namespace gt
