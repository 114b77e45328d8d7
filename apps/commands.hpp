// Every gtune subcommand registers itself on the top-level CLI11 app.
#pragma once

#include <CLI/CLI.hpp>

namespace gt::cli {

// Thrown by a subcommand to end gtune with a given exit status (after printing its own result).
struct ExitStatus {
  int code;
};

void add_verify(CLI::App& app);
void add_eval_ppl(CLI::App& app);
void add_simulate(CLI::App& app);
void add_node(CLI::App& app);
void add_ctl(CLI::App& app);
void add_experiment(CLI::App& app);
void add_audit(CLI::App& app);
void add_generate(CLI::App& app);
void add_serve(CLI::App& app);
void add_export(CLI::App& app);

}  // namespace gt::cli
