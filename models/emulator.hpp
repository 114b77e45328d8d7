// Offsite-Tuning's emulator (Xiao et al. 2023): the model owner compresses the backbone by
// uniform layer drop, optionally distils it (strategies/emulator_distillation.hpp) and stores
// its weights in int8, and ships it as a safetensors file; the client trains its adapters
// around it: output(emulator(input(ids))).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/segments.hpp"

namespace gt {

struct EmulatorOptions {
  int64_t keep_every = 2;  // keep backbone blocks 0, k, 2k, ... (uniform layer drop)
  // If > 0 instead: keep max(1, round(ratio * n)) blocks, evenly spaced, first and last
  // included when at least 2 are kept.
  double keep_ratio = 0;
  bool int8_weights = false;  // weight matrices stored (and shipped) as per-row int8 + fp32 scale
};

// Indices (into the backbone's blocks) the emulator keeps, increasing. Throws gt::Error for
// bad options (keep_every < 1, keep_ratio outside (0, 1] when not 0) or an empty backbone.
std::vector<int64_t> emulator_layers(int64_t backbone_blocks, const EmulatorOptions& options);

// A new Backbone of deep copies of the kept blocks: it never shares storage with full.backbone.
// Weights stay in full precision here; int8 applies when the emulator is saved.
Backbone build_emulator(const Segments& full, const EmulatorOptions& options);

// Writes the emulator atomically as safetensors: tensors "emulator.<i>.<local param name>",
// int8 weight matrices as I8 codes + "<name>.scale" (F32, one per output row); metadata: format
// version, model type, hidden size, layer count, kept backbone indices, int8 flag, n_in/n_out.
void save_emulator(const std::string& path, const Backbone& emulator, const Segments& full,
                   const std::vector<int64_t>& kept, bool int8_weights);

struct LoadedEmulator {
  Backbone backbone{nullptr};
  std::vector<int64_t> kept;  // backbone indices; source layer = split.n_in + kept[i]
  bool int8_weights = false;
  SplitPoints split;  // the cut the emulator was built for
};

// Reads an emulator into blocks built for `cfg` (the client's model) in `dtype`, dequantizing
// int8 weights. Validates metadata, names, shapes and dtypes against `cfg`; throws gt::Error
// naming the file and the problem.
LoadedEmulator load_emulator(const std::string& path, const ModelConfig& cfg,
                             torch::ScalarType dtype = torch::kFloat);

}  // namespace gt
