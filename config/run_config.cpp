// Reading, overriding, validating and writing the run configuration with toml++, driven by the
// field table in field_registry.cpp. Every error names the file (or override), line and key.
#include "config/run_config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "common/error.hpp"
#include "config/field_registry.hpp"

namespace gt {
using namespace config_detail;
namespace fs = std::filesystem;

namespace {

using Lines = std::map<std::string, int>;  // key -> line in the file that sets it

[[noreturn]] void fail(const std::string& where, int line, const std::string& key,
                       const std::string& what) {
  const std::string at = line > 0 ? where + ":" + std::to_string(line) : where;
  throw error_at(at, key.empty() ? what : key + ": " + what);
}

std::string with_article(const std::string& noun) {
  return (noun[0] == 'a' || noun[0] == 'i' ? "an " : "a ") + noun;
}

std::string keys_of(const std::string& section) {
  std::string out;
  for (const auto& f : fields())
    if (f.section == section) out += (out.empty() ? "" : ", ") + f.key;
  return out;
}

std::string section_list() {
  std::string out;
  for (const auto& s : sections()) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Why "section.key" names no field, with the likeliest key the user meant.
std::string unknown_key(const std::string& section, const std::string& key) {
  std::vector<std::string> names, same_key;
  for (const auto& f : fields()) {
    names.push_back(f.name());
    if (f.key == key) same_key.push_back(f.name());
  }
  const bool known_section =
      std::find(sections().begin(), sections().end(), section) != sections().end();
  if (!known_section) {  // a [section] (key ""), a top-level key (section ""), or an override
    std::string guess = !same_key.empty() ? "\"" + same_key[0] + "\""
                        : key.empty()     ? "[" + closest(section, sections()) + "]"
                                          : "\"" + closest(section + "." + key, names) + "\"";
    if (guess.size() == 2) guess.clear();  // closest found nothing
    std::string what = section.empty() ? "keys belong in a section" : "unknown section";
    if (!guess.empty()) what += "; did you mean " + guess + "?";
    return what + " (sections: " + section_list() + ")";
  }
  std::vector<std::string> keys;
  for (const auto& f : fields())
    if (f.section == section) keys.push_back(f.key);
  std::string guess = closest(key, keys);
  if (guess.empty() && !same_key.empty()) guess = same_key[0];
  std::string what = "unknown key";
  if (!guess.empty()) what += "; did you mean \"" + guess + "\"?";
  return what + " (keys of [" + section + "]: " + keys_of(section) + ")";
}

std::string describe(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string (" + toml_literal(std::string(n.as_string()->get())) + ")";
    case toml::node_type::integer:
      return "an integer (" + std::to_string(n.as_integer()->get()) + ")";
    case toml::node_type::floating_point:
      return "a float (" + toml_literal(n.as_floating_point()->get()) + ")";
    case toml::node_type::boolean:
      return n.as_boolean()->get() ? "a boolean (true)" : "a boolean (false)";
    case toml::node_type::array:
      for (const auto& item : *n.as_array())
        if (!item.is_string()) return "an array holding " + describe(item);
      return "a string array";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    default:
      return "nothing";
  }
}

// The node as a value of `type` (integers are accepted as floats), or nullopt.
std::optional<Value> to_value(const toml::node& n, ValueType type) {
  switch (type) {
    case ValueType::string:
      if (auto* s = n.as_string()) return Value(std::string(s->get()));
      break;
    case ValueType::integer:
      if (auto* i = n.as_integer()) return Value(i->get());
      break;
    case ValueType::floating:
      if (auto* d = n.as_floating_point()) return Value(d->get());
      if (auto* i = n.as_integer()) return Value(static_cast<double>(i->get()));
      break;
    case ValueType::string_list:
      if (auto* a = n.as_array()) {
        std::vector<std::string> items;
        for (const auto& item : *a) {
          if (!item.is_string()) return std::nullopt;
          items.emplace_back(item.as_string()->get());
        }
        return Value(items);
      }
      break;
  }
  return std::nullopt;
}

std::string wrong_type(const Field& f, const std::string& got) {
  return "expected " + with_article(type_name(f.type)) + ", got " + got;
}

void validate(const RunConfig& cfg, const std::string& where, const Lines& lines) {
  auto line = [&](const std::string& name) {
    auto it = lines.find(name);
    return it == lines.end() ? 0 : it->second;
  };
  for (const auto& f : fields()) {
    const std::string why = f.check(f.read(cfg));
    if (!why.empty()) fail(where, line(f.name()), f.name(), why);
  }
  for (const auto& f : fields()) {
    if (f.applies(cfg) || f.read(cfg) == f.neutral) continue;
    fail(where, line(f.name()), f.name(),
         "only used when " + f.when_key + " = \"" + f.when_value + "\" (it is " +
             toml_literal(find_field(f.when_key)->read(cfg)) + "); remove it or set it to " +
             toml_literal(f.neutral));
  }
  const auto& t = cfg.training;
  if (t.steps > 0 && t.epochs > 0)
    fail(where, line("training.epochs"), "training.epochs",
         "set either training.steps or training.epochs, not both (steps = " +
             std::to_string(t.steps) + ", epochs = " + std::to_string(t.epochs) + ")");
  if (t.steps == 0 && t.epochs == 0)
    fail(where, line("training.steps"), "training.steps",
         "one of training.steps and training.epochs must be > 0");
  if (cfg.data.kind == "jsonl" && cfg.data.path.empty())
    fail(where, line("data.kind"), "data.path", "required when data.kind = \"jsonl\"");
}

// Relative paths the file set resolve against its directory; see load_run_config.
void resolve_paths(RunConfig& cfg, const std::string& base_dir, const Lines& lines) {
  if (base_dir.empty()) return;
  for (const char* name :
       {"model.path", "data.path", "data.valid_path", "data.wordnet_dir", "run.out"}) {
    const Field& f = *find_field(name);
    const std::string p = std::get<std::string>(f.read(cfg));
    if (!lines.count(name) || p.empty() || fs::path(p).is_absolute()) continue;
    std::string resolved = (fs::path(base_dir) / p).lexically_normal().string();
    if (f.name() == "model.path" && !fs::exists(resolved) && fs::exists(p)) resolved = p;
    f.write(cfg, resolved);
  }
}

}  // namespace

const char* to_string(StrategyKind kind) {
  switch (kind) {
    case StrategyKind::centralized:
      return "centralized";
    case StrategyKind::split:
      return "split";
    case StrategyKind::online:
      return "online";
  }
  return "?";
}

StrategyKind parse_strategy_kind(const std::string& name) {
  for (auto kind : {StrategyKind::centralized, StrategyKind::split, StrategyKind::online})
    if (name == to_string(kind)) return kind;
  throw Error("strategy.kind: \"" + name +
              "\" is not allowed (allowed: centralized, split, online)");
}

bool operator==(const RunConfig& a, const RunConfig& b) {
  for (const auto& f : fields())
    if (f.read(a) != f.read(b)) return false;
  return true;
}

RunConfig default_run_config() {
  return RunConfig{};
}

RunConfig parse_run_config(const std::string& toml_text, const std::string& where,
                           const std::string& base_dir) {
  toml::table root;
  try {
    root = toml::parse(toml_text, where);
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    throw error_at(where + ":" + std::to_string(at.line) + ":" + std::to_string(at.column),
                   "TOML syntax error: " + std::string(e.description()));
  }
  RunConfig cfg;
  cfg.source = where;
  Lines lines;
  for (auto&& [section_key, section_node] : root) {
    const std::string section(section_key.str());
    const int section_line = static_cast<int>(section_key.source().begin.line);
    if (std::find(sections().begin(), sections().end(), section) == sections().end()) {
      if (section_node.is_table())
        fail(where, section_line, "[" + section + "]", unknown_key(section, ""));
      fail(where, section_line, section, unknown_key("", section));
    }
    if (!section_node.is_table())
      fail(where, section_line, section,
           "expected a table [" + section + "], got " + describe(section_node));
    for (auto&& [key, node] : *section_node.as_table()) {
      const std::string name = section + "." + std::string(key.str());
      const int line = static_cast<int>(key.source().begin.line);
      const Field* f = find_field(name);
      if (!f) fail(where, line, name, unknown_key(section, std::string(key.str())));
      const auto value = to_value(node, f->type);
      if (!value) fail(where, line, name, wrong_type(*f, describe(node)));
      const std::string why = f->check(*value);
      if (!why.empty()) fail(where, line, name, why);
      f->write(cfg, *value);
      lines[name] = line;
    }
  }
  // Defaults that depend on other keys: epochs replaces steps; keys of other kinds are neutral.
  if (lines.count("training.epochs") && !lines.count("training.steps")) cfg.training.steps = 0;
  for (const auto& f : fields())
    if (!lines.count(f.name()) && !f.applies(cfg)) f.write(cfg, f.neutral);
  resolve_paths(cfg, base_dir, lines);
  validate(cfg, where, lines);
  return cfg;
}

RunConfig load_run_config(const std::string& path) {
  if (fs::is_directory(path)) throw error_at(path, "is a directory, not a TOML run configuration");
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw error_at(path, std::string("cannot read the run configuration: ") + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  return parse_run_config(text.str(), path, fs::path(path).parent_path().string());
}

void apply_override(RunConfig& cfg, const std::string& assignment) {
  const std::string where = "override \"" + assignment + "\"";
  auto trim = [](std::string s) {
    const auto b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };
  const auto eq = assignment.find('=');
  if (eq == std::string::npos) fail(where, 0, "", "expected section.key=value");
  const std::string name = trim(assignment.substr(0, eq)), text = trim(assignment.substr(eq + 1));
  const Field* f = find_field(name);
  if (!f) {
    const auto dot = name.find('.');
    if (dot == std::string::npos) fail(where, 0, name, unknown_key("", name));
    fail(where, 0, name, unknown_key(name.substr(0, dot), name.substr(dot + 1)));
  }
  if (text.find_first_of("\r\n") != std::string::npos) fail(where, 0, name, "value spans lines");

  // Strings may be written bare, lists as a,b,c; everything else is read as a TOML value.
  std::optional<Value> value;
  const bool quoted = !text.empty() && (text[0] == '"' || text[0] == '\'' || text[0] == '[');
  if (f->type == ValueType::string && !quoted) {
    value = text;
  } else if (f->type == ValueType::string_list && !quoted) {
    std::vector<std::string> items;
    for (size_t start = 0; start <= text.size() && !text.empty();) {
      const auto comma = std::min(text.find(',', start), text.size());
      items.push_back(trim(text.substr(start, comma - start)));
      start = comma + 1;
    }
    value = items;
  } else {
    try {
      const toml::table t = toml::parse("v = " + text);
      value = to_value(*t.get("v"), f->type);
      if (!value) fail(where, 0, name, wrong_type(*f, describe(*t.get("v"))));
    } catch (const toml::parse_error&) {
      fail(where, 0, name, wrong_type(*f, toml_literal(text)));
    }
  }
  const std::string why = f->check(*value);
  if (!why.empty()) fail(where, 0, name, why);
  f->write(cfg, *value);

  // Keep the rules between keys satisfiable one override at a time.
  if (name == "training.steps" && cfg.training.steps > 0) cfg.training.epochs = 0;
  if (name == "training.epochs" && cfg.training.epochs > 0) cfg.training.steps = 0;
  for (const auto& g : fields())
    if (g.when_key == name && !g.applies(cfg)) g.write(cfg, g.neutral);
}

void apply_overrides(RunConfig& cfg, const std::vector<std::string>& assignments) {
  for (const auto& a : assignments) apply_override(cfg, a);
  if (!assignments.empty()) validate(cfg, cfg.source + " with overrides", {});
}

void validate_run_config(const RunConfig& cfg, const std::string& where) {
  validate(cfg, where, {});
}

std::string to_toml(const RunConfig& cfg) {
  std::string source = cfg.source;
  std::replace_if(
      source.begin(), source.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  std::string out = "# gtune run configuration: the effective settings (source: " + source +
                    ").\n# Every key is listed; config/README.md documents them.\n";
  std::string section;
  for (const auto& f : fields()) {
    if (f.section != section) out += "\n[" + (section = f.section) + "]\n";
    out += f.key + " = " + toml_literal(f.read(cfg)) + "\n";
  }
  return out;
}

std::vector<ConfigKey> run_config_keys() {
  const RunConfig defaults;
  std::vector<ConfigKey> keys;
  for (const auto& f : fields()) {
    std::string doc = f.doc;
    if (!f.when_key.empty())
      doc += "; only used when " + f.when_key + " = \"" + f.when_value + "\", otherwise " +
             toml_literal(f.neutral);
    keys.push_back(
        {f.name(), type_name(f.type), toml_literal(f.read(defaults)), f.allowed_text(), doc});
  }
  return keys;
}

}  // namespace gt
