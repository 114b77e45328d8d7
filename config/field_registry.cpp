// The run configuration's field table: every key with its type, default (the struct's),
// allowed values and documentation. Parsing, overrides, validation and to_toml all read it.
#include "config/field_registry.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

namespace gt::config_detail {
namespace {

template <class T>
ValueType type_of();
template <>
ValueType type_of<std::string>() {
  return ValueType::string;
}
template <>
ValueType type_of<int64_t>() {
  return ValueType::integer;
}
template <>
ValueType type_of<uint64_t>() {
  return ValueType::integer;
}
template <>
ValueType type_of<double>() {
  return ValueType::floating;
}
template <>
ValueType type_of<std::vector<std::string>>() {
  return ValueType::string_list;
}

template <class T>
Value to_value(const T& v) {
  if constexpr (std::is_same_v<T, uint64_t>)
    return static_cast<int64_t>(v);
  else
    return v;
}
template <class T>
T from_value(const Value& v) {
  if constexpr (std::is_same_v<T, uint64_t>)
    return static_cast<uint64_t>(std::get<int64_t>(v));
  else
    return std::get<T>(v);
}

// model("path", &ModelSection::path, "doc") -> the Field "model.path".
template <class S>
struct SectionRef {
  const char* name;
  S RunConfig::*section;
  template <class T>
  Field operator()(const char* key, T S::*member, const char* doc) const {
    Field f;
    f.section = name;
    f.key = key;
    f.type = type_of<T>();
    f.doc = doc;
    auto sec = section;
    f.write = [sec, member](RunConfig& c, const Value& v) { (c.*sec).*member = from_value<T>(v); };
    f.read = [sec, member](const RunConfig& c) { return to_value((c.*sec).*member); };
    return f;
  }
};

std::string format_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string not_empty(const Value& v) {
  return std::get<std::string>(v).empty() ? "must not be empty" : "";
}

std::string name_chars(const Value& v) {
  const auto& s = std::get<std::string>(v);
  const bool ok = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
  return ok ? "" : toml_literal(v) + " is not allowed (allowed: letters, digits, '.', '_', '-')";
}

std::string unique_items(const Value& v) {
  const auto& items = std::get<std::vector<std::string>>(v);
  if (items.empty()) return "must name at least one projection";
  std::set<std::string> seen;
  for (const auto& s : items)
    if (!seen.insert(s).second) return "\"" + s + "\" is listed twice";
  return "";
}

std::vector<Field> make_fields() {
  const SectionRef<ModelSection> model{"model", &RunConfig::model};
  const SectionRef<StrategySection> strategy{"strategy", &RunConfig::strategy};
  const SectionRef<OptimizerSection> optimizer{"optimizer", &RunConfig::optimizer};
  const SectionRef<TrainingSection> training{"training", &RunConfig::training};
  const SectionRef<DataSection> data{"data", &RunConfig::data};
  const SectionRef<RunSection> run{"run", &RunConfig::run};
  const std::vector<std::string> quant{"none", "int8", "int4"};
  const std::string online = "online";

  Field kind;
  kind.section = "strategy";
  kind.key = "kind";
  kind.doc =
      "the design: raw token ids to the server, vanilla split learning, or split with "
      "quantized wire tensors and a distance-correlation penalty (docs/DESIGN.md 2)";
  kind.write = [](RunConfig& c, const Value& v) {
    c.strategy.kind = parse_strategy_kind(std::get<std::string>(v));
  };
  kind.read = [](const RunConfig& c) { return Value(std::string(to_string(c.strategy.kind))); };
  kind.one_of({"centralized", "split", "online"});

  return {
      model("path", &ModelSection::path,
            "HuggingFace checkpoint directory (config.json, safetensors, vocab.json, merges.txt)")
          .check_with(not_empty, "not empty"),
      model("dtype", &ModelSection::dtype, "dtype the model computes in")
          .one_of({"float32", "bfloat16"}),
      model("n_in", &ModelSection::n_in,
            "decoder layers in the client's input adapter (after the embeddings)")
          .at_least(0),
      model("n_out", &ModelSection::n_out,
            "decoder layers in the client's output adapter (before the final norm and LM head)")
          .at_least(0),
      model("train", &ModelSection::train, "adapter training: every weight, or LoRA factors only")
          .one_of({"full", "lora"}),
      model("lora_rank", &ModelSection::lora_rank, "LoRA rank (train = lora)").above(0),
      model("lora_alpha", &ModelSection::lora_alpha, "LoRA alpha; scale = alpha / rank").above(0),
      model("lora_targets", &ModelSection::lora_targets,
            "projections that get LoRA factors (train = lora); OPT has q/k/v/out_proj, fc1, fc2; "
            "LLaMA has q/k/v/o_proj, gate/up/down_proj")
          .one_of({"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "o_proj", "gate_proj",
                   "up_proj", "down_proj"})
          .check_with(unique_items, "no duplicates"),
      kind,
      strategy("quantize_a1", &StrategySection::quantize_a1,
               "wire format of the input adapter's activations a1 (client -> server)")
          .one_of(quant)
          .only_when("strategy.kind", online, std::string("none")),
      strategy("quantize_a2", &StrategySection::quantize_a2,
               "wire format of the backbone's activations a2 (server -> client)")
          .one_of(quant)
          .only_when("strategy.kind", online, std::string("none")),
      strategy("quantize_g2", &StrategySection::quantize_g2,
               "wire format of the gradient g2 w.r.t. a2 (client -> server)")
          .one_of(quant)
          .only_when("strategy.kind", online, std::string("none")),
      strategy("quantize_g1", &StrategySection::quantize_g1,
               "wire format of the gradient g1 w.r.t. a1 (server -> client)")
          .one_of(quant)
          .only_when("strategy.kind", online, std::string("none")),
      strategy("dcor_lambda", &StrategySection::dcor_lambda,
               "weight of the distance correlation between input embeddings and a1 in the loss")
          .at_least(0)
          .only_when("strategy.kind", online, 0.0),
      optimizer("name", &OptimizerSection::name, "optimizer of the adapters")
          .one_of({"adamw", "sgd"}),
      optimizer("lr", &OptimizerSection::lr, "learning rate").above(0),
      optimizer("weight_decay", &OptimizerSection::weight_decay, "decoupled (adamw) or L2 (sgd)")
          .at_least(0),
      optimizer("momentum", &OptimizerSection::momentum, "SGD momentum")
          .at_least(0)
          .below(1)
          .only_when("optimizer.name", "sgd", 0.0),
      optimizer("grad_clip", &OptimizerSection::grad_clip,
                "largest global gradient norm; 0 = no clipping")
          .at_least(0),
      training("steps", &TrainingSection::steps,
               "optimizer steps; exactly one of steps / epochs is > 0")
          .at_least(0),
      training("epochs", &TrainingSection::epochs,
               "passes over the training set; setting it makes steps default to 0")
          .at_least(0),
      training("batch", &TrainingSection::batch, "sequences per step").above(0),
      training("max_len", &TrainingSection::max_len, "tokens per sequence (longer ones are cut)")
          .at_least(2),
      training("seed", &TrainingSection::seed, "seed of initialisation and data order").at_least(0),
      training("eval_every", &TrainingSection::eval_every,
               "steps between evaluations; 0 = only before and after training")
          .at_least(0),
      data("kind", &DataSection::kind,
           "the embedded WordNet definitions task, or your own JSONL file")
          .one_of({"wordnet", "jsonl"}),
      data("path", &DataSection::path, "JSONL training file (required for kind = jsonl)")
          .only_when("data.kind", "jsonl", std::string()),
      data("valid_path", &DataSection::valid_path,
           "JSONL validation file; \"\" = hold out valid_fraction of path")
          .only_when("data.kind", "jsonl", std::string()),
      data("wordnet_dir", &DataSection::wordnet_dir,
           "WordNet database directory, Debian wordnet-base (kind = wordnet)")
          .check_with(not_empty, "not empty"),
      data("valid_fraction", &DataSection::valid_fraction,
           "share of examples held out for validation when there is no valid_path")
          .above(0)
          .below(1),
      data("train_examples", &DataSection::train_examples, "training examples kept; 0 = all")
          .at_least(0),
      data("valid_examples", &DataSection::valid_examples, "validation examples kept; 0 = all")
          .at_least(0),
      run("name", &RunSection::name, "name of the run in logs, metrics and results")
          .check_with(name_chars, "letters, digits, '.', '_', '-'"),
      run("out", &RunSection::out,
          "output directory (results.json, adapters); \"\" = write nothing"),
      run("threads", &RunSection::threads, "compute threads; 0 = LibTorch's default").at_least(0),
  };
}

}  // namespace

const char* type_name(ValueType type) {
  switch (type) {
    case ValueType::string:
      return "string";
    case ValueType::integer:
      return "integer";
    case ValueType::floating:
      return "float";
    case ValueType::string_list:
      return "string array";
  }
  return "?";
}

std::string toml_literal(const Value& value) {
  if (auto* i = std::get_if<int64_t>(&value)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&value)) {
    if (std::isnan(*d)) return "nan";
    if (std::isinf(*d)) return *d > 0 ? "inf" : "-inf";
    char buf[64];
    for (int precision = 1; precision <= 17; ++precision) {  // shortest text that reads back
      std::snprintf(buf, sizeof buf, "%.*g", precision, *d);
      if (std::strtod(buf, nullptr) == *d) break;
    }
    std::string s = buf;
    if (s.find_first_of(".e") == std::string::npos) s += ".0";
    return s;
  }
  auto quote = [](const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\t') {
        out += "\\t";
      } else if (c < 0x20 || c == 0x7f) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += static_cast<char>(c);
      }
    }
    return out + "\"";
  };
  if (auto* s = std::get_if<std::string>(&value)) return quote(*s);
  std::string out = "[";
  for (const auto& s : std::get<std::vector<std::string>>(value))
    out += (out.size() > 1 ? ", " : "") + quote(s);
  return out + "]";
}

std::string Field::allowed_text() const {
  std::vector<std::string> parts;
  if (!one_of_values.empty()) parts.push_back(join(one_of_values));
  if (std::isfinite(lo)) parts.push_back((lo_open ? "> " : ">= ") + format_number(lo));
  if (std::isfinite(hi)) parts.push_back((hi_open ? "< " : "<= ") + format_number(hi));
  if (!extra_text.empty() && one_of_values.empty()) parts.push_back(extra_text);
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : " and ") + p;
  return out;
}

std::string Field::check(const Value& v) const {
  const std::string refused = " is not allowed (allowed: " + allowed_text() + ")";
  if (!one_of_values.empty()) {
    auto allowed = [&](const std::string& s) {
      return std::find(one_of_values.begin(), one_of_values.end(), s) != one_of_values.end();
    };
    if (auto* s = std::get_if<std::string>(&v); s && !allowed(*s)) return toml_literal(v) + refused;
    if (auto* list = std::get_if<std::vector<std::string>>(&v))
      for (const auto& s : *list)
        if (!allowed(s)) return toml_literal(s) + refused;
  }
  const bool numeric = std::holds_alternative<int64_t>(v) || std::holds_alternative<double>(v);
  if (numeric) {
    const double x = std::holds_alternative<int64_t>(v) ? static_cast<double>(std::get<int64_t>(v))
                                                        : std::get<double>(v);
    const bool ok =
        std::isfinite(x) && (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
    if (!ok) return toml_literal(v) + " is out of range (allowed: " + allowed_text() + ")";
  }
  return extra ? extra(v) : "";
}

bool Field::applies(const RunConfig& cfg) const {
  if (when_key.empty()) return true;
  return std::get<std::string>(find_field(when_key)->read(cfg)) == when_value;
}

Field& Field::one_of(std::vector<std::string> values) {
  one_of_values = std::move(values);
  return *this;
}
Field& Field::at_least(double v) {
  lo = v;
  lo_open = false;
  return *this;
}
Field& Field::above(double v) {
  lo = v;
  lo_open = true;
  return *this;
}
Field& Field::below(double v) {
  hi = v;
  hi_open = true;
  return *this;
}
Field& Field::check_with(std::function<std::string(const Value&)> fn, std::string text) {
  extra = std::move(fn);
  extra_text = std::move(text);
  return *this;
}
Field& Field::only_when(std::string key, std::string value, Value neutral_value) {
  when_key = std::move(key);
  when_value = std::move(value);
  neutral = std::move(neutral_value);
  return *this;
}

const std::vector<Field>& fields() {
  static const std::vector<Field> table = make_fields();
  return table;
}

const std::vector<std::string>& sections() {
  static const std::vector<std::string> names{"model",    "strategy", "optimizer",
                                              "training", "data",     "run"};
  return names;
}

const Field* find_field(const std::string& name) {
  for (const auto& f : fields())
    if (f.name() == name) return &f;
  return nullptr;
}

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        const size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diag = up;
      }
    }
    return row[b.size()];
  };
  std::string best;
  size_t best_d = 3;
  for (const auto& c : candidates) {
    const size_t d = distance(word, c);
    if (d < best_d) best = c, best_d = d;
  }
  return best;
}

}  // namespace gt::config_detail
