// FNV-1a: a string hash that is the same on every platform and library
// version (std::hash is not), for data splits that must never move.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace gt {

inline uint64_t stable_hash(const uint8_t* data, size_t size) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 1099511628211ULL;
  return h;
}

inline uint64_t stable_hash(const std::string& s) {
  return stable_hash(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

}  // namespace gt
