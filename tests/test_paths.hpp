// Paths the tests read: fixtures, the embedded model, the gtune binary.
#pragma once

#include <string>

namespace gt::test {

inline std::string fixture(const std::string& rel) {
  return std::string(GT_FIXTURES_DIR) + "/" + rel;
}
inline std::string model_dir() {
  return GT_MODEL_DIR;
}
inline std::string gtune_bin() {
  return GT_GTUNE_BIN;
}

}  // namespace gt::test
