// Training and scoring an emulator on data: distillation against the full backbone (public
// text) and the losses the IP-leakage report compares. Above models/ because it reads batches.
#pragma once

#include <cstdint>

#include "common/progress.hpp"
#include "data/batch_source.hpp"
#include "models/emulator.hpp"

namespace gt {

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

// Mean next-token loss (labels of `data`) of input -> middle -> output, no grad: the
// emulator's standalone utility for IP-leakage reports; with seg.backbone, the full model's.
double lm_loss_through(const Segments& seg, const Backbone& middle, const BatchSource& data,
                       int64_t batch = 32);

}  // namespace gt
