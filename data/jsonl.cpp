// See jsonl.hpp.
#include "data/jsonl.hpp"

#include <algorithm>
#include <cctype>

#include "common/error.hpp"

namespace gt {

bool is_blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
}

nlohmann::json parse_jsonl_line(const std::string& line, const std::string& where) {
  try {
    return nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    // Keep nlohmann's reason, drop its "[json.exception...] parse error at line 1, column N".
    std::string why = e.what();
    if (auto colon = why.find(": "); colon != std::string::npos) why = why.substr(colon + 2);
    throw error_at(where, "invalid JSON at column " + std::to_string(e.byte) + ": " + why);
  }
}

}  // namespace gt
