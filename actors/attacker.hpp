// The attacker actor (model owner's trust domain): fed by the server's tap,
// it decodes what the server received and hands it to the Eavesdropper,
// which runs the data-reconstruction attacks. It never talks to a client.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "monitoring/metrics.hpp"
#include "privacy/attacks/eavesdropper.hpp"
#include "protocols/interfaces.hpp"

namespace gt {

// A pipelined step's messages (strategy.micro_batches > 1) of one session, by micro-batch:
// the eavesdropper sees the step's whole batch once every chunk is there.
struct MicroChunks {
  int64_t step = -1;
  std::vector<torch::Tensor> mask, a1, a2;  // from the forwards
  std::vector<torch::Tensor> g2;            // from the backwards
};

struct AttackerState {
  std::shared_ptr<Eavesdropper> eavesdropper;
  std::map<uint64_t, MicroChunks> forwards, backwards;  // by session
  scheduler_actor watcher;           // alarmed with each new best score; may be null
  double alarmed = -1;               // the best score last sent
  std::shared_ptr<Metrics> metrics;  // gtune_attack_rougel; may be null
  static inline const char* name = "gt.attacker";
};

attacker_actor::behavior_type attacker_behavior(
    attacker_actor::stateful_pointer<AttackerState> self,
    std::shared_ptr<Eavesdropper> eavesdropper, std::shared_ptr<Metrics> metrics = nullptr);

}  // namespace gt
