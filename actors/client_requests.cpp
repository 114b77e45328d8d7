// See client_requests.hpp.
#include "actors/client_requests.hpp"

namespace gt::client_detail {

std::string link(ClientSelf self, const char* peer) {
  return self->state.plan.name + "-" + peer;
}

void fail(ClientSelf self, const std::string& what) {
  spdlog::error("client {}: {}", self->state.plan.name, what);
  if (self->state.phase_done.pending())
    self->state.phase_done.deliver(make_wire_error(wire_errc::internal, what));
  self->quit(caf::exit_reason::user_shutdown);
}

namespace {

// The server no longer knows our session (it timed out while we were paused, or the server
// restarted): a new one is opened.
bool session_lost(const caf::error& err) {
  const auto text = describe(err);
  return is_wire_error(err) && (text.find("is not yours") != std::string::npos ||
                                text.find("unknown session") != std::string::npos);
}

// An error from the server: a lost session is opened again and a lost connection
// reached again (with a reconnector), then `retry` redoes what failed; anything else
// (the server refused the request) ends the run.
auto recover(ClientSelf self, std::string what, Next retry) {
  return [self, what, retry](caf::error& err) {
    auto& st = self->state;
    if (!st.channel) return fail(self, what + ": " + describe(err));
    if (session_lost(err)) {
      spdlog::warn("client {}: {} ({}); opening a new session", st.plan.name, what, describe(err));
      st.channel->set_session(0);
      return hello(self, retry);
    }
    if (is_wire_error(err)) return fail(self, what + ": " + describe(err));
    if (!st.parts.reconnector)
      return fail(self, what + ": the connection to the server was lost (" + describe(err) +
                            "): the server stopped, the network failed, or the server hung up on "
                            "a message over its server.max_message_mb");
    spdlog::warn("client {}: lost the server ({}: {}); reconnecting", st.plan.name, what,
                 describe(err));
    st.reconnecting = true;
    self->request(st.parts.reconnector, caf::infinite, reconnect_atom_v)
        .then(
            [self, retry](caf::strong_actor_ptr& server) {
              auto& st = self->state;
              st.parts.server = caf::actor_cast<server_actor>(server);
              st.server_down.reset();
              st.reconnecting = false;
              self->monitor(st.parts.server);
              if (st.parts.metrics) st.parts.metrics->add_reconnect(st.plan.name);
              spdlog::info("client {}: reached the server again; new session", st.plan.name);
              st.channel->set_session(0);
              hello(self, retry);
            },
            [self, what](caf::error& e) {
              fail(self, what + ": the server was lost and not reached again: " + describe(e));
            });
  };
}

}  // namespace

void take_over(ClientSelf self, uint64_t failed, const caf::error& err) {
  auto& st = self->state;
  auto p = std::move(st.pending.at(failed));
  st.pending.clear();
  auto e = err;
  recover(self, p.what, p.retry)(e);
}

void hello(ClientSelf self, Next next) {
  auto& st = self->state;
  ask_server<SessionAccept>(self, st.channel->hello(st.plan.name), "", "session refused: server",
                            next, [self, next](const SessionAccept& accept) {
                              auto& st = self->state;
                              if (st.channel->session() == 0)
                                spdlog::info("client {}: session {} with server '{}'", st.plan.name,
                                             accept.header.session, accept.server_name);
                              st.channel->set_session(accept.header.session);
                              next();
                            });
}

}  // namespace gt::client_detail
