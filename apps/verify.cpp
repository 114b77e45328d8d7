// gtune verify: our numerics vs. a HuggingFace reference file.
#include <cstdio>

#include "apps/commands.hpp"
#include "models/reference_check.hpp"

namespace gt::cli {

void add_verify(CLI::App& app) {
  struct Options {
    std::string model, reference;
    double tolerance = 1e-4;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "verify", "Compare forward, loss and gradients with a transformers reference file");
  cmd->add_option("--model", opt->model, "HuggingFace model directory (config.json + safetensors)")
      ->required();
  cmd->add_option("--reference", opt->reference, "reference.safetensors written by transformers")
      ->required();
  cmd->add_option("--tolerance", opt->tolerance, "largest allowed max |diff| (fp32)")
      ->capture_default_str();
  cmd->callback([opt] {
    auto diffs = compare_with_reference(opt->model, opt->reference);
    double worst = 0;
    std::printf("%-70s %12s\n", "tensor", "max |diff|");
    for (const auto& d : diffs) {
      std::printf("%-70s %12.3e%s\n", d.name.c_str(), d.max_abs_diff,
                  d.max_abs_diff > opt->tolerance ? "  FAIL" : "");
      worst = std::max(worst, d.max_abs_diff);
    }
    const bool ok = worst <= opt->tolerance;
    std::printf("%s: %zu tensors, worst max |diff| %.3e (tolerance %.1e)\n", ok ? "OK" : "FAILED",
                diffs.size(), worst, opt->tolerance);
    if (!ok) throw ExitStatus{1};
  });
}

}  // namespace gt::cli
