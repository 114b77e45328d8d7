// See client.hpp. Everything runs as chains of request/then continuations,
// so the actor never blocks and operator messages arrive between steps. Requests and their
// recovery are in client_requests.*, file transfers in client_transfers.*.
#include "actors/client.hpp"

#include <spdlog/spdlog.h>

#include <cmath>

#include "actors/client_requests.hpp"
#include "actors/client_transfers.hpp"
#include "common/error.hpp"
#include "data/lm_dataset.hpp"

namespace gt {
namespace client_detail {

// ---- checkpoints --------------------------------------------------------------

void save_checkpoint(ClientSelf self) {
  auto& st = self->state;
  if (!st.plan.checkpoint || !st.channel) return;
  ClientProgress p;
  p.step = st.channel->steps_done();
  p.phase = static_cast<int64_t>(st.phase_replies.size());
  p.phase_steps = st.phase_done.pending() ? st.phase_steps : 0;
  p.strategy = st.strategy;
  p.epoch = st.epoch;
  p.cursor = static_cast<int64_t>(st.cursor);
  p.evaluated_before = st.evaluated_before;
  p.steps_since_upload = st.steps_since_upload;
  p.phase_replies = st.phase_replies;
  p.log = st.log.state();
  p.wire = wire_state(*st.parts.stats);
  try {
    st.plan.checkpoint->save(p, *st.parts.model, st.channel->strategy().random_state());
  } catch (const std::exception& e) {  // the run itself is fine: go on, loudly
    spdlog::error("client {}: checkpoint not written, the run goes on: {}", st.plan.name, e.what());
  }
}

// Takes up a restored checkpoint: log, byte counts, data position, finished phases.
void take_up(ClientSelf self) {
  auto& st = self->state;
  const auto& p = st.resumed->progress;
  st.log = RunLog::from_state(p.log);
  restore_wire(*st.parts.stats, p.wire);
  st.epoch = p.epoch;
  st.order_of_samples = epoch_order(st.parts.train->size(), st.plan.seed, st.epoch);
  if (p.cursor < 0 || size_t(p.cursor) > st.order_of_samples.size())
    throw Error(st.plan.checkpoint->path() + ": data position " + std::to_string(p.cursor) +
                " is past the " + std::to_string(st.order_of_samples.size()) + " examples");
  st.cursor = size_t(p.cursor);
  st.evaluated_before = p.evaluated_before;
  st.steps_since_upload = p.steps_since_upload;
  st.phase_replies = p.phase_replies;
  st.steps_at_start = p.step;
  if (st.parts.metrics) st.parts.metrics->set_resumed_from(st.plan.name, p.step);
  spdlog::info(
      "client {}: resuming after step {} ({} phase(s) done, {} step(s) into the next) "
      "from {}",
      st.plan.name, p.step, p.phase, p.phase_steps, st.plan.checkpoint->path());
}

// ---- evaluation: held-out loss through the wire (forward only) --------------

void evaluate(ClientSelf self, size_t start, double loss_sum, int64_t tokens, Next next) {
  auto& st = self->state;
  const auto n = st.parts.valid->size();
  if (start >= n) {
    EvalRecord r;
    r.step = st.channel->steps_done();
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
  if (auto& strategy = st.channel->strategy(); strategy.evaluates_locally()) {
    // Nothing may leave the client in this phase (privatize), evaluation included.
    auto [sum, toks] = strategy.local_eval_loss(st.parts.valid->batch(idx));
    return evaluate(self, start + idx.size(), loss_sum + sum, tokens + toks, next);
  }
  auto req = st.channel->eval_request(st.parts.valid->batch(idx));
  ask_server<ForwardReply>(
      self, req, ".eval", "evaluation: server",
      [self, start, loss_sum, tokens, next] { evaluate(self, start, loss_sum, tokens, next); },
      [self, start, loss_sum, tokens, next, count = idx.size()](ForwardReply reply) {
        auto [sum, toks] = self->state.channel->eval_loss(std::move(reply));
        evaluate(self, start + count, loss_sum + sum, tokens + toks, next);
      });
}

// ---- strategies -------------------------------------------------------------

// Leaves the installed strategy (uploading adapters if it tunes offline).
void leave_strategy(ClientSelf self, Next next) {
  auto& st = self->state;
  if (!st.strategy.empty() && st.channel->strategy().uploads_adapters() && st.steps_since_upload)
    return upload_adapters(self, next);
  next();
}

void install(ClientSelf self, const std::string& strategy, Backbone emulator, Next next) {
  auto& st = self->state;
  auto s = make_client_strategy(strategy, st.parts.model, st.parts.settings, emulator);
  if (!st.channel) {
    st.channel = std::make_unique<ClientChannel>(st.parts.model, std::move(s));
    st.channel->set_compression(st.parts.settings.compression);
    st.channel->resume_at(st.steps_at_start);
  } else
    st.channel->set_strategy(std::move(s));
  if (!st.strategy.empty())
    spdlog::info("client {}: strategy {} -> {} at step {}", st.plan.name, st.strategy, strategy,
                 st.channel->steps_done());
  st.strategy = strategy;
  *st.wire_strategy = strategy;
  if (st.parts.metrics) st.parts.metrics->set_strategy(st.plan.name, strategy);
  st.log.note_strategy(strategy);
  hello(self, next);  // opens the session, or updates its terms
}

// Makes `strategy` the installed one, then `next`.
void ensure_strategy(ClientSelf self, const std::string& strategy, Next next) {
  auto& st = self->state;
  if (st.strategy == strategy) return next();
  leave_strategy(self, [self, strategy, next] {
    const auto recipe = emulator_recipe(strategy, self->state.parts.settings);
    if (recipe.empty()) return install(self, strategy, nullptr, next);
    fetch_emulator(self, recipe, [self, strategy, next](Backbone emulator) {
      install(self, strategy, emulator, next);
    });
  });
}

// ---- steps -----------------------------------------------------------------

StepInput next_input(ClientSelf self) {
  auto& st = self->state;
  StepInput in;
  while (static_cast<int64_t>(in.samples.size()) < st.plan.batch) {
    if (st.cursor == st.order_of_samples.size()) {
      st.order_of_samples = epoch_order(st.parts.train->size(), st.plan.seed, ++st.epoch);
      st.cursor = 0;
    }
    in.samples.push_back(st.order_of_samples[st.cursor++]);
  }
  in.batch = st.parts.train->batch(in.samples);
  return in;
}

void next_step(ClientSelf self);

void send_truth(ClientSelf self, int64_t step);

void after_step(ClientSelf self, const StepOutcome& out) {
  auto& st = self->state;
  StepRecord rec;
  rec.step = st.channel->steps_done();
  rec.strategy = st.strategy;
  rec.loss = out.loss;
  rec.dcor = out.dcor;
  rec.inverter_accuracy = out.inverter_accuracy;
  rec.a1_quant_error = out.a1_quant_error;
  rec.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - st.step_start).count();
  st.log.add_step(rec, *st.parts.stats);
  if (st.parts.metrics)
    st.parts.metrics->add_step(st.plan.name, rec.strategy, rec.loss, rec.seconds,
                               rec.a1_quant_error);
  if (st.parts.audit) send_truth(self, rec.step - 1);
  ++st.phase_steps;
  st.steps_since_upload = true;
  auto go_on = [self, step = rec.step] {
    auto& st = self->state;
    const bool phase_over = st.phase_steps >= st.order.steps;
    // After the step's evaluation, so that a resumed run does not miss it.
    auto save_then_next = [self, step] {
      if (step % self->state.plan.checkpoint_every == 0) save_checkpoint(self);
      next_step(self);
    };
    if (!phase_over && st.plan.eval_every > 0 && step % st.plan.eval_every == 0)
      return evaluate(self, 0, 0, 0, save_then_next);
    save_then_next();
  };
  if (!st.scheduler) return go_on();
  StepReport report{st.plan.name,
                    st.strategy,
                    st.order.index,
                    rec.step,
                    rec.loss,
                    st.log.step_bytes("up"),
                    st.log.step_bytes("down")};
  // The scheduler's reply is the directive for the next step boundary.
  self->request(st.scheduler, caf::infinite, report)
      .then(
          [self, go_on](std::string& directive) {
            guarded(self, [&] {
              const std::string prefix = "switch:";
              if (directive.rfind(prefix, 0) == 0)
                return ensure_strategy(self, directive.substr(prefix.size()), go_on);
              go_on();
            });
          },
          [self](caf::error& err) {
            if (err != caf::sec::request_receiver_down)
              return fail(self, "scheduler: " + describe(err));
            // Its node went: a client node joins a restarted one and resumes from its
            // checkpoint; this actor's work ends here, with the reason that says so.
            spdlog::warn("client {}: lost the scheduler after step {}", self->state.plan.name,
                         self->state.channel->steps_done());
            if (self->state.phase_done.pending())
              self->state.phase_done.deliver(
                  make_wire_error(wire_errc::internal, "scheduler lost"));
            self->quit(err);
          });
}

void handle(ClientSelf self, Outgoing out);

void train_step(ClientSelf self) {
  auto& st = self->state;
  st.step_start = std::chrono::steady_clock::now();
  st.step_input = next_input(self);
  st.step_random = st.channel->strategy().random_state();
  if (st.parts.audit) st.step_batch = st.step_input.batch;
  handle(self, st.channel->begin_step(st.step_input));
}

// The step in flight again from its beginning, with the same batch and random numbers:
// its server was lost before the optimizer stepped.
void retry_step(ClientSelf self) {
  guarded(self, [&] {
    auto& st = self->state;
    st.channel->abort_step();
    st.log.note_retry(*st.parts.stats);
    st.channel->strategy().set_random_state(st.step_random);
    spdlog::info("client {}: step {} again", st.plan.name, st.channel->steps_done() + 1);
    handle(self, st.channel->begin_step(st.step_input));
  });
}

// Simulation/audit: the truth of the step just done, for scoring the attacks.
void send_truth(ClientSelf self, int64_t step) {
  auto& st = self->state;
  const auto& b = st.step_batch;
  AuditTruth t;
  t.client = st.plan.name;
  t.step = step;
  t.rows = b.input_ids.size(0);
  t.cols = b.input_ids.size(1);
  auto ids = b.input_ids.contiguous(), mask = b.attention_mask.contiguous();
  t.input_ids.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  t.attention_mask.assign(mask.data_ptr<int64_t>(), mask.data_ptr<int64_t>() + mask.numel());
  self->send(st.parts.audit, std::move(t));
}

void ask_forward(ClientSelf self, const ForwardRequest& fwd) {
  ask_server<ForwardReply>(
      self, fwd, "", "forward: server", [self] { retry_step(self); },
      [self](ForwardReply reply) {
        handle(self, self->state.channel->on_reply(std::move(reply)));
      });
}

// Sends what the strategy asks for and feeds the replies back, until the step is done. A
// pipelined step sends all its forwards at once: the server computes micro-batch i+1 while
// this client computes i, and each g2 goes up as soon as it is computed.
void handle(ClientSelf self, Outgoing out) {
  if (auto* fwd = std::get_if<ForwardRequest>(&out)) {
    ask_forward(self, *fwd);
  } else if (auto* fwds = std::get_if<ForwardRequests>(&out)) {
    for (const auto& f : *fwds) ask_forward(self, f);
  } else if (std::holds_alternative<AwaitReplies>(out)) {
    // the next g1 chunk comes in its own reply
  } else if (auto* bwd = std::get_if<BackwardRequest>(&out)) {
    ask_server<BackwardReply>(
        self, *bwd, "", "backward: server", [self] { retry_step(self); },
        [self](BackwardReply reply) {
          handle(self, self->state.channel->on_reply(std::move(reply)));
        });
  } else {
    after_step(self, std::get<StepOutcome>(out));
  }
}

void end_phase(ClientSelf self) {
  leave_strategy(self, [self] {
    evaluate(self, 0, 0, 0, [self] {
      auto& st = self->state;
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - st.phase_start).count();
      auto& p = st.log.end_phase(*st.parts.stats, seconds);
      nlohmann::json j = {{"client", st.plan.name},
                          {"index", p.index},
                          {"strategies", p.strategies},
                          {"steps", p.last_step - p.first_step + 1},
                          {"eval_loss", st.log.evals().back().loss}};
      st.phase_replies.push_back(j.dump());
      // The checkpoint before the reply: a scheduler that has the reply never gets a client
      // back (restarted from its checkpoint) that has not finished the phase.
      st.phase_steps = 0;
      save_checkpoint(self);
      st.phase_done.deliver(j.dump());
    });
  });
}

void next_step(ClientSelf self) {
  guarded(self, [&] {
    if (self->state.phase_steps >= self->state.order.steps) return end_phase(self);
    train_step(self);
  });
}

void start_phase(ClientSelf self) {
  auto& st = self->state;
  st.phase_start = std::chrono::steady_clock::now();
  if (st.resumed && st.resumed->progress.phase == st.order.index &&
      st.resumed->progress.phase_steps > 0) {  // the phase the checkpoint stopped in
    auto r = std::move(*st.resumed);
    st.resumed.reset();
    st.phase_steps = r.progress.phase_steps;
    return ensure_strategy(self, r.progress.strategy, [self, random = r.random_state] {
      self->state.channel->strategy().set_random_state(random);
      next_step(self);
    });
  }
  st.resumed.reset();
  st.log.begin_phase(st.order.index, st.order.strategy, *st.parts.stats);
  st.phase_steps = 0;
  ensure_strategy(self, st.order.strategy, [self] {
    auto& st = self->state;
    if (st.evaluated_before) return next_step(self);
    st.evaluated_before = true;
    evaluate(self, 0, 0, 0, [self] { next_step(self); });
  });
}

std::string finish_json(ClientSelf self) {
  auto& st = self->state;
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - st.run_start).count();
  auto j = st.log.to_json(*st.parts.stats, wall);
  j["client"] = st.plan.name;
  return j.dump();
}

}  // namespace client_detail

client_actor::behavior_type client_behavior(client_detail::ClientSelf self, ClientParts parts,
                                            ClientPlan plan) {
  using namespace client_detail;
  auto& st = self->state;
  st.parts = std::move(parts);
  st.plan = std::move(plan);
  st.run_start = std::chrono::steady_clock::now();
  st.order_of_samples = epoch_order(st.parts.train->size(), st.plan.seed, 0);
  // A server that goes down fails the request in flight at once (see ask_server).
  self->monitor(st.parts.server);
  if (st.parts.builder) self->monitor(st.parts.builder);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    if (st.parts.builder && dm.source == st.parts.builder.address()) {
      if (st.refetch) return builder_lost(self, "emulator transfer", dm.reason);
      st.builder_down = dm.reason;  // the next transfer reaches it again first
      return;
    }
    if (dm.source != st.parts.server.address()) return;
    if (st.pending.empty()) {
      st.server_down = dm.reason;
      return;
    }
    take_over(self, st.pending.begin()->first, dm.reason);
  });
  if (st.plan.checkpoint) {
    try {  // an error here fails the first phase, with the reason
      st.resumed = st.plan.checkpoint->load(*st.parts.model);
      if (st.resumed) take_up(self);
    } catch (const std::exception& e) {
      st.startup_error = e.what();
      st.resumed.reset();
    }
  }
  if (st.parts.metrics) {
    // Every message the codec counts, labelled with the strategy installed when it crossed.
    st.parts.stats->set_observer([metrics = st.parts.metrics, strategy = st.wire_strategy](
                                     const WireStats::Key& key, int64_t bytes) {
      metrics->add_wire(std::get<0>(key), std::get<1>(key), std::get<2>(key),
                        strategy->empty() ? "none" : *strategy, bytes);
    });
  }
  return {
      [self](PhaseOrder& order) -> caf::result<std::string> {
        auto& st = self->state;
        if (!st.startup_error.empty())
          return make_wire_error(wire_errc::internal, st.startup_error);
        if (st.phase_done.pending())
          return make_wire_error(wire_errc::rejected, "a phase is already running");
        if (order.index >= 0 && order.index < int64_t(st.phase_replies.size()))
          return st.phase_replies[size_t(order.index)];  // finished before a restart
        st.order = order;
        st.scheduler = caf::actor_cast<scheduler_actor>(self->current_sender());
        st.phase_done = self->make_response_promise<std::string>();
        guarded(self, [&] { start_phase(self); });
        return st.phase_done;
      },
      [self](status_atom) -> std::string {  // alive, and where
        auto& st = self->state;
        return nlohmann::json{{"client", st.plan.name},
                              {"step", st.channel ? st.channel->steps_done() : 0},
                              {"strategy", st.strategy}}
            .dump();
      },
      [self](finish_atom) -> caf::result<std::string> {
        auto& st = self->state;
        auto json = finish_json(self);
        if (st.channel && st.channel->session() != 0) {
          SessionBye bye;
          bye.header = Header{kProtocolVersion, st.channel->session(), st.channel->steps_done()};
          self->send(st.parts.server, send_counted(self, bye));
          json = finish_json(self);  // with the goodbye counted
        }
        if (st.parts.on_finish) st.parts.on_finish(json);
        return json;
      },
      [self](adapters_atom) -> caf::result<Encoded<AdapterUpload>> {
        auto& st = self->state;
        return encode(make_adapter_upload(st.parts.model->seg, {}, false, QuantScheme::none));
      },
      [self](adapters_atom, Encoded<AdapterUpload>& enc) -> caf::result<bool> {
        auto& st = self->state;
        try {
          auto params = trainable_adapters(st.parts.model->seg);
          assign_adapters(params, reconstruct_upload(decode(enc), {}, params));
          save_checkpoint(self);  // a client restarted from it resumes with the average
          return true;
        } catch (const std::exception& e) {
          return make_wire_error(wire_errc::rejected, e.what());
        }
      },
  };
}

}  // namespace gt
