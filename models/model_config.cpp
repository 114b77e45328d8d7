// config.json -> ModelConfig, with every key checked for type and range.
#include "models/model_config.hpp"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "common/error.hpp"

namespace gt {
namespace {

using nlohmann::json;

struct Reader {
  const json& j;
  const std::string& where;

  int64_t integer(const char* key, std::optional<int64_t> fallback = std::nullopt,
                  int64_t min = 1) const {
    if (!j.contains(key) || j[key].is_null()) {
      if (fallback) return *fallback;
      throw error_at(where, std::string("missing required key '") + key + "'");
    }
    if (!j[key].is_number_integer())
      throw error_at(where,
                     std::string("key '") + key + "' must be an integer, got " + j[key].dump());
    auto v = j[key].get<int64_t>();
    if (v < min)
      throw error_at(where, std::string("key '") + key + "' must be >= " + std::to_string(min) +
                                ", got " + std::to_string(v));
    return v;
  }
  double number(const char* key, double fallback) const {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    if (!j[key].is_number())
      throw error_at(where,
                     std::string("key '") + key + "' must be a number, got " + j[key].dump());
    return j[key].get<double>();
  }
  bool boolean(const char* key, bool fallback) const {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    if (!j[key].is_boolean())
      throw error_at(where,
                     std::string("key '") + key + "' must be true or false, got " + j[key].dump());
    return j[key].get<bool>();
  }
  std::string string(const char* key, const std::string& fallback) const {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    if (!j[key].is_string())
      throw error_at(where,
                     std::string("key '") + key + "' must be a string, got " + j[key].dump());
    return j[key].get<std::string>();
  }
};

// Token ids may be absent, null or (in some configs) lists; we keep the first.
int64_t token_id(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return -1;
  if (j[key].is_number_integer()) return j[key].get<int64_t>();
  if (j[key].is_array() && !j[key].empty() && j[key][0].is_number_integer())
    return j[key][0].get<int64_t>();
  return -1;
}

void read_opt(const Reader& r, ModelConfig& c) {
  c.hidden_size = r.integer("hidden_size");
  c.num_layers = r.integer("num_hidden_layers");
  c.num_heads = r.integer("num_attention_heads");
  c.num_kv_heads = c.num_heads;
  c.ffn_dim = r.integer("ffn_dim");
  c.max_positions = r.integer("max_position_embeddings");
  c.do_layer_norm_before = r.boolean("do_layer_norm_before", true);
  c.remove_final_layer_norm = r.boolean("_remove_final_layer_norm", false);
  c.word_embed_proj_dim = r.integer("word_embed_proj_dim", c.hidden_size);
  c.enable_bias = r.boolean("enable_bias", true);
  c.layer_norm_elementwise_affine = r.boolean("layer_norm_elementwise_affine", true);
  c.activation = r.string("activation_function", "relu");
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", true);
  if (c.hidden_size % c.num_heads != 0)
    throw error_at(r.where, "hidden_size " + std::to_string(c.hidden_size) +
                                " is not divisible by num_attention_heads " +
                                std::to_string(c.num_heads));
  c.head_dim = c.hidden_size / c.num_heads;
  static const char* known[] = {"relu", "gelu", "gelu_new", "silu"};
  if (std::find(std::begin(known), std::end(known), c.activation) == std::end(known))
    throw error_at(r.where, "unsupported activation_function '" + c.activation +
                                "' (supported: relu, gelu, gelu_new, silu)");
}

void read_rope(const Reader& r, ModelConfig& c) {
  c.rope_theta = r.number("rope_theta", 10000.0);
  // transformers >= 5 nests RoPE settings in "rope_parameters"; older versions use
  // "rope_theta" + "rope_scaling". Both: {rope_type|type, factor, rope_theta}.
  const json* rope = nullptr;
  if (r.j.contains("rope_parameters") && r.j["rope_parameters"].is_object())
    rope = &r.j["rope_parameters"];
  if (r.j.contains("rope_scaling") && r.j["rope_scaling"].is_object()) rope = &r.j["rope_scaling"];
  if (!rope) return;
  if (rope->contains("rope_theta") && (*rope)["rope_theta"].is_number())
    c.rope_theta = (*rope)["rope_theta"].get<double>();
  std::string type = "default";
  for (const char* key : {"rope_type", "type"})
    if (rope->contains(key) && (*rope)[key].is_string()) type = (*rope)[key].get<std::string>();
  if (type == "default") return;
  if (type != "linear")
    throw error_at(r.where,
                   "unsupported rope scaling type '" + type + "' (supported: default, linear)");
  if (!rope->contains("factor") || !(*rope)["factor"].is_number() ||
      (*rope)["factor"].get<double>() <= 0)
    throw error_at(r.where, "linear rope scaling needs a positive 'factor'");
  c.rope_linear_factor = (*rope)["factor"].get<double>();
}

void read_llama(const Reader& r, ModelConfig& c) {
  c.hidden_size = r.integer("hidden_size");
  c.num_layers = r.integer("num_hidden_layers");
  c.num_heads = r.integer("num_attention_heads");
  c.num_kv_heads = r.integer("num_key_value_heads", c.num_heads);
  c.ffn_dim = r.integer("intermediate_size");
  c.max_positions = r.integer("max_position_embeddings", 2048);
  c.head_dim = r.integer("head_dim", c.hidden_size / c.num_heads);
  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
  c.attention_bias = r.boolean("attention_bias", c.model_type == "qwen2");
  c.mlp_bias = r.boolean("mlp_bias", false);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  c.activation = r.string("hidden_act", "silu");
  if (c.activation != "silu")
    throw error_at(r.where, "unsupported hidden_act '" + c.activation + "' (supported: silu)");
  if (c.num_heads % c.num_kv_heads != 0)
    throw error_at(r.where, "num_attention_heads " + std::to_string(c.num_heads) +
                                " is not a multiple of num_key_value_heads " +
                                std::to_string(c.num_kv_heads));
  if (c.head_dim % 2 != 0) throw error_at(r.where, "head_dim must be even for RoPE");
  read_rope(r, c);
}

}  // namespace

ModelConfig parse_model_config(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw error_at(where, std::string("invalid JSON: ") + e.what());
  }
  if (!j.is_object()) throw error_at(where, "expected a JSON object");
  Reader r{j, where};
  ModelConfig c;
  c.model_type = r.string("model_type", "");
  if (c.model_type == "opt") {
    c.family = Family::opt;
    read_opt(r, c);
  } else if (c.model_type == "llama" || c.model_type == "mistral" || c.model_type == "qwen2") {
    c.family = Family::llama;
    read_llama(r, c);
  } else {
    throw error_at(
        where, "unknown model_type '" + c.model_type + "' (supported: opt, llama, mistral, qwen2)");
  }
  c.vocab_size = r.integer("vocab_size");
  c.pad_token_id = token_id(j, "pad_token_id");
  c.bos_token_id = token_id(j, "bos_token_id");
  c.eos_token_id = token_id(j, "eos_token_id");
  return c;
}

ModelConfig load_model_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  std::ifstream in(path);
  if (!in) throw error_at(path, "cannot open (is '" + dir + "' a HuggingFace model directory?)");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_model_config(ss.str(), path);
}

}  // namespace gt
