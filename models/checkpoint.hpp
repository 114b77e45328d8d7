// The weights of a HuggingFace checkpoint directory: a single model.safetensors or a sharded one
// (model.safetensors.index.json + the shards its "weight_map" names), with shape-checked loads.
#pragma once

#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

#include "models/safetensors.hpp"

namespace gt {

class CheckpointReader {
 public:
  // Opens and validates every shard up front; throws gt::Error naming the file at fault.
  explicit CheckpointReader(const std::string& dir);

  const std::string& dir() const { return dir_; }
  std::vector<std::string> names() const;  // sorted, across shards
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  std::vector<int64_t> shape(const std::string& name) const;
  StDtype dtype(const std::string& name) const;  // as stored
  // Loads `name` converted to `dtype`, checking its shape equals `expected_shape`.
  torch::Tensor load(const std::string& name, const std::vector<int64_t>& expected_shape,
                     torch::ScalarType dtype) const;

 private:
  const SafetensorsFile& file_of(const std::string& name) const;

  std::string dir_;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, size_t> where_;  // tensor name -> index into shards_
};

}  // namespace gt
