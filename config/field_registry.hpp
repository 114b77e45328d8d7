// The schema of the run configuration as one table of fields ("section.key" -> reader, writer,
// allowed values, doc), shared by parsing, overrides, validation, to_toml and the README.
#pragma once

#include <functional>
#include <limits>
#include <string>
#include <variant>
#include <vector>

#include "config/run_config.hpp"

namespace gt::config_detail {

enum class ValueType { string, integer, floating, string_list, boolean };

// One value of a key. A variant holding both bool and std::string could take a string literal
// as a bool (const char* -> bool is a standard conversion, -> std::string a user-defined one;
// only newer standard libraries refuse it), so `const char*` is turned into a string here.
struct Value : std::variant<std::string, int64_t, double, std::vector<std::string>, bool> {
  using variant::variant;
  Value() = default;
  Value(const char* s) : variant(std::string(s)) {}
};

const char* type_name(ValueType type);  // "string", "integer", "float", "string array", "boolean"
std::string toml_literal(const Value& value);  // "int8" -> "\"int8\"", 1e-4 -> "0.0001"

// When a key is meaningful, in terms of the rest of the configuration.
struct Condition {
  std::string text;  // "strategy.kind = \"online\"", "the plan uses online", ...
  std::function<bool(const RunConfig&)> holds;
  std::function<std::string(const RunConfig&)> state;  // what holds instead: "it is \"split\""
  // Keys whose overrides can change it; "phase[].strategy" stands for any phase.<i>.strategy.
  std::vector<std::string> keys;
};
Condition key_is(std::string key, std::string value);  // the string key has this value
// The plan (run_plan, or the budget fallback) uses one of `kinds`.
Condition plan_uses_any(std::vector<StrategyKind> kinds);
Condition plan_uses_all(std::vector<StrategyKind> kinds);  // every one of `kinds`

struct Field {
  std::string section, key;
  ValueType type = ValueType::string;
  std::string doc;
  std::function<void(RunConfig&, const Value&)> write;
  std::function<Value(const RunConfig&)> read;
  // Keys of a [[phase]] table (section "phase", see phase_fields) read and write one phase.
  std::function<void(PhaseSection&, const Value&)> write_phase;
  std::function<Value(const PhaseSection&)> read_phase;

  // Allowed values: strings (or each item of a string array) from a list; numbers in a range;
  // anything else through `extra` (returns "" when fine) described by extra_text.
  std::vector<std::string> one_of_values;
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;
  std::function<std::string(const Value&)> extra;
  std::string extra_text;

  // Only meaningful when `when` holds (no condition = always); otherwise it must be `neutral`.
  Condition when;
  Value neutral;

  std::string name() const { return section + "." + key; }
  std::string allowed_text() const;          // "none, int8, int4", "> 0", "" (any)
  std::string check(const Value& v) const;   // "" when allowed, else the complete reason
  bool applies(const RunConfig& cfg) const;  // the condition holds (or there is none)
  bool conditional() const { return static_cast<bool>(when.holds); }

  Field& one_of(std::vector<std::string> values);
  Field& at_least(double v);
  Field& at_most(double v);
  Field& above(double v);
  Field& below(double v);
  Field& check_with(std::function<std::string(const Value&)> fn, std::string text);
  Field& only_when(std::string key, std::string value, Value neutral_value);  // key_is
  Field& only_when(Condition condition, Value neutral_value);
};

const std::vector<Field>& fields();                     // in file order
const std::vector<std::string>& sections();             // model, strategy, ... ([[phase]] aside)
const Field* find_field(const std::string& name);       // "section.key", or nullptr
const std::vector<Field>& phase_fields();               // strategy, steps, epochs of a [[phase]]
const Field* find_phase_field(const std::string& key);  // "steps", or nullptr
// The section after which [[phase]] tables are written and listed.
inline const char* phases_after() {
  return "scheduler";
}

std::string strategy_kind_list(bool with_centralized = true);  // "centralized, split, ..."

// The candidate closest to `word` within edit distance 2, or "" when none is.
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace gt::config_detail
