// Messages between the scheduler and the clients it drives (and a simulation's
// audit messages). CAF carries them as plain structs, inside one process or
// between a scheduler node and its client nodes; they never reach the server.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gt {

// scheduler -> client: run one phase of the plan.
struct PhaseOrder {
  int64_t index = 0;     // position in the plan, from 0
  std::string strategy;  // "split", "online", "gradfree", "offsite", "offline"
  int64_t steps = 0;     // optimizer steps this phase runs
};

// client -> scheduler: after every step, for status and policies.
struct StepReport {
  std::string client, strategy;
  int64_t phase = 0, step = 0;  // step: optimizer steps this client has taken in the run
  double loss = 0;
  int64_t bytes_up = 0, bytes_down = 0;  // this client's training bytes so far
};

// attacker -> scheduler: the attack score so far, for a live policy.
struct AttackAlarm {
  std::string attack, strategy;
  double rouge_l = 0;
};

// client -> attacker, in a simulation or a client's own privacy audit only:
// the true tokens of a training step, so that reconstructions can be scored.
// A deployment never sends it.
struct AuditTruth {
  std::string client;
  int64_t step = 0;  // the step's header.step (optimizer steps before it)
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> input_ids, attention_mask;  // row-major (rows, cols)
};

}  // namespace gt
