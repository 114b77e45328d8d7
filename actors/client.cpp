// See client.hpp. The plan runs as a chain of request/then continuations, so
// the actor never blocks: hello -> eval -> step* -> eval -> bye -> reply.
#include "actors/client.hpp"

#include <spdlog/spdlog.h>

#include <cmath>
#include <functional>

#include "data/lm_dataset.hpp"

namespace gt {
namespace {

using Self = client_actor::stateful_pointer<ClientActorState>;
constexpr auto kReplyTimeout = std::chrono::minutes(10);

std::string link(Self self) {
  return self->state.plan.name + "-server";
}

template <class T>
Encoded<T> send_counted(Self self, const T& msg, const std::string& kind_suffix = "") {
  auto enc = encode(msg);
  self->state.stats->add(link(self), "up", message_kind<T>() + kind_suffix,
                         static_cast<int64_t>(enc.bytes.size()));
  return enc;
}

template <class T>
T receive_counted(Self self, const Encoded<T>& enc, const std::string& kind_suffix = "") {
  self->state.stats->add(link(self), "down", message_kind<T>() + kind_suffix,
                         static_cast<int64_t>(enc.bytes.size()));
  return decode(enc);
}

void fail(Self self, const std::string& what) {
  spdlog::error("client {}: {}", self->state.plan.name, what);
  self->state.done.deliver(make_wire_error(wire_errc::internal, what));
  self->quit();
}

// Runs `fn`, turning exceptions into a failed run (an actor must not throw).
template <class F>
void guarded(Self self, F&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    fail(self, e.what());
  }
}

// Held-out loss through the wire (forward only), batch by batch, then `next`.
void evaluate(Self self, size_t start, double loss_sum, int64_t tokens,
              std::function<void()> next) {
  auto& st = self->state;
  const auto n = st.valid->size();
  if (start >= n) {
    EvalRecord r;
    r.step = st.client->steps_done();
    r.tokens = tokens;
    r.loss = tokens ? loss_sum / double(tokens) : 0;
    r.perplexity = std::exp(r.loss);
    st.log.add_eval(r);
    spdlog::info("client {}: held-out loss {:.4f} (perplexity {:.2f}) after {} steps", st.plan.name,
                 r.loss, r.perplexity, r.step);
    next();
    return;
  }
  std::vector<size_t> idx;
  for (size_t i = start; i < std::min(n, start + size_t(st.plan.eval_batch)); ++i) idx.push_back(i);
  auto req = st.client->start_step(st.valid->batch(idx), /*train=*/false);
  self->request(st.server, kReplyTimeout, send_counted(self, req, ".eval"))
      .then(
          [self, start, loss_sum, tokens, next, count = idx.size()](Encoded<ForwardReply>& enc) {
            guarded(self, [&] {
              auto [sum, toks] = self->state.client->eval_loss(receive_counted(self, enc, ".eval"));
              evaluate(self, start + count, loss_sum + sum, tokens + toks, next);
            });
          },
          [self](caf::error& err) { fail(self, "evaluation: server " + describe(err)); });
}

LmBatch next_batch(Self self) {
  auto& st = self->state;
  std::vector<size_t> idx;
  while (static_cast<int64_t>(idx.size()) < st.plan.batch) {
    if (st.cursor == st.order.size()) {
      st.order = epoch_order(st.train->size(), st.plan.seed, ++st.epoch);
      st.cursor = 0;
    }
    idx.push_back(st.order[st.cursor++]);
  }
  return st.train->batch(idx);
}

void finish(Self self) {
  auto& st = self->state;
  SessionBye bye;
  bye.header = Header{kProtocolVersion, st.client->session(), st.client->steps_done()};
  self->send(st.server, send_counted(self, bye));
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - st.run_start).count();
  st.done.deliver(st.log.to_json(st.plan.config_toml, *st.stats, wall));
  self->quit();
}

void train_step(Self self);

void after_step(Self self, const StepOutcome& out) {
  auto& st = self->state;
  StepRecord rec;
  rec.step = st.client->steps_done();
  rec.loss = out.loss;
  rec.dcor = out.dcor;
  rec.a1_quant_error = out.a1_quant_error;
  rec.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - st.step_start).count();
  st.log.add_step(rec, *st.stats);
  st.ema_loss = rec.step == 1 ? out.loss : 0.9 * st.ema_loss + 0.1 * out.loss;
  if (st.progress) {
    char status[128];
    std::snprintf(status, sizeof status, "loss %.3f  up %.1f MB  down %.1f MB", st.ema_loss,
                  st.stats->total_bytes("up") / 1e6, st.stats->total_bytes("down") / 1e6);
    st.progress->update(rec.step, status);
  }
  const bool last = rec.step >= st.plan.steps;
  if (last && st.progress) st.progress->finish();
  if (last)
    evaluate(self, 0, 0, 0, [self] { finish(self); });
  else if (st.plan.eval_every > 0 && rec.step % st.plan.eval_every == 0)
    evaluate(self, 0, 0, 0, [self] { train_step(self); });
  else
    train_step(self);
}

void train_step(Self self) {
  auto& st = self->state;
  st.step_start = std::chrono::steady_clock::now();
  auto req = st.client->start_step(next_batch(self));
  self->request(st.server, kReplyTimeout, send_counted(self, req))
      .then(
          [self](Encoded<ForwardReply>& enc) {
            guarded(self, [&] {
              auto& st = self->state;
              auto breq = st.client->on_forward_reply(receive_counted(self, enc));
              self->request(st.server, kReplyTimeout, send_counted(self, breq))
                  .then(
                      [self](Encoded<BackwardReply>& enc2) {
                        guarded(self, [&] {
                          after_step(self, self->state.client->on_backward_reply(
                                               receive_counted(self, enc2)));
                        });
                      },
                      [self](caf::error& err) { fail(self, "backward: server " + describe(err)); });
            });
          },
          [self](caf::error& err) { fail(self, "forward: server " + describe(err)); });
}

}  // namespace

client_actor::behavior_type client_behavior(Self self, std::shared_ptr<SplitClient> client,
                                            std::shared_ptr<const BatchSource> train,
                                            std::shared_ptr<const BatchSource> valid,
                                            ClientPlan plan, server_actor server,
                                            std::shared_ptr<WireStats> stats) {
  auto& st = self->state;
  st.client = std::move(client);
  st.train = std::move(train);
  st.valid = std::move(valid);
  st.plan = std::move(plan);
  st.server = std::move(server);
  st.stats = std::move(stats);
  return {
      [self](train_atom) -> caf::result<std::string> {
        auto& st = self->state;
        st.done = self->make_response_promise<std::string>();
        st.run_start = std::chrono::steady_clock::now();
        st.order = epoch_order(st.train->size(), st.plan.seed, 0);
        guarded(self, [&] {
          auto hello = st.client->hello(st.plan.name, st.plan.strategy);
          self->request(st.server, kReplyTimeout, send_counted(self, hello))
              .then(
                  [self](Encoded<SessionAccept>& enc) {
                    guarded(self, [&] {
                      auto& st = self->state;
                      auto accept = receive_counted(self, enc);
                      st.client->set_session(accept.header.session);
                      spdlog::info("client {}: session {} with server '{}'", st.plan.name,
                                   accept.header.session, accept.server_name);
                      if (st.plan.show_progress)
                        st.progress = std::make_unique<Progress>(st.plan.name, st.plan.steps);
                      evaluate(self, 0, 0, 0, [self] { train_step(self); });
                    });
                  },
                  [self](caf::error& err) {
                    fail(self, "session refused: server " + describe(err));
                  });
        });
        return st.done;
      },
  };
}

}  // namespace gt
