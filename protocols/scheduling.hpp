// Messages between the scheduler and the clients it drives. They stay inside
// the operator's process (the scheduler runs beside its clients), so CAF
// carries them as plain structs; they never reach the server.
#pragma once

#include <cstdint>
#include <string>

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

}  // namespace gt
