// What the roles of `gtune node` share (apps/node.cpp: server, builder, attacker, scheduler;
// apps/client_node.cpp: client): the options, addresses, the attacker behind its relay.
#pragma once

#include <spdlog/spdlog.h>

#include <caf/all.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "apps/metrics_options.hpp"
#include "apps/network_options.hpp"
#include "apps/reconnector.hpp"
#include "apps/run_options.hpp"
#include "common/error.hpp"
#include "protocols/interfaces.hpp"

namespace gt::cli {

struct NodeOptions {
  RunOptions run;
  std::string role, listen = "127.0.0.1:0", connect, builder, attacker, scheduler, port_file, out;
  int64_t shard = -1;  // with --scheduler: which of scheduler.clients this client is; -1 = none
  int64_t wait_seconds = 0;  // --wait: how long the first connection to each peer is retried
  MetricsOptions metrics;
  NetworkOptions network;
};

// "HOST:PORT" given with `option` (e.g. "--listen"); gt::Error naming the option otherwise.
std::pair<std::string, uint16_t> host_port(const std::string& s, const char* option);

// The first connection to a peer (`where`: "the server at H:P"): at once, or with --wait S
// tried again with backoff for up to S seconds (nodes started together, or one restarted
// while its peer restarts too). gt::Error naming the peer when it is not reached.
template <class Handle>
Handle connect_at_start(const NodeOptions& opt, const std::string& where,
                        const std::function<caf::expected<Handle>()>& connect) {
  caf::expected<Handle> party = connect();
  if (!party && opt.wait_seconds > 0) {
    spdlog::warn("{} unreachable ({}); waiting up to {} s for it (--wait)", where,
                 connect_error_text(party.error()), opt.wait_seconds);
    party = reach_again<Handle>(where, connect, std::chrono::seconds(opt.wait_seconds));
    if (!party) party = connect();  // the last failure's own explanation
  }
  if (!party) throw Error("cannot reach " + where + ": " + connect_error_text(party.error()));
  return *party;
}

// The plan tunes against an emulator somewhere (a phase, or the budget's fallback).
bool uses_emulators(const RunConfig& cfg);

// The attacker node at --attacker, for a server (its tap), a scheduler (its scores) or a
// client (an audit: its truths), behind a relay that reaches it again after a restart (within
// network.reconnect_seconds). The relay ends with this object, before the actor system.
class AttackerLink {
 public:
  AttackerLink(caf::actor_system& sys, const NodeOptions& opt, const RunConfig& cfg);
  AttackerLink(const AttackerLink&) = delete;
  AttackerLink& operator=(const AttackerLink&) = delete;
  ~AttackerLink();
  const attacker_actor& actor() const { return relay_; }

 private:
  attacker_actor relay_;
};

// The client role (apps/client_node.cpp).
void run_client_node(const NodeOptions& opt);

}  // namespace gt::cli
