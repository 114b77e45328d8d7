// See emulator.hpp. Shapes: B batch, T time, C hidden, R rows of a weight matrix.
#include "models/emulator.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "common/error.hpp"
#include "models/llama.hpp"
#include "models/opt.hpp"
#include "models/safetensors.hpp"

namespace gt {
namespace {

constexpr const char* kFormatKey = "gtune.emulator.format";
constexpr const char* kFormatVersion = "1";
constexpr const char* kModelTypeKey = "gtune.model_type";
constexpr const char* kHiddenSizeKey = "gtune.hidden_size";
constexpr const char* kNumLayersKey = "gtune.num_layers";
constexpr const char* kLayersKey = "gtune.emulator.layers";
constexpr const char* kInt8Key = "gtune.emulator.int8";
constexpr const char* kNInKey = "gtune.n_in";
constexpr const char* kNOutKey = "gtune.n_out";
constexpr const char* kScaleSuffix = ".scale";

std::string short_number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", x);
  return buf;
}

std::string join(const std::vector<int64_t>& xs) {
  std::string out;
  for (size_t i = 0; i < xs.size(); ++i) out += (i ? "," : "") + std::to_string(xs[i]);
  return out;
}

// ---- layer choice ----

// m indices evenly spaced over 0..n-1, first and last included when m >= 2 (exact rounding).
std::vector<int64_t> evenly_spaced(int64_t n, int64_t m) {
  if (m == 1) return {0};
  std::vector<int64_t> out;
  for (int64_t j = 0; j < m; ++j) out.push_back((2 * j * (n - 1) + (m - 1)) / (2 * (m - 1)));
  return out;
}

// ---- blocks ----

std::shared_ptr<BlockImpl> make_block(const ModelConfig& cfg, int64_t layer) {
  if (cfg.family == Family::opt) return std::make_shared<OptBlockImpl>(cfg, layer);
  return std::make_shared<LlamaBlockImpl>(cfg, layer);
}

std::map<std::string, torch::Tensor> named_tensors(const torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value();
  for (const auto& b : m.named_buffers()) out[b.key()] = b.value();
  return out;
}

// A fresh block for source layer `layer` holding clones of `src`'s tensors.
std::shared_ptr<BlockImpl> copy_block(const BlockImpl& src, const ModelConfig& cfg, int64_t layer) {
  auto copy = make_block(cfg, layer);
  const auto from = named_tensors(src);
  const auto to = named_tensors(*copy);
  for (const auto& [name, t] : from)
    if (!to.count(name))
      throw Error("backbone layer " + std::to_string(layer) + " has tensor '" + name +
                  "' that a plain block lacks (LoRA on the backbone?): cannot copy it");
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : to) t.set_data(from.at(name).detach().clone());
  return copy;
}

// ---- int8 weights: symmetric, one fp32 scale per output row ----

struct Int8Rows {
  torch::Tensor codes;  // (R, in) int8 in [-127, 127]
  torch::Tensor scale;  // (R) float32, > 0
};

Int8Rows quantize_rows(const torch::Tensor& w) {
  auto x = w.detach().to(torch::kCPU, torch::kFloat).contiguous();
  auto absmax = x.abs().amax(1);
  // An all-zero row gets scale 1 so that it decodes exactly and nothing divides by 0.
  auto scale = torch::where(absmax > 0, absmax / 127.0, torch::ones_like(absmax));
  auto codes = torch::round(x / scale.unsqueeze(1)).clamp(-127, 127).to(torch::kChar);
  return {codes, scale};
}

torch::Tensor dequantize_rows(const torch::Tensor& codes, const torch::Tensor& scale) {
  return codes.to(torch::kFloat) * scale.to(torch::kFloat).unsqueeze(1);
}

bool quantized_in_file(const torch::Tensor& param, bool int8_weights) {
  return int8_weights && param.dim() == 2;
}

std::string tensor_name(size_t block, const std::string& local) {
  return "emulator." + std::to_string(block) + "." + local;
}

// ---- file checks ----

int64_t backbone_blocks(const ModelConfig& cfg, SplitPoints split) {
  return cfg.num_layers - split.n_in - split.n_out;
}

// Throws unless `kept` is non-empty, strictly increasing and inside 0..n-1.
void check_kept(const std::string& path, const std::vector<int64_t>& kept, int64_t n) {
  if (kept.empty()) throw error_at(path, "the emulator keeps no layers");
  for (size_t i = 0; i < kept.size(); ++i) {
    if (kept[i] < 0 || kept[i] >= n)
      throw error_at(path, "kept layer " + std::to_string(kept[i]) + " is outside the " +
                               std::to_string(n) + "-block backbone");
    if (i > 0 && kept[i] <= kept[i - 1])
      throw error_at(path, "kept layers " + join(kept) + " are not strictly increasing");
  }
}

const std::string& meta_value(const SafetensorsFile& f, const std::string& key) {
  auto it = f.metadata().find(key);
  if (it == f.metadata().end()) throw error_at(f.path(), "metadata lacks '" + key + "'");
  return it->second;
}

int64_t parse_int(const std::string& path, const std::string& what, const std::string& text) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size())
    throw error_at(path, what + " is not an integer: '" + text + "'");
  return v;
}

int64_t meta_int(const SafetensorsFile& f, const std::string& key) {
  return parse_int(f.path(), "metadata '" + key + "'", meta_value(f, key));
}

std::vector<int64_t> parse_layers(const SafetensorsFile& f) {
  std::vector<int64_t> out;
  std::stringstream in(meta_value(f, kLayersKey));
  for (std::string item; std::getline(in, item, ',');)
    out.push_back(parse_int(f.path(), "a kept layer in '" + std::string(kLayersKey) + "'", item));
  return out;
}

bool meta_bool(const SafetensorsFile& f, const std::string& key) {
  const auto& v = meta_value(f, key);
  if (v != "true" && v != "false")
    throw error_at(f.path(), "metadata '" + key + "' must be true or false, got '" + v + "'");
  return v == "true";
}

void expect_equal(const SafetensorsFile& f, const std::string& what, const std::string& in_file,
                  const std::string& in_model) {
  if (in_file != in_model)
    throw error_at(f.path(), "emulator was built for " + what + " " + in_file +
                                 ", this model has " + in_model);
}

struct EmulatorHeader {
  SplitPoints split;
  std::vector<int64_t> kept;
  bool int8_weights = false;
};

EmulatorHeader read_header(const SafetensorsFile& f, const ModelConfig& cfg) {
  if (!f.metadata().count(kFormatKey))
    throw error_at(f.path(),
                   "not a gtune emulator (metadata lacks '" + std::string(kFormatKey) + "')");
  if (meta_value(f, kFormatKey) != kFormatVersion)
    throw error_at(f.path(), "emulator format version '" + meta_value(f, kFormatKey) +
                                 "' is not supported (this build reads " + kFormatVersion + ")");
  expect_equal(f, "model type", "'" + meta_value(f, kModelTypeKey) + "'",
               "'" + cfg.model_type + "'");
  expect_equal(f, "hidden size", std::to_string(meta_int(f, kHiddenSizeKey)),
               std::to_string(cfg.hidden_size));
  expect_equal(f, "layer count", std::to_string(meta_int(f, kNumLayersKey)),
               std::to_string(cfg.num_layers));
  EmulatorHeader h;
  h.split = {meta_int(f, kNInKey), meta_int(f, kNOutKey)};
  try {
    check_split_points(cfg, h.split);
  } catch (const Error& e) {
    throw error_at(f.path(), e.what());
  }
  h.kept = parse_layers(f);
  check_kept(f.path(), h.kept, backbone_blocks(cfg, h.split));
  h.int8_weights = meta_bool(f, kInt8Key);
  return h;
}

bool is_floating(StDtype d) {
  return d == StDtype::F64 || d == StDtype::F32 || d == StDtype::F16 || d == StDtype::BF16;
}

const TensorEntry& checked_entry(const SafetensorsFile& f, const std::string& name,
                                 const std::vector<int64_t>& shape) {
  if (!f.contains(name)) throw error_at(f.path(), "missing tensor '" + name + "'");
  const auto& e = f.entry(name);
  if (e.shape != shape)
    throw error_at(f.path(), "tensor '" + name + "' has shape " + shape_string(e.shape) +
                                 ", the model expects " + shape_string(shape));
  return e;
}

void expect_dtype(const SafetensorsFile& f, const TensorEntry& e, bool ok, const char* wanted) {
  if (!ok)
    throw error_at(f.path(), "tensor '" + e.name + "' has dtype " + to_string(e.dtype) +
                                 ", expected " + wanted);
}

torch::Tensor finite_or_throw(const SafetensorsFile& f, const std::string& name, torch::Tensor t) {
  if (!torch::isfinite(t).all().item<bool>())
    throw error_at(f.path(), "tensor '" + name + "' has non-finite values");
  return t;
}

// The fp32 value of one parameter, checked against the model's shape; records the names read.
torch::Tensor read_param(const SafetensorsFile& f, const std::string& name,
                         const std::vector<int64_t>& shape, bool quantized,
                         std::set<std::string>& read) {
  const auto& e = checked_entry(f, name, shape);
  read.insert(name);
  if (!quantized) {
    expect_dtype(f, e, is_floating(e.dtype), "a floating-point dtype (F32, F16, BF16)");
    return finite_or_throw(f, name, f.tensor(name, torch::kFloat));
  }
  expect_dtype(f, e, e.dtype == StDtype::I8, "I8 (an int8 emulator)");
  const auto scale_name = name + kScaleSuffix;
  const auto& s = checked_entry(f, scale_name, {shape[0]});
  read.insert(scale_name);
  expect_dtype(f, s, s.dtype == StDtype::F32, "F32");
  auto scale = finite_or_throw(f, scale_name, f.tensor(scale_name));
  if (!(scale > 0).all().item<bool>())
    throw error_at(f.path(), "tensor '" + scale_name + "' has scales that are not positive");
  return dequantize_rows(f.tensor(name), scale);
}

}  // namespace

std::vector<int64_t> emulator_layers(int64_t n, const EmulatorOptions& o) {
  if (n < 1) throw Error("the backbone has no blocks to build an emulator from");
  if (o.keep_every < 1)
    throw Error("emulator keep_every must be at least 1, got " + std::to_string(o.keep_every));
  if (o.keep_ratio != 0) {
    if (!(o.keep_ratio > 0 && o.keep_ratio <= 1))
      throw Error("emulator keep_ratio must be in (0, 1] (or 0 to use keep_every), got " +
                  short_number(o.keep_ratio));
    const auto m = std::max<int64_t>(1, std::llround(o.keep_ratio * double(n)));
    return evenly_spaced(n, m);
  }
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; i += o.keep_every) out.push_back(i);
  return out;
}

Backbone build_emulator(const Segments& full, const EmulatorOptions& options) {
  const auto& source = full.backbone->blocks;
  std::vector<std::shared_ptr<BlockImpl>> blocks;
  for (auto k : emulator_layers(static_cast<int64_t>(source.size()), options))
    blocks.push_back(copy_block(*source[k], full.cfg, full.split.n_in + k));
  return Backbone(std::move(blocks));
}

void save_emulator(const std::string& path, const Backbone& emulator, const Segments& full,
                   const std::vector<int64_t>& kept, bool int8_weights) {
  const auto& blocks = emulator->blocks;
  if (kept.size() != blocks.size())
    throw error_at(path, std::to_string(kept.size()) + " kept layers for an emulator of " +
                             std::to_string(blocks.size()) + " blocks");
  check_kept(path, kept, static_cast<int64_t>(full.backbone->blocks.size()));
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (size_t i = 0; i < blocks.size(); ++i)
    for (const auto& p : blocks[i]->named_parameters()) {
      const auto name = tensor_name(i, p.key());
      const auto value = p.value().detach();
      if (!quantized_in_file(value, int8_weights)) {
        tensors.emplace_back(name, value);
        continue;
      }
      if (!torch::isfinite(value).all().item<bool>())
        throw error_at(path, "cannot quantize '" + name + "': it has non-finite values");
      auto q = quantize_rows(value);
      tensors.emplace_back(name, q.codes);
      tensors.emplace_back(name + kScaleSuffix, q.scale);
    }
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"},
      {kFormatKey, kFormatVersion},
      {kModelTypeKey, full.cfg.model_type},
      {kHiddenSizeKey, std::to_string(full.cfg.hidden_size)},
      {kNumLayersKey, std::to_string(full.cfg.num_layers)},
      {kLayersKey, join(kept)},
      {kInt8Key, int8_weights ? "true" : "false"},
      {kNInKey, std::to_string(full.split.n_in)},
      {kNOutKey, std::to_string(full.split.n_out)},
  };
  save_safetensors(path, tensors, metadata);
}

LoadedEmulator load_emulator(const std::string& path, const ModelConfig& cfg,
                             torch::ScalarType dtype) {
  SafetensorsFile file(path);
  const auto header = read_header(file, cfg);
  std::set<std::string> read;
  std::vector<std::shared_ptr<BlockImpl>> blocks;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < header.kept.size(); ++i) {
    auto block = make_block(cfg, header.split.n_in + header.kept[i]);
    for (auto& p : block->named_parameters()) {
      auto param = p.value();
      auto value = read_param(file, tensor_name(i, p.key()), param.sizes().vec(),
                              quantized_in_file(param, header.int8_weights), read);
      param.set_data(value.to(dtype));
    }
    blocks.push_back(std::move(block));
  }
  for (const auto& name : file.names())
    if (!read.count(name))
      throw error_at(path, "unexpected tensor '" + name + "' (not a parameter of the " +
                               std::to_string(blocks.size()) + "-block emulator)");
  LoadedEmulator out;
  out.backbone = Backbone(std::move(blocks));
  out.kept = header.kept;
  out.int8_weights = header.int8_weights;
  out.split = header.split;
  return out;
}

}  // namespace gt
