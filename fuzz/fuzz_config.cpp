// libFuzzer target: arbitrary text as a TOML run configuration
// (config/run_config.hpp, parse_run_config). The contract: parsing either
// succeeds or throws gt::Error; a configuration it accepts survives the
// documented round trip parse_run_config(to_toml(c)) == c. Any other exception,
// a crash, a sanitizer report or a large allocation is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/error.hpp"
#include "config/run_config.hpp"

namespace {

[[noreturn]] void finding(const std::string& what, const std::string& toml) {
  std::fprintf(stderr, "fuzz_config: %s\n--- to_toml:\n%s\n---\n", what.c_str(), toml.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  gt::RunConfig cfg;
  try {
    // base_dir "" takes relative paths as written: nothing here depends on the current directory.
    cfg = gt::parse_run_config(text, "fuzz.toml", "");
  } catch (const gt::Error&) {
    return 0;
  }
  const std::string again = gt::to_toml(cfg);
  try {
    if (!(gt::parse_run_config(again, "fuzz.toml", "") == cfg))
      finding("parse_run_config(to_toml(c)) differs from c", again);
  } catch (const gt::Error& e) {
    finding(std::string("to_toml(c) is rejected: ") + e.what(), again);
  }
  return 0;
}
