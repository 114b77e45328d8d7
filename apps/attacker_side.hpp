// The curious model owner's attacker, built from the run configuration: its
// own copy of the pretrained model, its public text, and the attacks (the
// learned ones trained before the run starts).
#pragma once

#include <memory>

#include "config/run_config.hpp"
#include "privacy/attacks/eavesdropper.hpp"

namespace gt::cli {

// Throws gt::Error for an unreadable public text file.
std::shared_ptr<Eavesdropper> make_attacker_side(const RunConfig& cfg, bool show_progress);

}  // namespace gt::cli
