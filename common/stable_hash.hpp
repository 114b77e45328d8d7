// FNV-1a: a string hash that is the same on every platform and library
// version (std::hash is not), for data splits that must never move.
#pragma once

#include <cstdint>
#include <string>

namespace gt {

inline uint64_t stable_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

}  // namespace gt
