// Options every run-launching subcommand (simulate, node, audit) shares: the config
// file, its overrides and their shorthands.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <utility>
#include <vector>

#include "config/run_config.hpp"

namespace gt::cli {

struct RunOptions {
  std::string config;             // "" = built-in defaults
  std::vector<std::string> sets;  // "section.key=value"
  // Positional shorthand: `simulate plan.toml training.steps=20` = --config plan.toml --set ...
  std::vector<std::string> positional;
  std::string device;  // --device: shorthand for --set run.device=...; "" = the config's
  bool quiet = false;

  void add_to(CLI::App& cmd);
  // Throws gt::Error for a positional argument that is neither the one config file nor a
  // key=value override, and for a run.device this build or machine cannot compute on.
  RunConfig load() const;
  // The same run as --config/--set arguments, for a child process.
  std::vector<std::string> as_args() const;

 private:
  std::pair<std::string, std::vector<std::string>> file_and_overrides() const;
};

}  // namespace gt::cli
