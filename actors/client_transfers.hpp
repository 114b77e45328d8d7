// The client actor's file transfers (internal to actors/client*.cpp): the emulator from the
// builder, in chunks that resume after a cut, and the adapters tuned offline up to the server.
#pragma once

#include <functional>
#include <string>

#include "actors/client_requests.hpp"

namespace gt::client_detail {

// Asks the builder for the emulator of `strategy` and downloads it (resuming a partial
// download); calls `done` with the loaded emulator.
void fetch_emulator(ClientSelf self, const std::string& strategy,
                    std::function<void(Backbone)> done);

// The builder did not answer because it is gone (its node went down, or the request timed out).
bool builder_gone(const caf::error& err);

// Reaches a lost builder again (ClientParts::builder_reconnector) and redoes the transfer in
// flight; without a reconnector the run ends with `what` and the reason.
void builder_lost(ClientSelf self, const std::string& what, const caf::error& err);

// Sends the adapters tuned offline to the server and adopts exactly the values the server
// plugs in, so both sides hold the same adapters afterwards.
void upload_adapters(ClientSelf self, Next next);

}  // namespace gt::client_detail
