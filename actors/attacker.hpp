// The attacker actor (model owner's trust domain): fed by the server's tap,
// it decodes what the server received and hands it to the Eavesdropper,
// which runs the data-reconstruction attacks. It never talks to a client.
#pragma once

#include <memory>

#include "monitoring/metrics.hpp"
#include "privacy/attacks/eavesdropper.hpp"
#include "protocols/interfaces.hpp"

namespace gt {

struct AttackerState {
  std::shared_ptr<Eavesdropper> eavesdropper;
  scheduler_actor watcher;           // alarmed with each new best score; may be null
  double alarmed = -1;               // the best score last sent
  std::shared_ptr<Metrics> metrics;  // gtune_attack_rougel; may be null
  static inline const char* name = "gt.attacker";
};

attacker_actor::behavior_type attacker_behavior(
    attacker_actor::stateful_pointer<AttackerState> self,
    std::shared_ptr<Eavesdropper> eavesdropper, std::shared_ptr<Metrics> metrics = nullptr);

}  // namespace gt
