// The server actor (model owner): serves split-learning sessions over the
// typed server_actor interface. A bad message is answered with an error and
// logged; the server keeps serving. A client that dies loses its session.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "monitoring/metrics.hpp"
#include "protocols/interfaces.hpp"
#include "strategies/split_server.hpp"

namespace gt {

// What the server accepts of its clients (config [server]).
struct ServerLimits {
  int64_t max_sessions = 16;
  int64_t max_sessions_per_peer = 4;  // of one remote node (this node's own actors: no limit)
  std::chrono::seconds session_timeout{600};  // idle sessions are dropped after this
  int64_t max_batch_tokens = 65536;           // rows x tokens of one forward request
  int64_t max_message_bytes = int64_t(256) << 20;
  int64_t max_cache_bytes = int64_t(1) << 30;    // KV caches of every generation, all sessions
  int64_t max_plugged_bytes = int64_t(1) << 30;  // plugged adapters in memory, all clients
};

struct ServerOptions {
  attacker_actor tap;                // gets a copy of what this server receives; may be null
  std::shared_ptr<Metrics> metrics;  // Prometheus metrics of this process; may be null
  ServerLimits limits;
  // Where each client's plugged adapters are written (<dir>/plugged-<client>.safetensors, as
  // gtune simulate names them, on every plug), so that the model owner can generate and export
  // with them, and where those evicted from memory are read back from; "" = memory only.
  std::string plugged_dir;
};

struct ServerActorState {
  std::shared_ptr<SplitServer> server;
  std::shared_ptr<WireStats> stats;  // as the server sees the wire: "up" received, "down" sent
  std::map<caf::actor_addr, uint64_t> session_of;  // client actor -> its session
  std::map<uint64_t, caf::node_id> node_of;        // session -> the node that opened it
  std::map<uint64_t, std::string> link_of;         // session -> link label
  std::map<uint64_t, std::chrono::steady_clock::time_point> last_seen;  // session -> last message
  ServerOptions options;
  // link label -> the strategy its session runs: the strategy label of wire metrics.
  std::shared_ptr<std::map<std::string, std::string>> strategy_of_link =
      std::make_shared<std::map<std::string, std::string>>();
  static inline const char* name = "gt.server";
};

server_actor::behavior_type server_behavior(server_actor::stateful_pointer<ServerActorState> self,
                                            std::shared_ptr<SplitServer> server,
                                            std::shared_ptr<WireStats> stats);
// The same with options: a curious owner's tap, Prometheus metrics, limits.
server_actor::behavior_type configured_server_behavior(
    server_actor::stateful_pointer<ServerActorState> self, std::shared_ptr<SplitServer> server,
    std::shared_ptr<WireStats> stats, ServerOptions options);

}  // namespace gt
