// Options every run-launching subcommand (simulate, node) shares: the config
// file and its overrides.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "config/run_config.hpp"

namespace gt::cli {

struct RunOptions {
  std::string config;             // "" = built-in defaults
  std::vector<std::string> sets;  // "section.key=value"
  bool quiet = false;

  void add_to(CLI::App& cmd);
  RunConfig load() const;
};

}  // namespace gt::cli
