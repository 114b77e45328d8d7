// See server.hpp. Every handler: decode (validates) -> strategy -> encode,
// counting bytes on both sides; a ProtocolError becomes a `rejected` error.
#include "actors/server.hpp"

#include <spdlog/spdlog.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace gt {
namespace {

using ServerSelf = server_actor::stateful_pointer<ServerActorState>;

std::string link_for(const std::string& client_name) {
  return client_name + "-server";
}

// A refusal with its reason, for the log, the metric and the client's error.
struct Refusal : ProtocolError {
  Refusal(std::string reason, const std::string& what)
      : ProtocolError(what), reason(std::move(reason)) {}
  std::string reason;
};

std::string reason_of(const ProtocolError& e) {
  if (auto* r = dynamic_cast<const Refusal*>(&e)) return r->reason;
  return std::string(e.what()).rfind("protocol version", 0) == 0 ? "version" : "invalid";
}

void check_size(ServerSelf self, size_t bytes) {
  const auto limit = self->state.options.limits.max_message_bytes;
  if (static_cast<int64_t>(bytes) > limit)
    throw Refusal("too_large", "message of " + std::to_string(bytes) + " bytes exceeds " +
                                   std::to_string(limit) + " (server.max_message_mb)");
}

// Only the party that opened a session may use it. A session that is gone (its client
// died, it timed out) says so to anyone: its id is no secret, and a client tells by the
// reason whether to open a new one.
void check_owner(ServerSelf self, uint64_t session) {
  auto& st = self->state;
  if (!st.server->has_session(session))
    throw ProtocolError("unknown session " + std::to_string(session));
  const auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
  const auto owner = st.session_of.find(sender);
  if (owner == st.session_of.end() || owner->second != session)
    throw Refusal("not_owner", "session " + std::to_string(session) + " is not yours");
  st.last_seen[session] = std::chrono::steady_clock::now();
}

template <class Req, class Rep, class Handle>
caf::result<Encoded<Rep>> serve(ServerSelf self, const Encoded<Req>& msg, Handle&& handle) {
  auto& st = self->state;
  try {
    check_size(self, msg.bytes.size());
    // A compressed message may not unpack to more than an uncompressed one may be.
    auto req = decode(msg, static_cast<size_t>(st.options.limits.max_message_bytes));
    if constexpr (!std::is_same_v<Req, SessionHello>) check_owner(self, req.header.session);
    const auto link_it = st.link_of.find(req.header.session);
    const std::string link = link_it != st.link_of.end() ? link_it->second : "unknown";
    Rep rep = handle(req);
    auto out = encode(rep, st.server->compression(rep.header.session));
    const auto link_out =
        st.link_of.count(rep.header.session) ? st.link_of[rep.header.session] : link;
    st.stats->add(link_out, "up", message_kind<Req>(), static_cast<int64_t>(msg.bytes.size()));
    st.stats->add(link_out, "down", message_kind<Rep>(), static_cast<int64_t>(out.bytes.size()));
    return out;
  } catch (const ProtocolError& e) {
    spdlog::warn("server: rejected {} from {}: {}", message_kind<Req>(),
                 caf::to_string(self->current_sender()), e.what());
    st.stats->add("rejected", "up", message_kind<Req>(), static_cast<int64_t>(msg.bytes.size()));
    if (st.options.metrics) st.options.metrics->add_refused(message_kind<Req>(), reason_of(e));
    return make_wire_error(wire_errc::rejected, e.what());
  } catch (const std::exception& e) {
    spdlog::error("server: failed on {}: {}", message_kind<Req>(), e.what());
    return make_wire_error(wire_errc::internal, e.what());
  }
}

// A session's multi-MB activation buffers go back to glibc's per-thread arenas,
// which keep them: a server's RSS then creeps up with every client that comes
// and goes (docs/soak.md). Handing the free pages back when a session ends
// costs nothing per step.
void release_freed_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

void end_session(ServerSelf self, uint64_t session, const std::string& why) {
  auto& st = self->state;
  if (!st.server->has_session(session)) return;
  spdlog::info("server: session {} ({}) ended: {}; {} session(s) left", session,
               st.link_of[session], why, st.server->num_sessions() - 1);
  st.server->close(session);
  st.last_seen.erase(session);
  st.link_of.erase(session);
  st.node_of.erase(session);
  for (auto it = st.session_of.begin(); it != st.session_of.end(); ++it)
    if (it->second == session) {
      st.session_of.erase(it);
      break;
    }
  if (st.options.metrics) {
    st.options.metrics->set_sessions(int64_t(st.server->num_sessions()));
    st.options.metrics->set_generation_cache(st.server->cache_bytes(),
                                             st.server->num_generations());
  }
  release_freed_memory();
}

// Drops the sessions that sent nothing for the timeout (a hung or lost client
// whose connection stays up), then looks again in a while.
void sweep(ServerSelf self) {
  auto& st = self->state;
  const auto timeout = st.options.limits.session_timeout;
  const auto now = std::chrono::steady_clock::now();
  std::vector<uint64_t> idle;
  for (const auto& [session, seen] : st.last_seen)
    if (now - seen > timeout) idle.push_back(session);
  for (auto session : idle) {
    end_session(self, session, "no message for " + std::to_string(timeout.count()) + " s");
    if (st.options.metrics) st.options.metrics->add_session_timeout();
  }
  self->delayed_send(self, std::max(timeout / 4, std::chrono::seconds(1)), sweep_atom_v);
}

template <class Request>
void check_batch(ServerSelf self, const Request& req) {
  const auto& shape = req.activations.shape;
  const int64_t tokens = shape.size() >= 2 ? shape[0] * shape[1] : 0;
  const auto limit = self->state.options.limits.max_batch_tokens;
  if (tokens > limit)
    throw Refusal("too_large", "a batch of " + std::to_string(tokens) + " tokens exceeds " +
                                   std::to_string(limit) + " (server.max_batch_tokens)");
}

}  // namespace

server_actor::behavior_type server_behavior(ServerSelf self, std::shared_ptr<SplitServer> server,
                                            std::shared_ptr<WireStats> stats) {
  return configured_server_behavior(self, std::move(server), std::move(stats), ServerOptions{});
}

server_actor::behavior_type configured_server_behavior(ServerSelf self,
                                                       std::shared_ptr<SplitServer> server,
                                                       std::shared_ptr<WireStats> stats,
                                                       ServerOptions options) {
  if (options.metrics)  // runs in this actor's thread, like every update of strategy_of_link
    stats->set_observer([metrics = options.metrics, strategies = self->state.strategy_of_link](
                            const WireStats::Key& key, int64_t bytes) {
      const auto it = strategies->find(std::get<0>(key));
      metrics->add_wire(std::get<0>(key), std::get<1>(key), std::get<2>(key),
                        it != strategies->end() ? it->second : "none", bytes);
    });
  self->state.server = std::move(server);
  self->state.stats = std::move(stats);
  self->state.options = std::move(options);
  self->state.server->set_cache_limit(self->state.options.limits.max_cache_bytes);
  self->state.server->set_plugged_limit(self->state.options.limits.max_plugged_bytes,
                                        self->state.options.plugged_dir);
  sweep(self);
  // A client that goes away (crash, kill, lost connection) ends its session.
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    auto it = st.session_of.find(dm.source);
    if (it == st.session_of.end()) return;
    end_session(self, it->second, "client down (" + caf::to_string(dm.reason) + ")");
  });
  return {
      [self](Encoded<SessionHello>& msg) -> caf::result<Encoded<SessionAccept>> {
        return serve<SessionHello, SessionAccept>(self, msg, [&](const SessionHello& hello) {
          auto& st = self->state;
          const auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
          if (hello.header.session != 0) check_owner(self, hello.header.session);
          const auto max = st.options.limits.max_sessions;
          if (hello.header.session == 0 && int64_t(st.server->num_sessions()) >= max)
            throw Refusal("full", "the server is full: " + std::to_string(max) +
                                      " sessions open (server.max_sessions)");
          const auto node = sender.node();
          if (hello.header.session == 0 && node != self->node()) {
            int64_t held = 0;
            for (const auto& [session, n] : st.node_of) held += n == node;
            const auto per_peer = st.options.limits.max_sessions_per_peer;
            if (held >= per_peer)
              throw Refusal("peer_sessions", "your node holds " + std::to_string(held) +
                                                 " sessions open already "
                                                 "(server.max_sessions_per_peer)");
          }
          auto accept = st.server->open(hello);
          const auto id = accept.header.session;
          if (st.options.tap) self->send(st.options.tap, tap_atom_v, msg, encode(accept));
          if (hello.header.session != 0) {
            spdlog::info("server: session {} ({}) now runs {}", id, st.link_of[id], hello.strategy);
            (*st.strategy_of_link)[st.link_of[id]] = hello.strategy;
            return accept;
          }
          st.link_of[id] = link_for(hello.client_name);
          st.node_of[id] = node;
          (*st.strategy_of_link)[st.link_of[id]] = hello.strategy;
          if (auto s = self->current_sender()) {
            self->monitor(s);
            st.session_of[sender] = id;
          }
          st.last_seen[id] = std::chrono::steady_clock::now();
          if (st.options.metrics)
            st.options.metrics->set_sessions(int64_t(st.server->num_sessions()));
          spdlog::info("server: session {} opened for client '{}' ({})", id, hello.client_name,
                       hello.strategy);
          return accept;
        });
      },
      [self](Encoded<ForwardRequest>& msg) -> caf::result<Encoded<ForwardReply>> {
        auto out = serve<ForwardRequest, ForwardReply>(self, msg, [&](ForwardRequest& req) {
          check_batch(self, req);
          return self->state.server->forward(std::move(req));
        });
        const auto& tap = self->state.options.tap;
        if (tap && out.flag == caf::rt_value)
          self->send(tap, tap_atom_v, msg, out.value.get_as<Encoded<ForwardReply>>(0));
        return out;
      },
      [self](Encoded<BackwardRequest>& msg) -> caf::result<Encoded<BackwardReply>> {
        auto out = serve<BackwardRequest, BackwardReply>(self, msg, [&](BackwardRequest& req) {
          return self->state.server->backward(std::move(req));
        });
        const auto& tap = self->state.options.tap;
        if (tap && out.flag == caf::rt_value) self->send(tap, tap_atom_v, msg);
        return out;
      },
      [self](Encoded<GenerateRequest>& msg) -> caf::result<Encoded<GenerateReply>> {
        return serve<GenerateRequest, GenerateReply>(self, msg, [&](GenerateRequest& req) {
          check_batch(self, req);
          const auto& shape = req.attention_mask.shape;
          const int64_t positions = shape.size() == 2 ? shape[0] * shape[1] : 0;
          auto reply = self->state.server->generate(std::move(req));
          if (const auto& m = self->state.options.metrics) {
            m->add_generation_positions(positions);
            m->set_generation_cache(self->state.server->cache_bytes(),
                                    self->state.server->num_generations());
          }
          return reply;
        });
      },
      [self](Encoded<AdapterUpload>& msg) -> caf::result<Encoded<AdapterAck>> {
        return serve<AdapterUpload, AdapterAck>(self, msg, [&](const AdapterUpload& up) {
          auto ack = self->state.server->plug(up);
          spdlog::info("server: plugged {} adapter tensors ({} parameters{}) of session {}",
                       ack.tensors, ack.parameters, up.delta ? ", as deltas" : "",
                       up.header.session);
          const auto& server = *self->state.server;
          if (!self->state.options.plugged_dir.empty())
            spdlog::info("server: kept them in {}", self->state.options.plugged_dir);
          if (const auto& m = self->state.options.metrics)
            m->set_plugged_adapters(server.plugged_bytes(), server.plugged_evictions());
          return ack;
        });
      },
      [self](Encoded<SessionBye>& msg) {
        try {
          check_size(self, msg.bytes.size());
          auto bye = decode(msg);
          check_owner(self, bye.header.session);
          const auto it = self->state.link_of.find(bye.header.session);
          self->state.stats->add(it != self->state.link_of.end() ? it->second : "unknown", "up",
                                 message_kind<SessionBye>(),
                                 static_cast<int64_t>(msg.bytes.size()));
          end_session(self, bye.header.session, "client said goodbye");
        } catch (const ProtocolError& e) {
          spdlog::warn("server: rejected session_bye: {}", e.what());
          if (self->state.options.metrics)
            self->state.options.metrics->add_refused("session_bye", reason_of(e));
        }
      },
      [self](sweep_atom) { sweep(self); },
  };
}

}  // namespace gt
