// See attacker_relay.hpp.
#include "actors/attacker_relay.hpp"

#include <spdlog/spdlog.h>

namespace gt {
namespace {

using RelaySelf = attacker_actor::stateful_pointer<AttackerRelayState>;

template <class... Ts>
void forward(RelaySelf self, Ts&&... xs) {
  auto& st = self->state;
  if (st.attacker)
    self->send(st.attacker, std::forward<Ts>(xs)...);
  else
    ++st.dropped;
}

void reach_again(RelaySelf self) {
  auto& st = self->state;
  if (!st.reconnector) {
    spdlog::warn("attacker relay: lost {}; what it would get is dropped from now on", st.where);
    return;
  }
  spdlog::warn("attacker relay: lost {}; reconnecting (its messages are dropped meanwhile)",
               st.where);
  self->request(st.reconnector, caf::infinite, reconnect_atom_v)
      .then(
          [self](caf::strong_actor_ptr& attacker) {
            auto& st = self->state;
            st.attacker = caf::actor_cast<attacker_actor>(attacker);
            self->monitor(st.attacker);
            if (st.watcher) self->send(st.attacker, watch_atom_v, *st.watcher);
            spdlog::info("attacker relay: reached {} again ({} message(s) dropped meanwhile)",
                         st.where, st.dropped);
          },
          [self](caf::error& err) {
            spdlog::warn(
                "attacker relay: {} not reached again ({}); what it would get is "
                "dropped from now on",
                self->state.where, describe(err));
          });
}

}  // namespace

attacker_actor::behavior_type attacker_relay(RelaySelf self, attacker_actor attacker,
                                             caf::actor reconnector, std::string where) {
  auto& st = self->state;
  st.attacker = std::move(attacker);
  st.reconnector = std::move(reconnector);
  st.where = std::move(where);
  if (st.reconnector) self->link_to(st.reconnector);
  if (st.attacker) self->monitor(st.attacker);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    if (!st.attacker || dm.source != st.attacker.address()) return;
    st.attacker = nullptr;
    reach_again(self);
  });
  return {
      [self](tap_atom, Encoded<SessionHello>& hello, Encoded<SessionAccept>& accept) {
        forward(self, tap_atom_v, std::move(hello), std::move(accept));
      },
      [self](tap_atom, Encoded<ForwardRequest>& req, Encoded<ForwardReply>& reply) {
        forward(self, tap_atom_v, std::move(req), std::move(reply));
      },
      [self](tap_atom, Encoded<BackwardRequest>& req) {
        forward(self, tap_atom_v, std::move(req));
      },
      [self](AuditTruth& truth) { forward(self, std::move(truth)); },
      [self](report_atom) -> caf::result<std::string> {
        auto& st = self->state;
        if (!st.attacker)
          return make_wire_error(wire_errc::internal, st.where + " is not reachable now");
        return self->delegate(st.attacker, report_atom_v);
      },
      [self](watch_atom, scheduler_actor& watcher) {
        self->state.watcher = watcher;
        forward(self, watch_atom_v, std::move(watcher));
      },
  };
}

}  // namespace gt
