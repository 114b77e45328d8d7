// See run_options.hpp.
#include "apps/run_options.hpp"

#include <torch/torch.h>

#include <filesystem>

#include "common/error.hpp"
#include "models/device.hpp"

namespace gt::cli {

void RunOptions::add_to(CLI::App& cmd) {
  cmd.add_option("--config", config,
                 "run configuration (TOML, see config/README.md); default: built-in defaults");
  cmd.add_option("--set", sets, "override a config key, e.g. --set training.steps=20 (repeatable)");
  cmd.add_option("--device", device,
                 "where to compute: cpu, cuda or cuda:N (shorthand for --set run.device=...)");
  cmd.add_flag("--quiet", quiet, "no progress bar");
  cmd.add_option(
      "config_and_overrides", positional,
      "shorthand: CONFIG.toml and key=value overrides, e.g. online.toml training.steps=20");
}

std::pair<std::string, std::vector<std::string>> RunOptions::file_and_overrides() const {
  auto file = config;
  std::vector<std::string> overrides;
  for (const auto& arg : positional) {
    if (arg.find('=') != std::string::npos) {
      overrides.push_back(arg);
    } else if (file.empty()) {
      file = arg;
    } else {
      throw Error("unexpected argument \"" + arg + "\": give one config file (" + file +
                  " already) and key=value overrides");
    }
  }
  overrides.insert(overrides.end(), sets.begin(), sets.end());       // --set wins over positional
  if (!device.empty()) overrides.push_back("run.device=" + device);  // the shorthand, last
  return {file, overrides};
}

std::vector<std::string> RunOptions::as_args() const {
  const auto [file, overrides] = file_and_overrides();
  std::vector<std::string> args;
  if (!file.empty()) args = {"--config", file};
  for (const auto& s : overrides) args.insert(args.end(), {"--set", s});
  return args;
}

RunConfig RunOptions::load() const {
  const auto [file, overrides] = file_and_overrides();
  auto cfg = file.empty() ? default_run_config() : load_run_config(file);
  apply_overrides(cfg, overrides);
  // The default model path is relative to the repository; from elsewhere, use
  // the embedded model this binary was built with.
  if (cfg.model.path == default_run_config().model.path && !std::filesystem::exists(cfg.model.path))
    cfg.model.path = GT_DEFAULT_MODEL_DIR;
  if (cfg.run.threads > 0) torch::set_num_threads(static_cast<int>(cfg.run.threads));
  parse_device(cfg.run.device);  // a clear error now rather than after loading data
  return cfg;
}

}  // namespace gt::cli
