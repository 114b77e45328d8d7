// The one exception type for bad input (files, configs, arguments): its
// message is a complete one-line explanation naming what is wrong and where.
#pragma once

#include <stdexcept>
#include <string>

namespace gt {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// "<where>: <what>", e.g. "model.safetensors: header length 9e18 exceeds file size 1024".
inline Error error_at(const std::string& where, const std::string& what) {
  return Error(where + ": " + what);
}

}  // namespace gt
