// HuggingFace checkpoint directory reader: resolves tensor names to (possibly sharded) safetensors.
#include "models/checkpoint.hpp"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.hpp"
#include "models/safetensors.hpp"

namespace gt {
namespace {

namespace fs = std::filesystem;

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw error_at(path, "cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw error_at(path, std::string("invalid JSON: ") + e.what());
  }
}

}  // namespace

CheckpointReader::CheckpointReader(const std::string& dir) : dir_(dir) {
  const fs::path single = fs::path(dir) / "model.safetensors";
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  std::error_code ec;
  if (!fs::exists(index_path, ec)) {
    if (!fs::exists(single, ec))
      throw error_at(dir, "no model.safetensors or model.safetensors.index.json");
    shards_.emplace_back(single.string());
    for (const auto& name : shards_.back().names()) where_[name] = 0;
    return;
  }

  const std::string index = index_path.string();
  const nlohmann::json j = read_json(index);
  if (!j.is_object() || !j.contains("weight_map")) throw error_at(index, "missing \"weight_map\"");
  const auto& map = j.at("weight_map");
  if (!map.is_object()) throw error_at(index, "\"weight_map\" is not a JSON object");

  std::map<std::string, size_t> shard_index;  // shard file name -> index into shards_
  for (const auto& [name, value] : map.items()) {
    if (!value.is_string())
      throw error_at(index, "weight_map entry for '" + name + "' is not a string");
    const std::string shard = value.get<std::string>();
    // Shards live next to the index; refusing paths keeps a hostile index inside the directory.
    if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos)
      throw error_at(index, "weight_map entry for '" + name + "' names shard '" + shard +
                                "', which is not a plain file name");
    auto it = shard_index.find(shard);
    if (it == shard_index.end()) {
      const fs::path shard_path = fs::path(dir) / shard;
      if (!fs::exists(shard_path, ec))
        throw error_at(index, "shard '" + shard + "' named in weight_map is missing (" +
                                  shard_path.string() + ")");
      shards_.emplace_back(shard_path.string());
      it = shard_index.emplace(shard, shards_.size() - 1).first;
    }
    const SafetensorsFile& file = shards_[it->second];
    if (!file.contains(name))
      throw error_at(file.path(), "tensor '" + name + "' listed in " + index + " is missing");
    where_[name] = it->second;
  }
}

std::vector<std::string> CheckpointReader::names() const {
  std::vector<std::string> out;
  for (const auto& [name, shard] : where_) out.push_back(name);
  return out;  // std::map keeps them sorted
}

const SafetensorsFile& CheckpointReader::file_of(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw error_at(dir_, "checkpoint has no tensor '" + name + "'");
  return shards_[it->second];
}

std::vector<int64_t> CheckpointReader::shape(const std::string& name) const {
  return file_of(name).entry(name).shape;
}

StDtype CheckpointReader::dtype(const std::string& name) const {
  return file_of(name).entry(name).dtype;
}

torch::Tensor CheckpointReader::load(const std::string& name,
                                     const std::vector<int64_t>& expected_shape,
                                     torch::ScalarType dtype) const {
  const SafetensorsFile& file = file_of(name);
  const auto& shape = file.entry(name).shape;
  if (shape != expected_shape)
    throw error_at(file.path(), "tensor '" + name + "' has shape " + shape_string(shape) +
                                    ", expected " + shape_string(expected_shape));
  return file.tensor(name, dtype);
}

}  // namespace gt
