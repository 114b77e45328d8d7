// Running a client to completion against a server actor (local or remote),
// and the centralized baseline, which needs no server actor.
#pragma once

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <string>

#include "apps/parties.hpp"
#include "protocols/interfaces.hpp"

namespace gt::cli {

// Spawns the client actor in `sys`, runs the plan, returns the results JSON.
// Throws gt::Error when the run fails (e.g. the server rejects it or dies).
std::string run_client(caf::actor_system& sys, const RunConfig& cfg, ClientSide& client,
                       server_actor server, bool show_progress);

std::string run_centralized(const RunConfig& cfg, ClientSide& client, bool show_progress);

// An actor-system configuration with every protocol type registered.
struct ActorConfig : caf::actor_system_config {
  ActorConfig();
};

}  // namespace gt::cli
