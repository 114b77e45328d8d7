// The client actor's requests to its peers, shared by actors/client*.cpp (not an interface):
// every message counted on the wire and its reply decoded; an error from the server recovered
// (a lost session opened again, a lost server reached again, then the request redone) or turned
// into a failed phase.
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <functional>
#include <string>

#include "actors/client.hpp"

namespace gt::client_detail {

using ClientSelf = client_actor::stateful_pointer<ClientActorState>;
using Next = std::function<void()>;
inline constexpr auto kReplyTimeout = std::chrono::minutes(10);

std::string link(ClientSelf self, const char* peer = "server");

template <class T>
Encoded<T> send_counted(ClientSelf self, const T& msg, const std::string& suffix = "",
                        const char* peer = "server") {
  const auto& channel = self->state.channel;
  auto enc = encode(
      msg, channel && std::string(peer) == "server" ? channel->compression() : Compression::none);
  self->state.parts.stats->add(link(self, peer), "up", message_kind<T>() + suffix,
                               static_cast<int64_t>(enc.bytes.size()));
  return enc;
}

template <class T>
T receive_counted(ClientSelf self, const Encoded<T>& enc, const std::string& suffix = "",
                  const char* peer = "server") {
  self->state.parts.stats->add(link(self, peer), "down", message_kind<T>() + suffix,
                               static_cast<int64_t>(enc.bytes.size()));
  return decode(enc);
}

// Ends the phase with `what` as its error and stops the actor.
void fail(ClientSelf self, const std::string& what);

// Runs `fn`, turning exceptions into a failed phase (an actor must not throw).
template <class F>
void guarded(ClientSelf self, F&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    fail(self, e.what());
  }
}

inline auto on_error(ClientSelf self, std::string what) {
  return [self, what](caf::error& err) { fail(self, what + ": " + describe(err)); };
}

// Opens the session with the server (or updates its terms), then `next`.
void hello(ClientSelf self, Next next);

// Drops every request in flight (their late answers are then ignored) and recovers with the
// one that failed: all of them belong to one step or exchange, which its retry redoes.
void take_over(ClientSelf self, uint64_t failed, const caf::error& err);

// Asks the server; `on_reply` gets the decoded reply, an error goes to recover(what, retry).
// One request is outstanding at a time, or a pipelined step's several (the server answers them
// in order): when the server's node goes down, the down handler takes them over at once (CAF
// would only time them out), and their late answers are ignored.
template <class Rep, class Req, class OnReply>
void ask_server(ClientSelf self, const Req& msg, const std::string& suffix, std::string what,
                Next retry, OnReply on_reply) {
  auto& st = self->state;
  const auto id = ++st.requests;
  st.pending[id] = PendingRequest{id, std::move(what), std::move(retry)};
  if (st.server_down) {  // a pipelined step's further requests wait for the recovery
    if (st.reconnecting) return void(st.pending.erase(id));
    return take_over(self, id, *st.server_down);
  }
  self->request(st.parts.server, kReplyTimeout, send_counted(self, msg, suffix))
      .then(
          [self, id, suffix, on_reply](Encoded<Rep>& enc) {
            auto& st = self->state;
            if (!st.pending.erase(id)) return;  // taken over after a loss
            guarded(self, [&] { on_reply(receive_counted(self, enc, suffix)); });
          },
          [self, id](caf::error& err) {
            if (!self->state.pending.count(id)) return;
            take_over(self, id, err);
          });
}

}  // namespace gt::client_detail
