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

enum class ValueType { string, integer, floating, string_list };
using Value = std::variant<std::string, int64_t, double, std::vector<std::string>>;

const char* type_name(ValueType type);         // "string", "integer", "float", "string array"
std::string toml_literal(const Value& value);  // "int8" -> "\"int8\"", 1e-4 -> "0.0001"

struct Field {
  std::string section, key;
  ValueType type = ValueType::string;
  std::string doc;
  std::function<void(RunConfig&, const Value&)> write;
  std::function<Value(const RunConfig&)> read;

  // Allowed values: strings (or each item of a string array) from a list; numbers in a range;
  // anything else through `extra` (returns "" when fine) described by extra_text.
  std::vector<std::string> one_of_values;
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;
  std::function<std::string(const Value&)> extra;
  std::string extra_text;

  // Only meaningful when another key has a given value; otherwise it must be `neutral`.
  std::string when_key, when_value;
  Value neutral;

  std::string name() const { return section + "." + key; }
  std::string allowed_text() const;          // "none, int8, int4", "> 0", "" (any)
  std::string check(const Value& v) const;   // "" when allowed, else the complete reason
  bool applies(const RunConfig& cfg) const;  // when_key condition holds (or there is none)

  Field& one_of(std::vector<std::string> values);
  Field& at_least(double v);
  Field& above(double v);
  Field& below(double v);
  Field& check_with(std::function<std::string(const Value&)> fn, std::string text);
  Field& only_when(std::string key, std::string value, Value neutral_value);
};

const std::vector<Field>& fields();                // in file order
const std::vector<std::string>& sections();        // model, strategy, ...
const Field* find_field(const std::string& name);  // "section.key", or nullptr

// The candidate closest to `word` within edit distance 2, or "" when none is.
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace gt::config_detail
