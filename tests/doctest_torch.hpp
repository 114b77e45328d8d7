// Include this instead of <doctest/doctest.h> in tests that use LibTorch:
// torch's headers pull in glog, whose CHECK(cond) aborts the process instead of
// failing the test. Restore doctest's CHECK after both are in.
#pragma once

#include <doctest/doctest.h>
#include <torch/torch.h>

#include <string>

#undef CHECK
#define CHECK(...) DOCTEST_CHECK(__VA_ARGS__)

namespace gt::test {
// doctest::Contains takes a const char*; keep the string alive for the assertion.
inline doctest::Contains contains(const std::string& s) {
  return doctest::Contains(s.c_str());
}
}  // namespace gt::test
