// What the JSONL readers share: blank-line detection and parsing one line
// with an error that names file:line and the column.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace gt {

bool is_blank(const std::string& s);
// Throws gt::Error "<where>: invalid JSON at column N: <reason>".
nlohmann::json parse_jsonl_line(const std::string& line, const std::string& where);

}  // namespace gt
