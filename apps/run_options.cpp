// See run_options.hpp.
#include "apps/run_options.hpp"

#include <torch/torch.h>

#include <filesystem>

namespace gt::cli {

void RunOptions::add_to(CLI::App& cmd) {
  cmd.add_option("--config", config,
                 "run configuration (TOML, see config/README.md); default: built-in defaults");
  cmd.add_option("--set", sets, "override a config key, e.g. --set training.steps=20 (repeatable)");
  cmd.add_flag("--quiet", quiet, "no progress bar");
}

RunConfig RunOptions::load() const {
  auto cfg = config.empty() ? default_run_config() : load_run_config(config);
  apply_overrides(cfg, sets);
  // The default model path is relative to the repository; from elsewhere, use
  // the embedded model this binary was built with.
  if (cfg.model.path == default_run_config().model.path && !std::filesystem::exists(cfg.model.path))
    cfg.model.path = GT_DEFAULT_MODEL_DIR;
  if (cfg.run.threads > 0) torch::set_num_threads(static_cast<int>(cfg.run.threads));
  return cfg;
}

}  // namespace gt::cli
