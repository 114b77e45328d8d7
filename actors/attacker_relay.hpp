// The attacker as the other parties of a node see it: a local actor in front of the attacker
// node that outlives the attacker's restarts. It forwards the server's copies, the audit's
// truths and the scheduler's `watch`; when the attacker node goes down it asks its
// reconnector for the attacker again (messages meanwhile are dropped and counted, never
// queued) and tells the new one who watches its scores.
#pragma once

#include <optional>
#include <string>

#include "protocols/interfaces.hpp"

namespace gt {

struct AttackerRelayState {
  attacker_actor attacker;  // null while it is being reached again
  caf::actor reconnector;   // replies to reconnect_atom with the attacker reached again
  std::string where;
  std::optional<scheduler_actor> watcher;  // the scheduler its scores go to
  int64_t dropped = 0;                     // messages while the attacker was away
  static inline const char* name = "gt.attacker_relay";
};

// `reconnector` may be null: a lost attacker is then gone for good (copies are dropped). The
// relay is linked to it: both end together.
attacker_actor::behavior_type attacker_relay(
    attacker_actor::stateful_pointer<AttackerRelayState> self, attacker_actor attacker,
    caf::actor reconnector, std::string where);

}  // namespace gt
