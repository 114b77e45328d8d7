// The grid of `gtune experiment`: which designs (each a set of overrides of one base run
// configuration) to run on which tasks with which seeds. One TOML file, e.g.
// config/examples/compare.toml:
//
//   [experiment]
//   base = "online.toml"                    # the run every cell starts from
//   set = ["attacker.enabled=true"]         # overrides for every cell
//   tasks = ["all"]                         # "all" or WordNet task names: one cell each
//   seeds = [0]
//   baseline = "centralized"                # accuracy deltas are measured against it
//   undefended = "split"                    # the targets compare to it
//   quick = ["training.steps=4"]            # overrides --quick adds (for tests)
//
//   [[design]]
//   name = "split"
//   set = ["strategy.kind=split"]
//   quick = []                              # this design's own --quick overrides
//
//   [[sweep]]                               # one design per value, joined into a frontier
//   name = "adversary"                      # designs adversary-0.5, adversary-1, ...
//   key = "privacy.adversary_weight"        # the privacy knob
//   values = [0.5, 1, 2]
//   set = ["strategy.quantize_a1=int8"]     # the sweep's other overrides
//   quick = []
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gt {

struct ExperimentDesign {
  std::string name;                // letters, digits, '.', '_', '-'
  std::vector<std::string> sets;   // section.key=value overrides of the run configuration
  std::vector<std::string> quick;  // --quick adds these after the experiment's quick list
  // Set when the design is one point of a [[sweep]]: the sweep's name, key and this value.
  std::string sweep, sweep_key, sweep_value;
};

struct ExperimentConfig {
  std::string base;  // the base run configuration file, resolved against the experiment file
  std::vector<std::string> sets;
  std::vector<std::string> tasks{"all"};
  std::vector<uint64_t> seeds{0};
  std::string baseline;    // a design name or ""
  std::string undefended;  // a design name or ""
  std::vector<std::string> quick;
  std::vector<ExperimentDesign> designs;
  std::string source;
};

// One run of the grid.
struct ExperimentCell {
  std::string id;  // "<design>.<task>.s<seed>": a directory name
  std::string design, task;
  uint64_t seed = 0;
  std::vector<std::string> overrides;  // applied to the base configuration, in order
};

// Throws gt::Error naming file:line and the key for a syntax error, an unknown table or key,
// a wrong type, no designs, a duplicate or badly named design, an unknown task, no seeds, a
// sweep without a key or values, or a baseline / undefended design that is not in the grid.
// A [[sweep]] expands into designs "<name>-<value>" in the order of its values.
ExperimentConfig parse_experiment_config(const std::string& toml_text, const std::string& where,
                                         const std::string& base_dir);
ExperimentConfig load_experiment_config(const std::string& path);

// designs x tasks x seeds, in that nesting order. A cell trains on its task's train split
// ("all": the four WordNet tasks interleaved) and is scored on the same task(s):
// overrides = experiment set, design set, data/evaluation tasks, training.seed, then quick
// (the experiment's, then the design's).
std::vector<ExperimentCell> experiment_cells(const ExperimentConfig& cfg, bool quick);

// The WordNet tasks a cell's task stands for ("all" -> all four).
std::vector<std::string> cell_tasks(const std::string& task);

}  // namespace gt
