// config.json parsing: the fixtures' configs read back field by field, every rejected
// config names its problem, and load_decoder refuses weights that disagree with the config.
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "common/error.hpp"
#include "models/decoder.hpp"
#include "models/model_config.hpp"
#include "models/parts.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/reference_batch.hpp"
#include "tests/temp_dir.hpp"
#include "tests/test_paths.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using gt::test::fixture_dir;
using gt::test::reference_batch;

json read_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

json opt_json() {
  return read_json(fixture_dir("opt-tiny-s1") + "/config.json");
}
json llama_json() {
  return read_json(fixture_dir("llama-tiny-s1") + "/config.json");
}

gt::ModelConfig parse(const json& j) {
  return gt::parse_model_config(j.dump(), "inline.json");
}

using gt::test::TempDir;

// Fields both families share, compared with what config.json states.
void check_common(const gt::ModelConfig& c, const json& j) {
  CHECK(c.model_type == j.at("model_type").get<std::string>());
  CHECK(c.vocab_size == j.at("vocab_size").get<int64_t>());
  CHECK(c.hidden_size == j.at("hidden_size").get<int64_t>());
  CHECK(c.num_layers == j.at("num_hidden_layers").get<int64_t>());
  CHECK(c.num_heads == j.at("num_attention_heads").get<int64_t>());
  CHECK(c.max_positions == j.at("max_position_embeddings").get<int64_t>());
  CHECK(c.tie_word_embeddings == j.at("tie_word_embeddings").get<bool>());
  CHECK(c.pad_token_id == j.at("pad_token_id").get<int64_t>());
  CHECK(c.bos_token_id == j.at("bos_token_id").get<int64_t>());
  CHECK(c.eos_token_id == j.at("eos_token_id").get<int64_t>());
}

void check_opt(const gt::ModelConfig& c, const json& j) {
  check_common(c, j);
  CHECK(c.family == gt::Family::opt);
  CHECK(c.num_kv_heads == c.num_heads);
  CHECK(c.head_dim ==
        j.at("hidden_size").get<int64_t>() / j.at("num_attention_heads").get<int64_t>());
  CHECK(c.ffn_dim == j.at("ffn_dim").get<int64_t>());
  CHECK(c.do_layer_norm_before == j.at("do_layer_norm_before").get<bool>());
  CHECK(c.remove_final_layer_norm == j.at("_remove_final_layer_norm").get<bool>());
  CHECK(c.word_embed_proj_dim == j.at("word_embed_proj_dim").get<int64_t>());
  CHECK(c.enable_bias == j.at("enable_bias").get<bool>());
  CHECK(c.layer_norm_elementwise_affine == j.at("layer_norm_elementwise_affine").get<bool>());
  CHECK(c.activation == j.at("activation_function").get<std::string>());
}

void check_throws(const json& j, const std::string& fragment) {
  INFO(j.dump());
  CHECK_THROWS_WITH_AS(parse(j), gt::test::contains("inline.json: "), gt::Error);
  CHECK_THROWS_WITH_AS(parse(j), gt::test::contains(fragment), gt::Error);
}

}  // namespace

TEST_CASE("config: the fixtures' config.json files parse to the values they state") {
  for (const auto& dir : {fixture_dir("opt-tiny-s1"), gt::test::model_dir()}) {
    INFO(dir);
    const auto j = read_json(dir + "/config.json");
    check_opt(parse(j), j);
    check_opt(gt::load_model_config(dir), j);
  }
  const auto j = llama_json();
  for (const auto& c : {parse(j), gt::load_model_config(fixture_dir("llama-tiny-s1"))}) {
    check_common(c, j);
    CHECK(c.family == gt::Family::llama);
    CHECK(c.num_kv_heads == j.at("num_key_value_heads").get<int64_t>());
    CHECK(c.num_kv_heads < c.num_heads);  // the fixture exercises grouped-query attention
    CHECK(c.head_dim == j.at("head_dim").get<int64_t>());
    CHECK(c.ffn_dim == j.at("intermediate_size").get<int64_t>());
    CHECK(c.rms_norm_eps == j.at("rms_norm_eps").get<double>());
    CHECK(c.rope_theta == j.at("rope_parameters").at("rope_theta").get<double>());
    CHECK(c.rope_linear_factor == 1.0);
    CHECK(c.attention_bias == j.at("attention_bias").get<bool>());
    CHECK(c.mlp_bias == j.at("mlp_bias").get<bool>());
    CHECK(c.activation == j.at("hidden_act").get<std::string>());
  }
}

TEST_CASE("config: malformed configs are a gt::Error naming the key and the problem") {
  auto j = opt_json();
  j["model_type"] = "gpt2";
  check_throws(j, "unknown model_type 'gpt2'");
  j = opt_json();
  j.erase("model_type");
  check_throws(j, "unknown model_type ''");
  for (const char* key : {"hidden_size", "num_hidden_layers", "ffn_dim", "vocab_size"}) {
    j = opt_json();
    j.erase(key);
    check_throws(j, std::string("missing required key '") + key + "'");
  }
  j = llama_json();
  j.erase("intermediate_size");
  check_throws(j, "missing required key 'intermediate_size'");

  j = opt_json();
  j["num_hidden_layers"] = "4";
  check_throws(j, "key 'num_hidden_layers' must be an integer, got \"4\"");
  j = opt_json();
  j["hidden_size"] = 96.5;
  check_throws(j, "key 'hidden_size' must be an integer");
  j = opt_json();
  j["do_layer_norm_before"] = 1;
  check_throws(j, "key 'do_layer_norm_before' must be true or false");
  j = llama_json();
  j["rms_norm_eps"] = "small";
  check_throws(j, "key 'rms_norm_eps' must be a number");
  j = opt_json();
  j["activation_function"] = 3;
  check_throws(j, "key 'activation_function' must be a string");

  for (const char* key : {"ffn_dim", "vocab_size", "num_attention_heads"}) {
    for (int v : {0, -4}) {
      j = opt_json();
      j[key] = v;
      check_throws(j, std::string("key '") + key + "' must be >= 1, got " + std::to_string(v));
    }
  }
  j = llama_json();
  j["num_key_value_heads"] = 0;
  check_throws(j, "key 'num_key_value_heads' must be >= 1");

  j = opt_json();
  j["num_attention_heads"] = j["hidden_size"].get<int64_t>() + 1;
  check_throws(j, "is not divisible by num_attention_heads");
  j = llama_json();
  j["num_key_value_heads"] = j["num_attention_heads"].get<int64_t>() - 1;
  check_throws(j, "is not a multiple of num_key_value_heads");

  j = opt_json();
  j["activation_function"] = "swish";
  check_throws(j, "unsupported activation_function 'swish'");
  j = llama_json();
  j["hidden_act"] = "gelu";
  check_throws(j, "unsupported hidden_act 'gelu'");

  check_throws(json::array({1, 2}), "expected a JSON object");
  CHECK_THROWS_WITH_AS(gt::parse_model_config("{\"model_type\": ", "inline.json"),
                       gt::test::contains("inline.json: invalid JSON"), gt::Error);
}

TEST_CASE("config: rope scaling: linear from rope_scaling and rope_parameters, others rejected") {
  // transformers < 5: rope_theta at the top, rope_scaling {type, factor}.
  auto j = llama_json();
  j.erase("rope_parameters");
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.5}};
  auto c = parse(j);
  CHECK(c.rope_linear_factor == 2.5);
  CHECK(c.rope_theta == 500000.0);
  // transformers >= 5: everything in rope_parameters {rope_type, factor, rope_theta}.
  j = llama_json();
  j["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 4.0}, {"rope_theta", 20000.0}};
  c = parse(j);
  CHECK(c.rope_linear_factor == 4.0);
  CHECK(c.rope_theta == 20000.0);

  // Linear scaling divides positions: position 2 at factor 2 is position 1 unscaled.
  const auto mask = torch::ones({1, 4}, torch::kLong);
  j = llama_json();
  const auto plain = gt::make_attention_context(parse(j), mask, torch::kFloat);
  j["rope_parameters"]["rope_type"] = "linear";
  j["rope_parameters"]["factor"] = 2.0;
  const auto scaled = gt::make_attention_context(parse(j), mask, torch::kFloat);
  CHECK(torch::allclose(scaled.rope_cos[2], plain.rope_cos[1]));
  CHECK(torch::allclose(scaled.rope_sin[2], plain.rope_sin[1]));
  CHECK_FALSE(torch::allclose(scaled.rope_cos[1], plain.rope_cos[1]));

  for (const char* type : {"yarn", "dynamic", "llama3"}) {
    j = llama_json();
    j["rope_parameters"] = {{"rope_type", type}, {"factor", 4.0}};
    check_throws(j, std::string("unsupported rope scaling type '") + type + "'");
    j = llama_json();
    j.erase("rope_parameters");
    j["rope_scaling"] = {{"type", type}, {"factor", 4.0}};
    check_throws(j, std::string("unsupported rope scaling type '") + type + "'");
  }
  j = llama_json();
  j["rope_parameters"] = {{"rope_type", "linear"}};
  check_throws(j, "linear rope scaling needs a positive 'factor'");
  j["rope_parameters"]["factor"] = 0.0;
  check_throws(j, "linear rope scaling needs a positive 'factor'");
}

TEST_CASE("config: load_model_config on a directory without config.json names the file") {
  TempDir dir;
  const auto missing = (dir.path / "no-such-model").string();
  CHECK_THROWS_WITH_AS(gt::load_model_config(missing), gt::test::contains(missing + "/config.json"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(gt::load_decoder(missing), gt::test::contains(missing + "/config.json"),
                       gt::Error);
}

TEST_CASE("config: load_decoder refuses weights whose shapes disagree with config.json") {
  TempDir dir;
  const auto src = fixture_dir("opt-tiny-s1");
  fs::copy_file(src + "/model.safetensors", dir.path / "model.safetensors");
  auto j = opt_json();
  const auto ffn = j.at("ffn_dim").get<int64_t>(), hidden = j.at("hidden_size").get<int64_t>();
  j["ffn_dim"] = ffn / 2;
  std::ofstream(dir.path / "config.json") << j.dump(2);
  const auto shape = [](int64_t a, int64_t b) {
    return "[" + std::to_string(a) + ", " + std::to_string(b) + "]";
  };
  // The first mismatching tensor in load order is layer 0's fc1.
  const auto msg = "tensor 'model.decoder.layers.0.fc1.weight' has shape " + shape(ffn, hidden) +
                   ", expected " + shape(ffn / 2, hidden);
  CHECK_THROWS_WITH_AS(gt::load_decoder(dir.path.string()), gt::test::contains(msg), gt::Error);

  // The unmodified config loads from the same copy.
  std::ofstream(dir.path / "config.json") << opt_json().dump(2);
  CHECK(gt::load_decoder(dir.path.string())->cfg.ffn_dim == ffn);
}

TEST_CASE("config: load_decoder on a model directory without weights is a gt::Error") {
  TempDir dir;
  std::ofstream(dir.path / "config.json") << opt_json().dump();
  CHECK_THROWS_WITH_AS(gt::load_decoder(dir.path.string()),
                       gt::test::contains(dir.path.string() + ": no model.safetensors"), gt::Error);
}
