// A client node's way back to a lost server: a detached actor (its own thread,
// so waiting blocks no one) that tries to connect with exponential backoff.
#pragma once

#include <caf/all.hpp>
#include <chrono>
#include <functional>
#include <string>

#include "protocols/interfaces.hpp"

namespace gt::cli {

using Connect = std::function<caf::expected<server_actor>()>;

// Replies to `reconnect` with the server reached again (a caf::strong_actor_ptr), trying
// `connect` after 0.5 s, 1 s, 2 s, ... (at most 30 s apart) until `patience` has passed;
// then with an error naming the last failure. `where` names the server in logs.
caf::actor spawn_reconnector(caf::actor_system& sys, std::string where, Connect connect,
                             std::chrono::seconds patience);

}  // namespace gt::cli
