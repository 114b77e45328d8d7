// See hf_export.hpp.
#include "models/hf_export.hpp"

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "common/error.hpp"
#include "models/parts.hpp"

namespace gt {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

bool is_lora_name(const std::string& name) {
  const auto ends = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends(".lora_A") || ends(".lora_B");
}

// A LoRA projection of some part: its HF module path ("model.decoder.layers.0.self_attn.q_proj").
struct LoraSite {
  std::string path;
  const LoraLinearImpl* linear;
};

std::vector<LoraSite> lora_sites(const std::vector<const PartImpl*>& parts) {
  std::vector<LoraSite> out;
  for (const auto* part : parts)
    for (const auto& m : part->named_modules()) {
      const auto* linear = m.value()->as<LoraLinearImpl>();
      if (!linear || !linear->has_lora()) continue;
      auto weight = part->hf_name(m.key() + ".weight");
      out.push_back({weight.substr(0, weight.size() - 7), linear});
    }
  return out;
}

std::vector<const PartImpl*> adapter_parts(const Segments& seg) {
  auto parts = seg.input->parts();
  for (const auto* p : seg.output->parts()) parts.push_back(p);
  return parts;
}

torch::Tensor merged(const LoraLinearImpl& l) {
  return l.weight + l.lora_scale * torch::matmul(l.lora_B, l.lora_A);
}

void write_text(const fs::path& path, const std::string& text) {
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    if (!out.flush()) throw error_at(tmp, "cannot write");
  }
  fs::rename(tmp, path);
}

}  // namespace

std::string hf_dtype_name(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat:
      return "float32";
    case torch::kHalf:
      return "float16";
    case torch::kBFloat16:
      return "bfloat16";
    default:
      throw Error(std::string("no HuggingFace dtype name for ") + c10::toString(dtype));
  }
}

HfTensors merged_weights(const DecoderLMImpl& model, torch::ScalarType dtype) {
  const auto parts = all_parts(model);
  for (const auto* part : parts)
    if (is_hollow(*part))
      throw Error("the model's backbone blocks are not held here: the whole model is needed");
  std::map<const void*, torch::Tensor> merged_by_weight;
  torch::NoGradGuard no_grad;
  for (const auto& site : lora_sites(parts))
    merged_by_weight[site.linear->weight.unsafeGetTensorImpl()] = merged(*site.linear);
  HfTensors out;
  for (const auto& [name, t] : hf_named_parameters(parts)) {
    if (is_lora_name(name)) continue;
    auto it = merged_by_weight.find(t.unsafeGetTensorImpl());
    const auto& value = it == merged_by_weight.end() ? t : it->second;
    out.emplace_back(name, value.detach().to(torch::kCPU, dtype).contiguous());
  }
  return out;
}

HfTensors peft_lora_tensors(const Segments& seg, torch::ScalarType dtype) {
  HfTensors out;
  torch::NoGradGuard no_grad;
  for (const auto& site : lora_sites(adapter_parts(seg))) {
    const auto prefix = "base_model.model." + site.path;
    out.emplace_back(prefix + ".lora_A.weight",
                     site.linear->lora_A.detach().to(torch::kCPU, dtype));
    out.emplace_back(prefix + ".lora_B.weight",
                     site.linear->lora_B.detach().to(torch::kCPU, dtype));
  }
  return out;
}

std::string peft_adapter_config(const Segments& seg, const std::string& base_model) {
  const auto sites = lora_sites(adapter_parts(seg));
  if (sites.empty()) throw Error("the adapters have no LoRA: there is no PEFT adapter to write");
  const auto rank = sites.front().linear->lora_A.size(0);
  const auto alpha = sites.front().linear->lora_scale * double(rank);
  std::set<std::string> targets;
  std::set<int64_t> layers;
  static const std::regex layer_index(R"(\.layers\.(\d+)\.)");
  for (const auto& s : sites) {
    if (s.linear->lora_A.size(0) != rank || s.linear->lora_scale * double(rank) != alpha)
      throw Error("LoRA rank or alpha differ between projections: PEFT keeps one of each");
    targets.insert(s.path.substr(s.path.rfind('.') + 1));
    std::smatch m;
    if (std::regex_search(s.path, m, layer_index)) layers.insert(std::stoll(m[1].str()));
  }
  const json config = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"base_model_name_or_path", base_model},
      {"r", rank},
      {"lora_alpha", alpha},
      {"lora_dropout", 0.0},
      {"target_modules", std::vector<std::string>(targets.begin(), targets.end())},
      {"layers_to_transform", std::vector<int64_t>(layers.begin(), layers.end())},
      {"layers_pattern", nullptr},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"modules_to_save", nullptr},
      {"inference_mode", true},
      {"init_lora_weights", true},
  };
  return config.dump(2) + "\n";
}

void write_model_files(const std::string& source, const std::string& dir, torch::ScalarType dtype) {
  fs::create_directories(dir);
  const auto config_path = fs::path(source) / "config.json";
  std::ifstream in(config_path);
  if (!in) throw error_at(config_path.string(), "cannot read");
  json config;
  try {
    config = json::parse(in);
  } catch (const json::exception& e) {
    throw error_at(config_path.string(), std::string("not JSON: ") + e.what());
  }
  // transformers 5 writes "dtype", earlier ones "torch_dtype": keep whichever is there.
  bool named = false;
  for (const char* key : {"dtype", "torch_dtype"})
    if (config.contains(key)) config[key] = hf_dtype_name(dtype), named = true;
  if (!named) config["torch_dtype"] = hf_dtype_name(dtype);
  write_text(fs::path(dir) / "config.json", config.dump(2) + "\n");
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                           "special_tokens_map.json", "added_tokens.json", "tokenizer.model",
                           "generation_config.json"}) {
    const auto from = fs::path(source) / name;
    if (fs::exists(from))
      fs::copy_file(from, fs::path(dir) / name, fs::copy_options::overwrite_existing);
  }
}

}  // namespace gt
