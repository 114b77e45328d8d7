// Unit tests for CheckpointReader: single-file and sharded checkpoints, shape checks, bad indexes.
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "models/checkpoint.hpp"
#include "models/safetensors.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/temp_dir.hpp"
#include "tests/test_paths.hpp"

namespace fs = std::filesystem;
using gt::CheckpointReader;

namespace {

using gt::test::TempDir;

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const auto ac = a.contiguous(), bc = b.contiguous();
  const size_t n = ac.numel() * ac.element_size();
  return n == 0 || std::memcmp(ac.data_ptr(), bc.data_ptr(), n) == 0;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string opt_tiny_dir() {
  return gt::test::fixture("hf-reference/opt-tiny-s1");
}

// Splits the opt-tiny weights into two shards + index in `dir` (as transformers' save does).
void write_sharded(const TempDir& dir) {
  gt::SafetensorsFile src(opt_tiny_dir() + "/model.safetensors");
  const auto names = src.names();
  std::vector<std::pair<std::string, torch::Tensor>> shard[2];
  nlohmann::json weight_map = nlohmann::json::object();
  const char* files[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
  for (size_t i = 0; i < names.size(); ++i) {
    const int s = i < names.size() / 2 ? 0 : 1;
    shard[s].emplace_back(names[i], src.tensor(names[i]));
    weight_map[names[i]] = files[s];
  }
  for (int s = 0; s < 2; ++s)
    gt::save_safetensors(dir.file(files[s]), shard[s], {{"format", "pt"}});
  const nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}};
  write_text(dir.file("model.safetensors.index.json"), index.dump(2));
}

}  // namespace

TEST_CASE("checkpoint: single-file fixture loads with shapes from config.json") {
  CheckpointReader ckpt(opt_tiny_dir());
  CHECK(ckpt.dir() == opt_tiny_dir());
  gt::SafetensorsFile file(opt_tiny_dir() + "/model.safetensors");
  CHECK(ckpt.names() == file.names());

  std::ifstream cfg_in(opt_tiny_dir() + "/config.json");
  const auto cfg = nlohmann::json::parse(cfg_in);
  const int64_t ffn = cfg["ffn_dim"], hidden = cfg["hidden_size"];
  const std::string fc1 = "model.decoder.layers.0.fc1.weight";
  CHECK(ckpt.contains(fc1));
  CHECK(ckpt.shape(fc1) == std::vector<int64_t>{ffn, hidden});
  CHECK(ckpt.dtype(fc1) == gt::StDtype::F32);
  const torch::Tensor w = ckpt.load(fc1, {ffn, hidden}, torch::kFloat);
  CHECK(same_bits(w, file.tensor(fc1)));
  CHECK(same_bits(ckpt.load(fc1, {ffn, hidden}, torch::kHalf), file.tensor(fc1).to(torch::kHalf)));
}

TEST_CASE("checkpoint: wrong expected shape names the shard, tensor and both shapes") {
  CheckpointReader ckpt(opt_tiny_dir());
  const std::string fc1 = "model.decoder.layers.0.fc1.weight";
  const auto actual = ckpt.shape(fc1);
  auto wrong = actual;
  wrong[0] *= 2;
  const std::string expected_msg = opt_tiny_dir() + "/model.safetensors: tensor '" + fc1 +
                                   "' has shape " + shape_str(actual) + ", expected " +
                                   shape_str(wrong);
  CHECK_THROWS_WITH_AS(ckpt.load(fc1, wrong, torch::kFloat), expected_msg.c_str(), gt::Error);
}

TEST_CASE("checkpoint: missing tensor names the directory") {
  CheckpointReader ckpt(opt_tiny_dir());
  CHECK_FALSE(ckpt.contains("lm_head.nope"));
  const std::string msg = opt_tiny_dir() + ": checkpoint has no tensor 'lm_head.nope'";
  CHECK_THROWS_WITH_AS(ckpt.load("lm_head.nope", {1}, torch::kFloat), msg.c_str(), gt::Error);
  CHECK_THROWS_WITH_AS(ckpt.shape("lm_head.nope"), doctest::Contains("no tensor 'lm_head.nope'"),
                       gt::Error);
}

TEST_CASE("checkpoint: embedded F16 model loads as F32 like torch's conversion") {
  CheckpointReader ckpt(gt::test::model_dir());
  gt::SafetensorsFile file(gt::test::model_dir() + "/model.safetensors");
  CHECK(!ckpt.names().empty());
  for (const auto& name : ckpt.names()) {
    CHECK(ckpt.dtype(name) == gt::StDtype::F16);
    const torch::Tensor f32 = ckpt.load(name, ckpt.shape(name), torch::kFloat);
    CHECK(same_bits(f32, file.tensor(name).to(torch::kFloat)));
  }
}

TEST_CASE("checkpoint: sharded checkpoint reads identically to the unsharded one") {
  TempDir dir;
  write_sharded(dir);
  CheckpointReader sharded(dir.path.string());
  CheckpointReader single(opt_tiny_dir());
  REQUIRE(sharded.names() == single.names());
  for (const auto& name : single.names()) {
    CHECK(sharded.shape(name) == single.shape(name));
    for (auto dtype : {torch::kFloat, torch::kBFloat16})
      CHECK(same_bits(sharded.load(name, single.shape(name), dtype),
                      single.load(name, single.shape(name), dtype)));
  }
  // Shape errors name the shard that holds the tensor.
  const std::string last = single.names().back();
  CHECK_THROWS_WITH_AS(
      sharded.load(last, {1, 2, 3}, torch::kFloat),
      gt::test::contains("model-00002-of-00002.safetensors: tensor '" + last + "'"), gt::Error);
}

TEST_CASE("checkpoint: directory without weights") {
  TempDir dir;
  CHECK_THROWS_WITH_AS(CheckpointReader{dir.path.string()},
                       doctest::Contains("no model.safetensors or model.safetensors.index.json"),
                       gt::Error);
}

TEST_CASE("checkpoint: index that is not valid JSON") {
  TempDir dir;
  write_text(dir.file("model.safetensors.index.json"), "{\"weight_map\": {");
  CHECK_THROWS_WITH_AS(CheckpointReader{dir.path.string()},
                       doctest::Contains("model.safetensors.index.json: invalid JSON"), gt::Error);
}

TEST_CASE("checkpoint: index without a usable weight_map") {
  TempDir dir;
  const std::string index = dir.file("model.safetensors.index.json");
  write_text(index, R"({"metadata": {}})");
  CHECK_THROWS_WITH_AS(CheckpointReader{dir.path.string()},
                       gt::test::contains(index + ": missing \"weight_map\""), gt::Error);
  write_text(index, R"({"weight_map": []})");
  CHECK_THROWS_WITH_AS(CheckpointReader{dir.path.string()},
                       doctest::Contains("\"weight_map\" is not a JSON object"), gt::Error);
  write_text(index, R"({"weight_map": {"a": 3}})");
  CHECK_THROWS_WITH_AS(CheckpointReader{dir.path.string()},
                       doctest::Contains("weight_map entry for 'a' is not a string"), gt::Error);
  write_text(index, R"({"weight_map": {"a": "../model.safetensors"}})");
  CHECK_THROWS_WITH_AS(CheckpointReader{dir.path.string()},
                       doctest::Contains("not a plain file name"), gt::Error);
}

TEST_CASE("checkpoint: index naming a missing shard") {
  TempDir dir;
  write_sharded(dir);
  fs::remove(dir.path / "model-00002-of-00002.safetensors");
  CHECK_THROWS_WITH_AS(
      CheckpointReader{dir.path.string()},
      gt::test::contains(
          dir.file("model.safetensors.index.json") +
          ": shard 'model-00002-of-00002.safetensors' named in weight_map is missing"),
      gt::Error);
}

TEST_CASE("checkpoint: tensor listed in the index but absent from its shard") {
  TempDir dir;
  write_sharded(dir);
  const std::string index_path = dir.file("model.safetensors.index.json");
  std::ifstream in(index_path);
  auto index = nlohmann::json::parse(in);
  in.close();
  index["weight_map"]["model.decoder.ghost.weight"] = "model-00001-of-00002.safetensors";
  write_text(index_path, index.dump());
  CHECK_THROWS_WITH_AS(CheckpointReader{dir.path.string()},
                       gt::test::contains("model-00001-of-00002.safetensors: tensor "
                                          "'model.decoder.ghost.weight' listed in " +
                                          index_path + " is missing"),
                       gt::Error);
}

TEST_CASE("checkpoint: a malformed shard is reported with the shard's path") {
  TempDir dir;
  write_sharded(dir);
  const std::string shard = dir.file("model-00001-of-00002.safetensors");
  write_text(shard, "tiny");
  CHECK_THROWS_WITH_AS(CheckpointReader{dir.path.string()},
                       gt::test::contains(shard + ": file is 4 bytes"), gt::Error);
}
