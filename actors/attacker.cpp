// See attacker.hpp. A message it cannot decode is the server's problem (the
// server already rejected it); the attacker logs and ignores it.
#include "actors/attacker.hpp"

#include <spdlog/spdlog.h>

namespace gt {
namespace {

using Self = attacker_actor::stateful_pointer<AttackerState>;

template <class F>
void guarded(const char* what, F&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    spdlog::warn("attacker: {}: {}", what, e.what());
  }
}

}  // namespace

attacker_actor::behavior_type attacker_behavior(Self self,
                                                std::shared_ptr<Eavesdropper> eavesdropper,
                                                std::shared_ptr<Metrics> metrics) {
  self->state.eavesdropper = std::move(eavesdropper);
  self->state.metrics = std::move(metrics);
  return {
      [self](tap_atom, Encoded<SessionHello>& hello, Encoded<SessionAccept>& accept) {
        guarded("session", [&] {
          auto h = decode(hello);
          self->state.eavesdropper->on_session(decode(accept).header.session, h.client_name,
                                               h.strategy);
        });
      },
      [self](tap_atom, Encoded<ForwardRequest>& req, Encoded<ForwardReply>& rep) {
        guarded("forward", [&] {
          auto f = decode(req);
          auto a2 = from_wire(decode(rep).activations, "a2");
          self->state.eavesdropper->on_forward(f.header.session, f.header.step,
                                               from_wire(f.attention_mask, "attention_mask"),
                                               from_wire(f.activations, "a1"), a2);
        });
      },
      [self](tap_atom, Encoded<BackwardRequest>& req) {
        guarded("backward", [&] {
          auto b = decode(req);
          self->state.eavesdropper->on_backward(b.header.session, b.header.step,
                                                from_wire(b.gradient, "g2"));
        });
      },
      [self](AuditTruth& t) {
        guarded("audit truth", [&] {
          if (t.rows <= 0 || t.cols <= 0 || t.input_ids.size() != size_t(t.rows * t.cols) ||
              t.attention_mask.size() != t.input_ids.size())
            throw std::runtime_error("malformed truth");
          auto ids = torch::tensor(t.input_ids, torch::kLong).view({t.rows, t.cols});
          auto mask = torch::tensor(t.attention_mask, torch::kLong).view({t.rows, t.cols});
          auto& st = self->state;
          st.eavesdropper->on_truth(t.client, t.step, ids, mask);
          if (st.metrics)
            for (const auto& score : st.eavesdropper->report()["scores"])
              st.metrics->set_attack_score(
                  score["client"].get<std::string>(), score["strategy"].get<std::string>(),
                  score["attack"].get<std::string>(), score["rouge_l"].get<double>());
          const auto best = st.eavesdropper->best();
          if (st.watcher && best.rouge_l > st.alarmed) {
            st.alarmed = best.rouge_l;
            self->send(st.watcher, best);
          }
        });
      },
      [self](report_atom) -> std::string { return self->state.eavesdropper->report().dump(); },
      [self](watch_atom, scheduler_actor& scheduler) {
        self->state.watcher = std::move(scheduler);
      },
  };
}

}  // namespace gt
