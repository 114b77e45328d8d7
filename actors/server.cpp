// See server.hpp. Every handler: decode (validates) -> strategy -> encode,
// counting bytes on both sides; a ProtocolError becomes a `rejected` error.
#include "actors/server.hpp"

#include <spdlog/spdlog.h>

namespace gt {
namespace {

using Self = server_actor::stateful_pointer<ServerActorState>;

std::string link_for(const std::string& client_name) {
  return client_name + "-server";
}

template <class Req, class Rep, class Handle>
caf::result<Encoded<Rep>> serve(Self self, const Encoded<Req>& msg, Handle&& handle) {
  auto& st = self->state;
  try {
    auto req = decode(msg);
    const auto link_it = st.link_of.find(req.header.session);
    const std::string link = link_it != st.link_of.end() ? link_it->second : "unknown";
    Rep rep = handle(req);
    auto out = encode(rep);
    const auto link_out =
        st.link_of.count(rep.header.session) ? st.link_of[rep.header.session] : link;
    st.stats->add(link_out, "up", message_kind<Req>(), static_cast<int64_t>(msg.bytes.size()));
    st.stats->add(link_out, "down", message_kind<Rep>(), static_cast<int64_t>(out.bytes.size()));
    return out;
  } catch (const ProtocolError& e) {
    spdlog::warn("server: rejected {} from {}: {}", message_kind<Req>(),
                 caf::to_string(self->current_sender()), e.what());
    st.stats->add("rejected", "up", message_kind<Req>(), static_cast<int64_t>(msg.bytes.size()));
    return make_wire_error(wire_errc::rejected, e.what());
  } catch (const std::exception& e) {
    spdlog::error("server: failed on {}: {}", message_kind<Req>(), e.what());
    return make_wire_error(wire_errc::internal, e.what());
  }
}

void end_session(Self self, uint64_t session, const std::string& why) {
  auto& st = self->state;
  if (!st.server->has_session(session)) return;
  spdlog::info("server: session {} ({}) ended: {}; {} session(s) left", session,
               st.link_of[session], why, st.server->num_sessions() - 1);
  st.server->close(session);
}

}  // namespace

server_actor::behavior_type server_behavior(Self self, std::shared_ptr<SplitServer> server,
                                            std::shared_ptr<WireStats> stats) {
  return tapped_server_behavior(self, std::move(server), std::move(stats), attacker_actor{});
}

server_actor::behavior_type tapped_server_behavior(Self self, std::shared_ptr<SplitServer> server,
                                                   std::shared_ptr<WireStats> stats,
                                                   attacker_actor tap) {
  return metered_server_behavior(self, std::move(server), std::move(stats), std::move(tap),
                                 nullptr);
}

server_actor::behavior_type metered_server_behavior(Self self, std::shared_ptr<SplitServer> server,
                                                    std::shared_ptr<WireStats> stats,
                                                    attacker_actor tap,
                                                    std::shared_ptr<Metrics> metrics) {
  if (metrics)  // runs in this actor's thread, like every update of strategy_of_link
    stats->set_observer([metrics, strategies = self->state.strategy_of_link](
                            const WireStats::Key& key, int64_t bytes) {
      const auto it = strategies->find(std::get<0>(key));
      metrics->add_wire(std::get<0>(key), std::get<1>(key), std::get<2>(key),
                        it != strategies->end() ? it->second : "none", bytes);
    });
  self->state.server = std::move(server);
  self->state.stats = std::move(stats);
  self->state.tap = std::move(tap);
  // A client that goes away (crash, kill, lost connection) ends its session.
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    auto it = st.session_of.find(dm.source);
    if (it == st.session_of.end()) return;
    end_session(self, it->second, "client down (" + caf::to_string(dm.reason) + ")");
    st.session_of.erase(it);
  });
  return {
      [self](Encoded<SessionHello>& msg) -> caf::result<Encoded<SessionAccept>> {
        return serve<SessionHello, SessionAccept>(self, msg, [&](const SessionHello& hello) {
          auto& st = self->state;
          const auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
          // Only the party that opened a session may change its terms.
          if (hello.header.session != 0) {
            auto owner = st.session_of.find(sender);
            if (owner == st.session_of.end() || owner->second != hello.header.session)
              throw ProtocolError("session " + std::to_string(hello.header.session) +
                                  " belongs to another party");
          }
          auto accept = st.server->open(hello);
          const auto id = accept.header.session;
          if (st.tap) self->send(st.tap, tap_atom_v, msg, encode(accept));
          if (hello.header.session != 0) {
            spdlog::info("server: session {} ({}) now runs {}", id, st.link_of[id], hello.strategy);
            (*st.strategy_of_link)[st.link_of[id]] = hello.strategy;
            return accept;
          }
          st.link_of[id] = link_for(hello.client_name);
          (*st.strategy_of_link)[st.link_of[id]] = hello.strategy;
          if (auto s = self->current_sender()) {
            self->monitor(s);
            st.session_of[sender] = id;
          }
          spdlog::info("server: session {} opened for client '{}' ({})", id, hello.client_name,
                       hello.strategy);
          return accept;
        });
      },
      [self](Encoded<ForwardRequest>& msg) -> caf::result<Encoded<ForwardReply>> {
        auto out = serve<ForwardRequest, ForwardReply>(
            self, msg, [&](const ForwardRequest& req) { return self->state.server->forward(req); });
        if (self->state.tap && out.flag == caf::rt_value)
          self->send(self->state.tap, tap_atom_v, msg, out.value.get_as<Encoded<ForwardReply>>(0));
        return out;
      },
      [self](Encoded<BackwardRequest>& msg) -> caf::result<Encoded<BackwardReply>> {
        auto out = serve<BackwardRequest, BackwardReply>(
            self, msg,
            [&](const BackwardRequest& req) { return self->state.server->backward(req); });
        if (self->state.tap && out.flag == caf::rt_value)
          self->send(self->state.tap, tap_atom_v, msg);
        return out;
      },
      [self](Encoded<AdapterUpload>& msg) -> caf::result<Encoded<AdapterAck>> {
        return serve<AdapterUpload, AdapterAck>(self, msg, [&](const AdapterUpload& up) {
          auto ack = self->state.server->plug(up);
          spdlog::info("server: plugged {} adapter tensors ({} parameters{}) of session {}",
                       ack.tensors, ack.parameters, up.delta ? ", as deltas" : "",
                       up.header.session);
          return ack;
        });
      },
      [self](Encoded<SessionBye>& msg) {
        try {
          auto bye = decode(msg);
          const auto it = self->state.link_of.find(bye.header.session);
          self->state.stats->add(it != self->state.link_of.end() ? it->second : "unknown", "up",
                                 message_kind<SessionBye>(),
                                 static_cast<int64_t>(msg.bytes.size()));
          end_session(self, bye.header.session, "client said goodbye");
        } catch (const ProtocolError& e) {
          spdlog::warn("server: rejected session_bye: {}", e.what());
        }
      },
  };
}

}  // namespace gt
