// A node's way back to a lost party: tries to connect with exponential backoff. The client
// node's server comes back through a detached actor (its own thread, so waiting blocks no
// one); its scheduler and builder through reach_again from the node's own thread.
#pragma once

#include <caf/all.hpp>
#include <chrono>
#include <functional>
#include <string>

#include "protocols/interfaces.hpp"

namespace gt::cli {

using ConnectAny = std::function<caf::expected<caf::strong_actor_ptr>()>;

// Tries `connect` at once, then after 0.5 s, 1 s, 2 s, ... (at most 30 s apart) until
// `patience` has passed; then an error naming `where` and the last failure.
caf::expected<caf::strong_actor_ptr> connect_with_backoff(const std::string& where,
                                                          const ConnectAny& connect,
                                                          std::chrono::seconds patience);

// `connect` of one typed party as a ConnectAny.
template <class Handle>
ConnectAny any_party(std::function<caf::expected<Handle>()> connect) {
  return [connect = std::move(connect)]() -> caf::expected<caf::strong_actor_ptr> {
    auto h = connect();
    if (!h) return h.error();
    return caf::actor_cast<caf::strong_actor_ptr>(*h);
  };
}

// connect_with_backoff for one typed party.
template <class Handle>
caf::expected<Handle> reach_again(const std::string& where,
                                  const std::function<caf::expected<Handle>()>& connect,
                                  std::chrono::seconds patience) {
  auto any = connect_with_backoff(where, any_party(connect), patience);
  if (!any) return any.error();
  return caf::actor_cast<Handle>(*any);
}

// Replies to `reconnect` with the party reached again (a caf::strong_actor_ptr) or an error
// once connect_with_backoff gives up. `where` names the party in logs.
caf::actor spawn_reconnector(caf::actor_system& sys, std::string where, ConnectAny connect,
                             std::chrono::seconds patience);

}  // namespace gt::cli
