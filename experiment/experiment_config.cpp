// See experiment_config.hpp. Parsed with toml++; every error names file:line and the key.
#include "experiment/experiment_config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "common/error.hpp"
#include "data/wordnet_tasks.hpp"

namespace gt {
namespace {

std::string at(const std::string& where, const toml::node& node) {
  const auto line = node.source().begin.line;
  return line > 0 ? where + ":" + std::to_string(line) : where;
}

[[noreturn]] void fail(const std::string& where, const toml::node& node, const std::string& key,
                       const std::string& what) {
  throw error_at(at(where, node), key + ": " + what);
}

std::string read_string(const std::string& where, const toml::node& node, const std::string& key) {
  if (const auto* s = node.as_string()) return s->get();
  fail(where, node, key, "expected a string");
}

std::vector<std::string> read_strings(const std::string& where, const toml::node& node,
                                      const std::string& key) {
  const auto* array = node.as_array();
  if (!array) fail(where, node, key, "expected an array of strings");
  std::vector<std::string> out;
  for (const auto& item : *array) out.push_back(read_string(where, item, key));
  return out;
}

void check_keys(const std::string& where, const toml::table& table, const std::string& name,
                const std::set<std::string>& known) {
  for (const auto& [key, node] : table)
    if (!known.count(std::string(key.str()))) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      fail(where, node, name + "." + std::string(key.str()), "unknown key (keys: " + list + ")");
    }
}

bool good_name(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

void read_experiment(ExperimentConfig& cfg, const std::string& where, const toml::table& t,
                     const std::string& base_dir) {
  check_keys(where, t, "experiment",
             {"base", "set", "tasks", "seeds", "baseline", "undefended", "quick"});
  if (const auto* n = t.get("base")) {
    cfg.base = read_string(where, *n, "experiment.base");
    if (!base_dir.empty() && std::filesystem::path(cfg.base).is_relative())
      cfg.base = (std::filesystem::path(base_dir) / cfg.base).lexically_normal().string();
  }
  if (const auto* n = t.get("set")) cfg.sets = read_strings(where, *n, "experiment.set");
  if (const auto* n = t.get("quick")) cfg.quick = read_strings(where, *n, "experiment.quick");
  if (const auto* n = t.get("baseline"))
    cfg.baseline = read_string(where, *n, "experiment.baseline");
  if (const auto* n = t.get("undefended"))
    cfg.undefended = read_string(where, *n, "experiment.undefended");
  if (const auto* n = t.get("tasks")) {
    cfg.tasks = read_strings(where, *n, "experiment.tasks");
    const auto& names = wordnet_mc_task_names();
    std::set<std::string> seen;
    for (const auto& task : cfg.tasks) {
      if (task != "all" && std::find(names.begin(), names.end(), task) == names.end()) {
        std::string list = "all";
        for (const auto& name : names) list += ", " + name;
        fail(where, *n, "experiment.tasks",
             "unknown task \"" + task + "\" (allowed: " + list + ")");
      }
      if (!seen.insert(task).second)
        fail(where, *n, "experiment.tasks", "\"" + task + "\" is listed twice");
    }
    if (cfg.tasks.empty()) fail(where, *n, "experiment.tasks", "needs at least one task");
  }
  if (const auto* n = t.get("seeds")) {
    const auto* array = n->as_array();
    if (!array) fail(where, *n, "experiment.seeds", "expected an array of integers");
    cfg.seeds.clear();
    for (const auto& item : *array) {
      const auto* v = item.as_integer();
      if (!v || v->get() < 0) fail(where, item, "experiment.seeds", "expected integers >= 0");
      cfg.seeds.push_back(uint64_t(v->get()));
    }
    if (cfg.seeds.empty()) fail(where, *n, "experiment.seeds", "needs at least one seed");
  }
}

ExperimentDesign read_design(const std::string& where, const toml::node& node, size_t index) {
  const auto name = "design[" + std::to_string(index) + "]";
  const auto* t = node.as_table();
  if (!t) fail(where, node, name, "expected a table ([[design]])");
  check_keys(where, *t, name, {"name", "set", "quick"});
  ExperimentDesign d;
  const auto* n = t->get("name");
  if (!n) fail(where, node, name, "needs a name");
  d.name = read_string(where, *n, name + ".name");
  if (!good_name(d.name))
    fail(where, *n, name + ".name", "\"" + d.name + "\": use letters, digits, '.', '_', '-'");
  if (const auto* s = t->get("set")) d.sets = read_strings(where, *s, name + ".set");
  if (const auto* q = t->get("quick")) d.quick = read_strings(where, *q, name + ".quick");
  return d;
}

// A sweep's value as the text its override sets: strings as written, numbers as TOML writes them.
std::string read_value(const std::string& where, const toml::node& node, const std::string& key) {
  if (const auto* s = node.as_string()) return s->get();
  if (const auto* i = node.as_integer()) return std::to_string(i->get());
  if (const auto* f = node.as_floating_point()) {
    std::ostringstream out;
    out << f->get();
    return out.str();
  }
  if (const auto* b = node.as_boolean()) return b->get() ? "true" : "false";
  fail(where, node, key, "expected strings, numbers or booleans");
}

std::vector<ExperimentDesign> read_sweep(const std::string& where, const toml::node& node,
                                         size_t index) {
  const auto name = "sweep[" + std::to_string(index) + "]";
  const auto* t = node.as_table();
  if (!t) fail(where, node, name, "expected a table ([[sweep]])");
  check_keys(where, *t, name, {"name", "key", "values", "set", "quick"});
  const auto* n = t->get("name");
  const auto* k = t->get("key");
  const auto* v = t->get("values");
  if (!n || !k || !v) fail(where, node, name, "needs a name, a key and values");
  ExperimentDesign proto;
  proto.sweep = read_string(where, *n, name + ".name");
  if (!good_name(proto.sweep))
    fail(where, *n, name + ".name", "\"" + proto.sweep + "\": use letters, digits, '.', '_', '-'");
  proto.sweep_key = read_string(where, *k, name + ".key");
  if (proto.sweep_key.find('.') == std::string::npos)
    fail(where, *k, name + ".key", "\"" + proto.sweep_key + "\": expected section.key");
  if (const auto* s = t->get("set")) proto.sets = read_strings(where, *s, name + ".set");
  if (const auto* q = t->get("quick")) proto.quick = read_strings(where, *q, name + ".quick");
  const auto* array = v->as_array();
  if (!array || array->empty()) fail(where, *v, name + ".values", "expected a non-empty array");
  std::vector<ExperimentDesign> designs;
  for (const auto& item : *array) {
    auto d = proto;
    d.sweep_value = read_value(where, item, name + ".values");
    d.name = proto.sweep + "-" + d.sweep_value;
    if (!good_name(d.name))
      fail(where, item, name + ".values", "\"" + d.sweep_value + "\" makes a bad design name");
    d.sets.push_back(proto.sweep_key + "=" + d.sweep_value);
    designs.push_back(std::move(d));
  }
  return designs;
}

}  // namespace

ExperimentConfig parse_experiment_config(const std::string& toml_text, const std::string& where,
                                         const std::string& base_dir) {
  toml::table root;
  try {
    root = toml::parse(toml_text, where);
  } catch (const toml::parse_error& e) {
    throw error_at(where + ":" + std::to_string(e.source().begin.line),
                   std::string("TOML syntax error: ") + std::string(e.description()));
  }
  ExperimentConfig cfg;
  cfg.source = where;
  for (const auto& [key, node] : root) {
    const std::string k(key.str());
    if (k == "experiment") {
      const auto* t = node.as_table();
      if (!t) fail(where, node, k, "expected a table ([experiment])");
      read_experiment(cfg, where, *t, base_dir);
    } else if (k == "design") {
      const auto* array = node.as_array();
      if (!array) fail(where, node, k, "expected tables ([[design]])");
      for (size_t i = 0; i < array->size(); ++i)
        cfg.designs.push_back(read_design(where, *array->get(i), i));
    } else if (k == "sweep") {
      const auto* array = node.as_array();
      if (!array) fail(where, node, k, "expected tables ([[sweep]])");
      for (size_t i = 0; i < array->size(); ++i)
        for (auto& d : read_sweep(where, *array->get(i), i)) cfg.designs.push_back(std::move(d));
    } else {
      fail(where, node, k, "unknown table (tables: [experiment], [[design]], [[sweep]])");
    }
  }
  if (cfg.base.empty())
    throw error_at(where, "experiment.base: the base run configuration is required");
  if (cfg.designs.empty()) throw error_at(where, "no [[design]] or [[sweep]] to run");
  std::set<std::string> names;
  for (const auto& d : cfg.designs)
    if (!names.insert(d.name).second)
      throw error_at(where, "design \"" + d.name + "\" is defined twice");
  for (const auto* ref : {&cfg.baseline, &cfg.undefended})
    if (!ref->empty() && !names.count(*ref))
      throw error_at(where, std::string(ref == &cfg.baseline ? "experiment.baseline"
                                                             : "experiment.undefended") +
                                ": \"" + *ref + "\" is not a [[design]] name");
  return cfg;
}

ExperimentConfig load_experiment_config(const std::string& path) {
  if (std::filesystem::is_directory(path)) throw error_at(path, "is a directory");
  std::ifstream in(path);
  if (!in) throw error_at(path, "cannot read the experiment file");
  std::stringstream text;
  text << in.rdbuf();
  return parse_experiment_config(text.str(), path,
                                 std::filesystem::path(path).parent_path().string());
}

std::vector<std::string> cell_tasks(const std::string& task) {
  return task == "all" ? wordnet_mc_task_names() : std::vector<std::string>{task};
}

std::vector<ExperimentCell> experiment_cells(const ExperimentConfig& cfg, bool quick) {
  std::vector<ExperimentCell> cells;
  for (const auto& d : cfg.designs)
    for (const auto& task : cfg.tasks)
      for (auto seed : cfg.seeds) {
        ExperimentCell c{d.name + "." + task + ".s" + std::to_string(seed), d.name, task, seed, {}};
        c.overrides = cfg.sets;
        c.overrides.insert(c.overrides.end(), d.sets.begin(), d.sets.end());
        std::string list;
        for (const auto& t : cell_tasks(task)) list += (list.empty() ? "" : ",") + t;
        c.overrides.push_back("data.kind=wordnet_tasks");
        c.overrides.push_back("data.tasks=" + list);
        c.overrides.push_back("evaluation.tasks=" + list);
        c.overrides.push_back("training.seed=" + std::to_string(seed));
        if (quick) {
          c.overrides.insert(c.overrides.end(), cfg.quick.begin(), cfg.quick.end());
          c.overrides.insert(c.overrides.end(), d.quick.begin(), d.quick.end());
        }
        cells.push_back(std::move(c));
      }
  return cells;
}

}  // namespace gt
