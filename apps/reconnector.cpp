// See reconnector.hpp.
#include "apps/reconnector.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

namespace gt::cli {

caf::expected<caf::strong_actor_ptr> connect_with_backoff(const std::string& where,
                                                          const ConnectAny& connect,
                                                          std::chrono::seconds patience) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + patience;
  auto wait = std::chrono::milliseconds(500);
  std::string last;
  for (int attempt = 1;; ++attempt) {
    auto party = connect();
    if (party) {
      spdlog::info("reconnected to {} (attempt {})", where, attempt);
      return *party;
    }
    last = caf::to_string(party.error());
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    if (left.count() <= 0) break;
    wait = std::min({wait, left, std::chrono::milliseconds(30000)});
    spdlog::warn("{} unreachable ({}); trying again in {:.1f} s", where, last,
                 wait.count() / 1000.0);
    std::this_thread::sleep_for(wait);
    wait *= 2;
  }
  return make_wire_error(wire_errc::internal, where + " not reached for " +
                                                  std::to_string(patience.count()) +
                                                  " s (network.reconnect_seconds): " + last);
}

caf::actor spawn_reconnector(caf::actor_system& sys, std::string where, ConnectAny connect,
                             std::chrono::seconds patience) {
  // What it needs goes in as spawn arguments, not captures: CAF 0.17 dereferences a null
  // argument tuple for an actor spawned without any (UBSan reports it).
  auto behavior = [](caf::event_based_actor*, std::string where, ConnectAny connect,
                     std::chrono::seconds patience) {
    return caf::behavior{
        [where, connect, patience](reconnect_atom) -> caf::result<caf::strong_actor_ptr> {
          auto party = connect_with_backoff(where, connect, patience);
          if (!party) return party.error();
          return *party;
        }};
  };
  return sys.spawn<caf::detached>(behavior, std::move(where), std::move(connect), patience);
}

}  // namespace gt::cli
