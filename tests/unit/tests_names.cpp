// The test suite's own hygiene: CTest runs each test case as `gt_unit_tests -tc=<name>`, and
// doctest_discover_tests cuts a name at its first ';', so a test case whose name holds one
// matches nothing and "passes" without running (six did, until this test).
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "tests/doctest_torch.hpp"
#include "tests/test_paths.hpp"

namespace fs = std::filesystem;

TEST_CASE("tests: no test case name holds a semicolon (CTest would run none of it)") {
  const fs::path unit = fs::path(gt::test::fixture("")) / ".." / "unit";
  // A name may be several adjacent string literals.
  const std::regex name(R"re(TEST_CASE\(\s*((?:"[^"]*"\s*)+))re"), piece(R"re("([^"]*)")re");
  int files = 0, cases = 0;
  for (const auto& entry : fs::directory_iterator(unit)) {
    if (entry.path().extension() != ".cpp") continue;
    ++files;
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    const auto s = text.str();
    for (std::sregex_iterator it(s.begin(), s.end(), name), end; it != end; ++it) {
      ++cases;
      const auto literals = (*it)[1].str();
      std::string full;
      for (std::sregex_iterator p(literals.begin(), literals.end(), piece); p != end; ++p)
        full += (*p)[1].str();
      CAPTURE(entry.path().filename().string());
      CHECK_MESSAGE(full.find(';') == std::string::npos, full);
    }
  }
  CHECK(files > 20);
  CHECK(cases > 200);
}
