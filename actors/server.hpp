// The server actor (model owner): serves split-learning sessions over the
// typed server_actor interface. A bad message is answered with an error and
// logged; the server keeps serving. A client that dies loses its session.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "monitoring/metrics.hpp"
#include "protocols/interfaces.hpp"
#include "strategies/split_server.hpp"

namespace gt {

struct ServerActorState {
  std::shared_ptr<SplitServer> server;
  std::shared_ptr<WireStats> stats;  // as the server sees the wire: "up" received, "down" sent
  std::map<caf::actor_addr, uint64_t> session_of;  // client actor -> its session
  std::map<uint64_t, std::string> link_of;         // session -> link label
  attacker_actor tap;  // gets a copy of what this server receives; may be null
  // link label -> the strategy its session runs: the strategy label of wire metrics.
  std::shared_ptr<std::map<std::string, std::string>> strategy_of_link =
      std::make_shared<std::map<std::string, std::string>>();
  static inline const char* name = "gt.server";
};

server_actor::behavior_type server_behavior(server_actor::stateful_pointer<ServerActorState> self,
                                            std::shared_ptr<SplitServer> server,
                                            std::shared_ptr<WireStats> stats);
// The same, with a curious owner: every message served is copied to `tap`.
server_actor::behavior_type tapped_server_behavior(
    server_actor::stateful_pointer<ServerActorState> self, std::shared_ptr<SplitServer> server,
    std::shared_ptr<WireStats> stats, attacker_actor tap);
// The same, recording what `stats` counts into Prometheus `metrics` (a server node).
server_actor::behavior_type metered_server_behavior(
    server_actor::stateful_pointer<ServerActorState> self, std::shared_ptr<SplitServer> server,
    std::shared_ptr<WireStats> stats, attacker_actor tap, std::shared_ptr<Metrics> metrics);

}  // namespace gt
