// The run configuration's checks across keys (internal to config/run_config*.cpp): what no
// single field's range can say (a phase's keys together, the plan against the scheduler, the
// data source), each error naming the file, line and key.
#pragma once

#include <map>
#include <string>

#include "config/run_config.hpp"

namespace gt::config_detail {

using Lines = std::map<std::string, int>;  // key -> line in the file that sets it

// Throws gt::Error "<where>:<line>: <key>: <what>" (no line when 0, no key when empty).
[[noreturn]] void fail(const std::string& where, int line, const std::string& key,
                       const std::string& what);

// "phase[2]", the name of a phase in errors (0-based, as in phase.<i>.<key> overrides).
std::string phase_name(size_t index);

// The checks across keys of a whole configuration read from `where`.
void validate(const RunConfig& cfg, const std::string& where, const Lines& lines);

}  // namespace gt::config_detail
