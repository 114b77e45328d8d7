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
#include "config/run_config_checks.hpp"

namespace gt {
using namespace config_detail;
namespace fs = std::filesystem;

namespace config_detail {

void fail(const std::string& where, int line, const std::string& key, const std::string& what) {
  const std::string at = line > 0 ? where + ":" + std::to_string(line) : where;
  throw error_at(at, key.empty() ? what : key + ": " + what);
}

std::string phase_name(size_t index) {
  return "phase[" + std::to_string(index) + "]";
}

}  // namespace config_detail

namespace {

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
  return out + ", [[phase]]";
}

std::string phase_keys() {
  std::string out;
  for (const auto& f : phase_fields()) out += (out.empty() ? "" : ", ") + f.key;
  return out;
}

// Why `key` is no key of a [[phase]] table, with the likeliest key the user meant.
std::string unknown_phase_key(const std::string& key) {
  std::vector<std::string> keys;
  for (const auto& f : phase_fields()) keys.push_back(f.key);
  std::string guess = key == "kind" ? "strategy" : closest(key, keys);
  if (guess.empty())
    for (const auto& f : fields())
      if (f.key == key) {
        guess = f.name();
        break;
      }
  std::string what = "unknown key";
  if (!guess.empty()) what += "; did you mean \"" + guess + "\"?";
  return what + " (keys of [[phase]]: " + phase_keys() + ")";
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
    std::vector<std::string> tables = sections();
    tables.push_back("phase");
    const std::string table = key.empty() ? closest(section, tables) : "";
    std::string guess = !same_key.empty()  ? "\"" + same_key[0] + "\""
                        : !key.empty()     ? "\"" + closest(section + "." + key, names) + "\""
                        : table == "phase" ? "[[phase]]"
                                           : "[" + table + "]";
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
    case ValueType::boolean:
      if (auto* b = n.as_boolean()) return Value(b->get());
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

bool has(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// Relative paths the file set resolve against its directory; see load_run_config.
void resolve_paths(RunConfig& cfg, const std::string& base_dir, const Lines& lines) {
  if (base_dir.empty()) return;
  for (const char* name : {"model.path", "data.path", "data.valid_path", "data.wordnet_dir",
                           "emulator.distill_data", "emulator.work_dir", "attacker.public_data",
                           "attacker.cache_dir", "run.out", "run.checkpoint_dir"}) {
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
    case StrategyKind::gradfree:
      return "gradfree";
    case StrategyKind::offsite:
      return "offsite";
    case StrategyKind::offline:
      return "offline";
    case StrategyKind::privatize:
      return "privatize";
  }
  return "?";
}

StrategyKind parse_strategy_kind(const std::string& name) {
  for (auto kind : {StrategyKind::centralized, StrategyKind::split, StrategyKind::online,
                    StrategyKind::gradfree, StrategyKind::offsite, StrategyKind::offline,
                    StrategyKind::privatize})
    if (name == to_string(kind)) return kind;
  throw Error("strategy.kind: " + toml_literal(name) +
              " is not allowed (allowed: " + strategy_kind_list() + ")");
}

std::vector<PhaseSection> run_plan(const RunConfig& cfg) {
  std::vector<PhaseSection> plan;
  if (cfg.privacy.privatize_steps > 0)
    plan.push_back({StrategyKind::privatize, cfg.privacy.privatize_steps, 0});
  if (!cfg.phases.empty())
    plan.insert(plan.end(), cfg.phases.begin(), cfg.phases.end());
  else
    plan.push_back({cfg.strategy.kind, cfg.training.steps, cfg.training.epochs});
  return plan;
}

bool plan_uses(const RunConfig& cfg, StrategyKind kind) {
  if (cfg.scheduler.budget_bytes > 0 && cfg.scheduler.fallback == kind) return true;
  const auto plan = run_plan(cfg);
  return std::any_of(plan.begin(), plan.end(),
                     [&](const PhaseSection& p) { return p.strategy == kind; });
}

bool operator==(const RunConfig& a, const RunConfig& b) {
  for (const auto& f : fields())
    if (f.read(a) != f.read(b)) return false;
  if (a.phases.size() != b.phases.size()) return false;
  for (size_t i = 0; i < a.phases.size(); ++i)
    for (const auto& f : phase_fields())
      if (f.read_phase(a.phases[i]) != f.read_phase(b.phases[i])) return false;
  return true;
}

RunConfig default_run_config() {
  return RunConfig{};
}

bool same_run_config(const std::string& a, const std::string& b) {
  try {
    return parse_run_config(a, "config.toml", "") == parse_run_config(b, "config.toml", "");
  } catch (const Error&) {
    return false;
  }
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
  // One key's value as the field's type, checked; errors name `name`.
  auto read_value = [&](const Field& f, const toml::node& node, const std::string& name, int line) {
    const auto value = to_value(node, f.type);
    if (!value) fail(where, line, name, wrong_type(f, describe(node)));
    const std::string why = f.check(*value);
    if (!why.empty()) fail(where, line, name, why);
    lines[name] = line;
    return *value;
  };
  for (auto&& [section_key, section_node] : root) {
    const std::string section(section_key.str());
    const int section_line = static_cast<int>(section_key.source().begin.line);
    if (section == "phase") {  // [[phase]] tables, or phase = [{...}, ...]
      const auto* list = section_node.as_array();
      if (!list)
        fail(where, section_line, section,
             "expected [[phase]] tables (an array of tables), got " + describe(section_node));
      if (list->empty())
        fail(where, section_line, section, "expected at least one [[phase]] table");
      for (size_t i = 0; i < list->size(); ++i) {
        const auto& item = *list->get(i);
        const std::string phase = phase_name(i);
        const int phase_line = static_cast<int>(item.source().begin.line);
        if (!item.is_table())
          fail(where, phase_line, phase, "expected a table, got " + describe(item));
        lines[phase] = phase_line;
        PhaseSection p;
        for (auto&& [key, node] : *item.as_table()) {
          const std::string name = phase + "." + std::string(key.str());
          const int line = static_cast<int>(key.source().begin.line);
          const Field* f = find_phase_field(std::string(key.str()));
          if (!f) fail(where, line, name, unknown_phase_key(std::string(key.str())));
          f->write_phase(p, read_value(*f, node, name, line));
        }
        cfg.phases.push_back(p);
      }
      continue;
    }
    if (std::find(sections().begin(), sections().end(), section) == sections().end()) {
      if (section_node.is_table())
        fail(where, section_line, "[" + section + "]", unknown_key(section, ""));
      if (section_node.is_array_of_tables())
        fail(where, section_line, "[[" + section + "]]", unknown_key(section, ""));
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
      f->write(cfg, read_value(*f, node, name, line));
    }
  }
  // Defaults that depend on other keys: the phases say how long and start the plan; epochs
  // replaces steps; keys that do not apply are neutral.
  if (!cfg.phases.empty()) {
    for (const char* name : {"training.steps", "training.epochs"})
      if (lines.count(name) && std::get<int64_t>(find_field(name)->read(cfg)) > 0)
        fail(where, lines[name], name,
             "not used with [[phase]] tables: each phase says how long it runs (remove it)");
    cfg.training.steps = cfg.training.epochs = 0;
    if (!lines.count("strategy.kind")) cfg.strategy.kind = cfg.phases[0].strategy;
  } else if (lines.count("training.epochs") && !lines.count("training.steps")) {
    cfg.training.steps = 0;
  }
  // Until nothing changes: a key made neutral can change what else applies.
  for (bool again = true; again;) {
    again = false;
    for (const auto& f : fields())
      if (!lines.count(f.name()) && !f.applies(cfg) && f.read(cfg) != f.neutral) {
        f.write(cfg, f.neutral);
        again = true;
      }
  }
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

  // phase.<i>.<key> changes one phase of the plan.
  std::optional<size_t> phase;
  const Field* f = nullptr;
  if (name.rfind("phase.", 0) == 0) {
    const auto dot = name.find('.', 6);
    const std::string index = name.substr(6, dot == std::string::npos ? dot : dot - 6);
    const bool numeric =
        !index.empty() && index.size() < 10 &&
        std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (dot == std::string::npos || !numeric)
      fail(where, 0, name,
           "expected phase.<index>.<key>, the index counting from 0, e.g. phase.0.steps=30 "
           "(keys of [[phase]]: " +
               phase_keys() + ")");
    phase = std::stoul(index);
    const std::string key = name.substr(dot + 1);
    const size_t n = cfg.phases.size();
    if (n == 0)
      fail(where, 0, name,
           "the configuration has no [[phase]] tables; add them to the file (overrides change "
           "existing phases)");
    if (*phase >= n)
      fail(where, 0, name,
           n == 1 ? std::string("there is 1 phase (phase.0)")
                  : "there are " + std::to_string(n) + " phases (phase.0 to phase." +
                        std::to_string(n - 1) + ")");
    f = find_phase_field(key);
    if (!f) fail(where, 0, name, unknown_phase_key(key));
  } else {
    f = find_field(name);
    if (!f) {
      const auto dot = name.find('.');
      if (dot == std::string::npos) fail(where, 0, name, unknown_key("", name));
      fail(where, 0, name, unknown_key(name.substr(0, dot), name.substr(dot + 1)));
    }
    if (!cfg.phases.empty() && name == "strategy.kind")
      fail(where, 0, name,
           "the [[phase]] tables name the strategies of this plan; change a phase instead, e.g. "
           "phase.0.strategy=" +
               text);
    if (!cfg.phases.empty() && (name == "training.steps" || name == "training.epochs"))
      fail(where, 0, name,
           "the [[phase]] tables say how long each phase runs; change a phase instead, e.g. "
           "phase.0." +
               name.substr(9) + "=" + text);
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

  // Keep the rules between keys satisfiable one override at a time.
  std::string changed = name;  // the name the fields' conditions know it by
  if (phase) {
    auto& p = cfg.phases[*phase];
    f->write_phase(p, *value);
    if (f->key == "steps" && p.steps > 0) p.epochs = 0;
    if (f->key == "epochs" && p.epochs > 0) p.steps = 0;
    if (f->key == "strategy" && *phase == 0) cfg.strategy.kind = p.strategy;
    changed = "phase[]." + f->key;
  } else {
    f->write(cfg, *value);
    if (name == "training.steps" && cfg.training.steps > 0) cfg.training.epochs = 0;
    if (name == "training.epochs" && cfg.training.epochs > 0) cfg.training.steps = 0;
  }
  // A key made neutral can itself change what applies (privacy.privatize_steps changes the
  // plan): follow the changes until none is left.
  std::vector<std::string> pending{changed};
  while (!pending.empty()) {
    const auto key = pending.back();
    pending.pop_back();
    for (const auto& g : fields())
      if (has(g.when.keys, key) && !g.applies(cfg) && g.read(cfg) != g.neutral) {
        g.write(cfg, g.neutral);
        pending.push_back(g.name());
      }
  }
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
  auto write_phases = [&] {
    for (const auto& p : cfg.phases) {
      out += "\n[[phase]]\n";
      for (const auto& f : phase_fields())
        out += f.key + " = " + toml_literal(f.read_phase(p)) + "\n";
    }
  };
  std::string section;
  for (const auto& f : fields()) {
    if (f.section != section) {
      if (section == phases_after()) write_phases();
      out += "\n[" + (section = f.section) + "]\n";
    }
    out += f.key + " = " + toml_literal(f.read(cfg)) + "\n";
  }
  if (section == phases_after()) write_phases();
  return out;
}

std::vector<ConfigKey> run_config_keys() {
  const RunConfig defaults;
  const PhaseSection default_phase;
  std::vector<ConfigKey> keys;
  auto add_phase_keys = [&] {
    for (const auto& f : phase_fields())
      keys.push_back({"phase[]." + f.key, type_name(f.type),
                      toml_literal(f.read_phase(default_phase)), f.allowed_text(), f.doc});
  };
  std::string section;
  for (const auto& f : fields()) {
    if (f.section != section && section == phases_after()) add_phase_keys();
    section = f.section;
    std::string doc = f.doc;
    if (f.conditional())
      doc += "; only used when " + f.when.text + ", otherwise " + toml_literal(f.neutral);
    keys.push_back(
        {f.name(), type_name(f.type), toml_literal(f.read(defaults)), f.allowed_text(), doc});
  }
  if (section == phases_after()) add_phase_keys();
  return keys;
}

}  // namespace gt
