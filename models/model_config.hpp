// A decoder's architecture as read from a HuggingFace config.json (OPT or LLaMA family).
#pragma once

#include <cstdint>
#include <string>

namespace gt {

enum class Family { opt, llama };

struct ModelConfig {
  Family family = Family::opt;
  std::string model_type;  // as in config.json ("opt", "llama", "mistral", "qwen2")
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  // == num_heads without grouped-query attention
  int64_t head_dim = 0;
  int64_t ffn_dim = 0;  // OPT ffn_dim / LLaMA intermediate_size
  int64_t max_positions = 0;
  bool tie_word_embeddings = true;
  int64_t pad_token_id = -1, bos_token_id = -1, eos_token_id = -1;

  // OPT
  bool do_layer_norm_before = true;  // pre-LN (OPT-1.3B+) vs post-LN (OPT-350m)
  bool remove_final_layer_norm = false;
  int64_t word_embed_proj_dim = 0;  // != hidden_size -> project_in / project_out
  bool enable_bias = true;
  bool layer_norm_elementwise_affine = true;
  std::string activation = "relu";

  // LLaMA
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  double rope_linear_factor = 1.0;  // rope_scaling {type: linear, factor}
  bool attention_bias = false;
  bool mlp_bias = false;
};

// Parses and validates dir/config.json; throws gt::Error naming the file and key.
ModelConfig load_model_config(const std::string& dir);
ModelConfig parse_model_config(const std::string& json_text, const std::string& where);

}  // namespace gt
