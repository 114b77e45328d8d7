// The client actor (data owner): on `train`, opens a session with its server,
// evaluates, runs its training steps (each: a1 up, a2 down, g2 up, g1 down),
// evaluates again, says goodbye and replies with the run's results JSON.
#pragma once

#include <memory>

#include "common/progress.hpp"
#include "data/batch_source.hpp"
#include "protocols/interfaces.hpp"
#include "strategies/run_log.hpp"
#include "strategies/split_client.hpp"

namespace gt {

struct ClientPlan {
  std::string name = "client0", strategy = "online", config_toml;
  int64_t steps = 100, batch = 8, eval_batch = 32, eval_every = 0;
  uint64_t seed = 0;
  bool show_progress = true;
};

struct ClientActorState {
  std::shared_ptr<SplitClient> client;
  std::shared_ptr<const BatchSource> train, valid;
  ClientPlan plan;
  server_actor server;
  std::shared_ptr<WireStats> stats;  // as the client sees the wire: "up" sent, "down" received
  RunLog log;
  std::unique_ptr<Progress> progress;
  caf::typed_response_promise<std::string> done;
  std::vector<size_t> order;
  size_t cursor = 0;
  int64_t epoch = 0;
  std::chrono::steady_clock::time_point step_start, run_start;
  double ema_loss = 0;
  static inline const char* name = "gt.client";
};

client_actor::behavior_type client_behavior(client_actor::stateful_pointer<ClientActorState> self,
                                            std::shared_ptr<SplitClient> client,
                                            std::shared_ptr<const BatchSource> train,
                                            std::shared_ptr<const BatchSource> valid,
                                            ClientPlan plan, server_actor server,
                                            std::shared_ptr<WireStats> stats);

}  // namespace gt
