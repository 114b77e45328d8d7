// The client actor (data owner), driven by the scheduler one phase at a time.
// A phase: make sure the session and strategy are in place (download an
// emulator for the offline designs), run its steps, upload the adapters if the
// strategy tunes offline, evaluate, reply with the phase's JSON. After every
// step it reports to the scheduler and follows its directive (go on, switch).
// With a checkpoint it resumes where a killed run stopped; with a reconnector it
// reaches a lost server again and begins the interrupted step anew.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>

#include "data/batch_source.hpp"
#include "monitoring/metrics.hpp"
#include "protocols/interfaces.hpp"
#include "strategies/adapter_upload.hpp"
#include "strategies/client_channel.hpp"
#include "strategies/client_checkpoint.hpp"
#include "strategies/run_log.hpp"
#include "strategies/strategy_factory.hpp"

namespace gt {

struct ClientPlan {
  std::string name = "client0";
  int64_t batch = 8, eval_batch = 32, eval_every = 0;
  uint64_t seed = 0;
  std::string work_dir;  // emulator downloads (resumable .part files)
  torch::ScalarType dtype = torch::kFloat;
  // Resumable state, written every checkpoint_every steps and at phase ends; null = none.
  std::shared_ptr<const ClientCheckpoint> checkpoint;
  int64_t checkpoint_every = 10;
};

// What a client needs besides its plan.
struct ClientParts {
  std::shared_ptr<ClientModel> model;
  std::shared_ptr<const NamedTensors> pretrained;  // adapters as loaded: what deltas refer to
  StrategySettings settings;
  std::shared_ptr<const BatchSource> train, valid;
  server_actor server;
  emulator_builder_actor builder;    // may be null when no phase needs an emulator
  std::shared_ptr<WireStats> stats;  // as the client sees the wire: "up" sent, "down" received
  // Simulation or audit only: where the true tokens of each step go for scoring; may be null.
  attacker_actor audit;
  std::shared_ptr<Metrics> metrics = nullptr;  // Prometheus metrics of this process; may be null
  // A node's way back to a lost server: replies to `reconnect` with the server reached again
  // (a caf::strong_actor_ptr) or an error once it gives up. Null: a lost server ends the run.
  caf::actor reconnector;
  // The same for the emulator builder (a transfer in flight resumes from the bytes on disk).
  caf::actor builder_reconnector;
  // A client node that joined a scheduler node: called with the run's JSON when the scheduler
  // ends the run (`finish`), so the node can write its own results and exit. May be empty.
  std::function<void(const std::string&)> on_finish;
};

// A request to the server in flight, and how to redo it after a loss.
struct PendingRequest {
  uint64_t id = 0;
  std::string what;
  std::function<void()> retry;
};

struct ClientActorState {
  ClientParts parts;
  ClientPlan plan;
  std::unique_ptr<ClientChannel> channel;
  std::string strategy;  // installed strategy ("" = none yet)
  // The strategy label of wire metrics (shared with the WireStats observer); and the strategy
  // whose emulator is downloading.
  std::shared_ptr<std::string> wire_strategy = std::make_shared<std::string>();
  std::string fetching;
  // The transfer in flight again (after its builder was lost); which builder connection the
  // replies in flight belong to; why the builder went down while no transfer was in flight.
  std::function<void()> refetch;
  uint64_t builder_generation = 0;
  bool builder_reconnecting = false;
  std::optional<caf::error> builder_down;
  bool steps_since_upload = false;
  RunLog log;
  // The phase in flight.
  PhaseOrder order;
  int64_t phase_steps = 0;
  caf::typed_response_promise<std::string> phase_done;
  scheduler_actor scheduler;
  std::chrono::steady_clock::time_point phase_start, run_start, step_start;
  LmBatch step_batch;  // of the step in flight, for the audit
  // Data order.
  std::vector<size_t> order_of_samples;
  size_t cursor = 0;
  int64_t epoch = 0;
  bool evaluated_before = false;
  // The requests in flight by id: one, or a pipelined step's (strategy.micro_batches); when one
  // fails, all are dropped (their late replies ignored) and the step is begun again.
  std::map<uint64_t, PendingRequest> pending;
  uint64_t requests = 0;
  // Why the server went down while nothing was in flight: the next request fails with it at
  // once (CAF 0.17 may drop a message to a dead remote actor without a word).
  std::optional<caf::error> server_down;
  bool reconnecting = false;  // the reconnector is at work; the step begins again after it
  // The step in flight, to begin again after its server is lost.
  StepInput step_input;
  std::vector<torch::Tensor> step_random;
  // Checkpoints: the replies of finished phases; what a checkpoint restored at start (until
  // its phase begins again); why the checkpoint could not be restored.
  std::vector<std::string> phase_replies;
  std::optional<RestoredClient> resumed;
  int64_t steps_at_start = 0;  // optimizer steps done before this process (a resumed run)
  std::string startup_error;
  static inline const char* name = "gt.client";
};

client_actor::behavior_type client_behavior(client_actor::stateful_pointer<ClientActorState> self,
                                            ClientParts parts, ClientPlan plan);

}  // namespace gt
