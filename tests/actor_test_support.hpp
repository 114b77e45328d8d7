// What the actor tests share: an actor system that knows the protocol's message types,
// and quiet logs (the actors log every rejection and session; test output stays readable).
#pragma once

#include <spdlog/spdlog.h>

#include <caf/actor_system_config.hpp>

#include "protocols/interfaces.hpp"

namespace gt::test {

struct ActorConfig : caf::actor_system_config {
  ActorConfig() { gt::register_protocol(*this); }
};

struct QuietLogs {
  spdlog::level::level_enum before = spdlog::get_level();
  QuietLogs() { spdlog::set_level(spdlog::level::off); }
  ~QuietLogs() { spdlog::set_level(before); }
};

}  // namespace gt::test
