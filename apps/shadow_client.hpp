// The adaptive attacker's shadow client: the model owner knows the defence, its code and its
// hyper-parameters (the run's configuration), but not the client's data, seed or weights. So it
// replays the client's privatization on public text with a seed of its own: the plan's
// privatize phases against the same emulator recipe, its online phases against the real
// backbone (which the model owner holds), with the same privacy objective and optimizer. An
// inverter trained through the shadow's input adapter is the adaptive attack
// (docs/privacy.md).
#pragma once

#include <cstdint>

#include "common/progress.hpp"
#include "config/run_config.hpp"
#include "data/batch_source.hpp"
#include "models/segments.hpp"

namespace gt::cli {

// The shadow's adapters after replaying the plan's privacy training on `public_text` (`model`
// receives the decoder they are cut from). With no privacy objective in the plan (no weight,
// or no privatize/online phase) the shadow is the pretrained model.
Segments shadow_adapters(const RunConfig& cfg, const BatchSource& public_text, uint64_t seed,
                         DecoderLM& model, bool show_progress);

}  // namespace gt::cli
