// See attacker.hpp. A message it cannot decode is the server's problem (the
// server already rejected it); the attacker logs and ignores it.
#include "actors/attacker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace gt {
namespace {

using AttackerSelf = attacker_actor::stateful_pointer<AttackerState>;

template <class F>
void guarded(const char* what, F&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    spdlog::warn("attacker: {}: {}", what, e.what());
  }
}

// Readies `c` for a chunk of a pipelined step: a chunk of another step starts over.
void expect_chunk(MicroChunks& c, const Header& h) {
  if (c.step != h.step || c.a1.size() != h.micros) {
    c = MicroChunks{};
    c.step = h.step;
    for (auto* v : {&c.mask, &c.a1, &c.a2, &c.g2}) v->assign(h.micros, torch::Tensor());
  }
}

bool complete(const std::vector<torch::Tensor>& chunks) {
  return std::all_of(chunks.begin(), chunks.end(),
                     [](const torch::Tensor& t) { return t.defined(); });
}

}  // namespace

attacker_actor::behavior_type attacker_behavior(AttackerSelf self,
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
          auto mask = from_wire(f.attention_mask, "attention_mask");
          auto a1 = from_wire(f.activations, "a1");
          const auto& h = f.header;
          auto& st = self->state;
          if (h.micros > 1) {  // a micro-batch: the whole batch once its last chunk is here
            auto& c = st.forwards[h.session];
            expect_chunk(c, h);
            c.mask[h.micro] = mask, c.a1[h.micro] = a1, c.a2[h.micro] = a2;
            if (!complete(c.a2)) return;
            mask = torch::cat(c.mask, 0), a1 = torch::cat(c.a1, 0), a2 = torch::cat(c.a2, 0);
            st.forwards.erase(h.session);
          }
          st.eavesdropper->on_forward(h.session, h.step, mask, a1, a2);
        });
      },
      [self](tap_atom, Encoded<BackwardRequest>& req) {
        guarded("backward", [&] {
          auto b = decode(req);
          auto g2 = from_wire(b.gradient, "g2");
          const auto& h = b.header;
          auto& st = self->state;
          if (h.micros > 1) {
            auto& c = st.backwards[h.session];
            expect_chunk(c, h);
            c.g2[h.micro] = g2;
            if (!complete(c.g2)) return;
            g2 = torch::cat(c.g2, 0);
            st.backwards.erase(h.session);
          }
          st.eavesdropper->on_backward(h.session, h.step, g2);
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
          // The report held by name: a range-for over a temporary's member would dangle.
          if (const auto report = st.metrics ? st.eavesdropper->report() : nlohmann::json();
              st.metrics)
            for (const auto& score : report.at("scores"))
              st.metrics->set_attack_score(
                  score["client"].get<std::string>(), score["strategy"].get<std::string>(),
                  score["attack"].get<std::string>(), score["rouge_l"].get<double>());
          const auto best = st.eavesdropper->best();
          if (st.watcher && best.rouge_l > st.alarmed) {
            st.alarmed = best.rouge_l;
            self->send(st.watcher, AttackAlarm{best.attack, best.strategy, best.rouge_l});
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
