// Offsite-Tuning's emulator (Xiao et al. 2023): the model owner compresses the backbone by
// uniform layer drop, optionally distils it and stores its weights in int8, and ships it as a
// safetensors file; the client trains its adapters around it: output(emulator(input(ids))).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/progress.hpp"
#include "data/batch_source.hpp"
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

struct DistillOptions {
  int64_t steps = 0;
  double lr = 1e-4;  // Adam
  int64_t batch = 8;
  uint64_t seed = 0;  // sample order
};

// Trains `emulator` so that emulator(a1) matches the frozen backbone's a2 (MSE over real
// tokens), a1 coming from the frozen input adapter on public text from `data`. Returns the MSE
// of the last step. Throws gt::Error for steps < 1, batch < 1, lr <= 0 or empty data.
double distill_emulator(Backbone& emulator, const Segments& full, const BatchSource& data,
                        const DistillOptions& options, Progress* progress = nullptr);

// The distillation objective over all of `data` (no grad): mean squared error between
// emulator(a1) and the full backbone's a2 over real tokens.
double emulator_mse(const Backbone& emulator, const Segments& full, const BatchSource& data,
                    int64_t batch = 32);

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

// Mean next-token loss (labels of `data`) of input -> middle -> output, no grad: the
// emulator's standalone utility for IP-leakage reports; with seg.backbone, the full model's.
double lm_loss_through(const Segments& seg, const Backbone& middle, const BatchSource& data,
                       int64_t batch = 32);

}  // namespace gt
