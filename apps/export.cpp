// gtune export: a run's tuned model for HuggingFace tools (issue 18).
// - the data owner's adapters: adapters.safetensors under transformers' names (full tuning), or
//   a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors), with config.json and
//   the tokenizer files;
// - --merged, for whoever holds the whole model (the model owner after an offline run, or one
//   party in a simulation): the checkpoint with the adapters in place and LoRA merged.
// The directory is written beside its destination and renamed into place: a failed export
// leaves nothing half-written.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "apps/commands.hpp"
#include "apps/parties.hpp"
#include "apps/run_options.hpp"
#include "common/error.hpp"
#include "models/adapter_io.hpp"
#include "models/hf_export.hpp"
#include "models/lora.hpp"
#include "models/safetensors.hpp"

namespace gt::cli {
namespace {

namespace fs = std::filesystem;

struct ExportOptions {
  RunOptions run;
  std::string adapters;
  std::string out;
  bool merged = false;
  std::string dtype;  // "" = the run's model.dtype
};

void write_json(const fs::path& path, const nlohmann::json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  if (!out.flush()) throw error_at(path.string(), "cannot write");
}

HfTensors in_dtype(HfTensors tensors, torch::ScalarType dtype) {
  for (auto& [name, t] : tensors) t = t.detach().to(torch::kCPU, dtype).contiguous();
  return tensors;
}

// Writes the export into `dir`; returns what it wrote, for the summary line.
std::string write_export(const ExportOptions& opt, const RunConfig& cfg, const fs::path& dir) {
  const auto dtype = opt.dtype == "float16" ? torch::kHalf
                     : opt.dtype.empty()    ? parse_dtype(cfg.model.dtype)
                                            : parse_dtype(opt.dtype);
  DecoderLM model{nullptr};
  auto seg = load_adapter_model(cfg, model, /*hold_backbone=*/opt.merged);
  load_adapters(opt.adapters, seg);
  write_model_files(cfg.model.path, dir.string(), dtype);
  std::string layout;
  if (opt.merged) {
    save_safetensors((dir / "model.safetensors").string(), merged_weights(*model, dtype),
                     {{"format", "pt"}});
    layout = "the whole model (model.safetensors), adapters in place";
  } else if (parse_train_mode(cfg.model.train) == TrainMode::lora) {
    // PEFT carries the factors only: a file with full weights would lose them here.
    for (const auto& name : SafetensorsFile(opt.adapters).names())
      if (name.find(".lora_") == std::string::npos)
        throw error_at(opt.adapters, "holds '" + name +
                                         "', not a LoRA factor: a PEFT adapter would leave it "
                                         "out (export with --merged, or with model.train = "
                                         "\"full\" if the run tuned fully)");
    save_safetensors((dir / "adapter_model.safetensors").string(), peft_lora_tensors(seg, dtype),
                     {{"format", "pt"}});
    std::ofstream((dir / "adapter_config.json").string())
        << peft_adapter_config(seg, fs::absolute(cfg.model.path).string());
    layout = "a PEFT LoRA adapter (adapter_config.json, adapter_model.safetensors)";
  } else {
    save_safetensors((dir / "adapters.safetensors").string(),
                     in_dtype(adapter_parameters(seg, /*only_trainable=*/true), dtype),
                     {{"format", "pt"}});
    layout = "the adapters' weights under transformers' names (adapters.safetensors)";
  }
  write_json(dir / "gtune_export.json", {{"run", cfg.run.name},
                                         {"config", cfg.source},
                                         {"adapters", fs::absolute(opt.adapters).string()},
                                         {"base_model", fs::absolute(cfg.model.path).string()},
                                         {"input_adapter_blocks", cfg.model.n_in},
                                         {"output_adapter_blocks", cfg.model.n_out},
                                         {"train", cfg.model.train},
                                         {"merged", opt.merged},
                                         {"dtype", hf_dtype_name(dtype)}});
  return layout;
}

void run_export(const ExportOptions& opt) {
  const auto cfg = opt.run.load();
  // A coarsened input adapter reads token clusters through a map no HF model has.
  if (cfg.privacy.token_clusters > 0)
    throw Error("export: privacy.token_clusters = " + std::to_string(cfg.privacy.token_clusters) +
                ": the adapters read token clusters, which a HuggingFace model cannot express");
  const fs::path out(opt.out);
  if (fs::exists(out) && !(fs::is_directory(out) && fs::is_empty(out)))
    throw error_at(opt.out, "exists and is not an empty directory: export into a new one");
  const auto staging = fs::path(out.string() + ".partial-" + std::to_string(::getpid()));
  fs::remove_all(staging);
  std::string layout;
  try {
    layout = write_export(opt, cfg, staging);
    if (fs::exists(out)) fs::remove(out);  // the empty directory it replaces
    fs::rename(staging, out);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staging, ec);
    throw;
  }
  std::printf("exported %s to %s\n", layout.c_str(), out.string().c_str());
}

}  // namespace

void add_export(CLI::App& app) {
  auto opt = std::make_shared<ExportOptions>();
  auto* cmd = app.add_subcommand(
      "export", "Write a run's tuned model as a HuggingFace directory (adapters, PEFT or merged)");
  opt->run.add_to(*cmd);
  cmd->add_option("--adapters", opt->adapters, "adapters.safetensors the run wrote")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", opt->out, "the directory to create")->required();
  cmd->add_flag("--merged", opt->merged,
                "the whole model with the adapters in place and LoRA merged (needs the "
                "backbone's weights: the model owner's side)");
  cmd->add_option("--dtype", opt->dtype, "weights' dtype (default: the run's model.dtype)")
      ->check(CLI::IsMember({"float32", "float16", "bfloat16"}));
  cmd->callback([opt] { run_export(*opt); });
}

}  // namespace gt::cli
