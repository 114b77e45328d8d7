// The curious model owner's attacker, built from the run configuration: its
// own copy of the pretrained model, its public text, and the attacks (the
// learned ones trained before the run starts).
#pragma once

#include <memory>

#include "config/run_config.hpp"
#include "privacy/attacks/eavesdropper.hpp"
#include "protocols/interfaces.hpp"

namespace gt::cli {

// Throws gt::Error for an unreadable public text file.
std::shared_ptr<Eavesdropper> make_attacker_side(const RunConfig& cfg, bool show_progress);
// The attacker's scores (JSON) once every tapped message and truth before this call is in;
// "" (and a warning) when it does not answer.
std::string ask_report(caf::actor_system& sys, const attacker_actor& attacker);

}  // namespace gt::cli
