// The HuggingFace fixtures' directories and the inputs transformers saw
// (3 x 10: row 0 unpadded, row 1 right-padded, row 2 left-padded).
#pragma once

#include <string>

#include "models/safetensors.hpp"
#include "tests/test_paths.hpp"

namespace gt::test {

inline std::string fixture_dir(const std::string& name) {
  return fixture("hf-reference/" + name);
}

struct Batch {
  torch::Tensor ids, mask, labels;
};

inline Batch reference_batch(const std::string& name) {
  SafetensorsFile f(fixture_dir(name) + "/reference.safetensors");
  return {f.tensor("input_ids", torch::kLong), f.tensor("attention_mask", torch::kLong),
          f.tensor("labels", torch::kLong)};
}

}  // namespace gt::test
