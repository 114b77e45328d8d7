// See scheduler.hpp. The run's phases here; its membership in scheduler_membership.cpp.
#include "actors/scheduler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "actors/scheduler_detail.hpp"
#include "protocols/codec.hpp"
#include "strategies/adapter_upload.hpp"

namespace gt {
namespace scheduler_detail {

void fail_run(SchedulerSelf self, const std::string& what) {
  auto& st = self->state;
  if (st.state == "failed" || st.state == "done") return;  // the first reason is the one told
  spdlog::error("scheduler: {}", what);
  st.state = "failed";
  if (st.done.pending()) st.done.deliver(make_wire_error(wire_errc::internal, what));
}

SchedulerClient* find_client(SchedulerSelf self, const std::string& name) {
  for (auto& c : self->state.clients)
    if (c.name == name) return &c;
  return nullptr;
}

void save_progress(SchedulerSelf self, bool durable) {
  auto& st = self->state;
  if (!st.plan.checkpoint || st.state != "running") return;
  SchedulerProgress p;
  p.stage = st.stage;
  p.phase = st.phase;
  p.phases = st.plan.phases;
  for (const auto& c : st.clients) p.clients.emplace_back(c.name, c.weight);
  p.current = st.current;
  p.pending = st.pending;
  p.switches = st.switches;
  p.paused = st.paused;
  p.budget_spent = st.budget_spent;
  p.attack_alarmed = st.attack_alarmed;
  p.attack = st.attack;
  for (const auto& [name, s] : st.status) p.status[name] = s.last;
  p.steps_reported = st.steps_reported;
  p.wall_seconds =
      st.wall_before +
      std::chrono::duration<double>(std::chrono::steady_clock::now() - st.start).count();
  p.results = st.results;
  p.average = st.average;
  try {
    st.plan.checkpoint->save(p, durable);
  } catch (const std::exception& e) {  // the run itself is fine: go on, loudly
    spdlog::error("scheduler: checkpoint not written, the run goes on: {}", e.what());
  }
}

// Asks the clients marked in `asked` `msg...`: `each` gets client i's reply, `all_done` runs
// once all have replied. A client lost meanwhile is asked again when it joins again (its old
// actor's late reply is dropped); a client that answers with an error fails the run.
template <class Reply, class Each, class AllDone, class... Msg>
void ask_clients(SchedulerSelf self, const std::vector<bool>& asked, Each each, AllDone all_done,
                 const Msg&... msg) {
  auto& st = self->state;
  auto round = std::make_shared<SchedulerRound>();
  round->ask.resize(st.clients.size());
  st.round = round;
  const std::weak_ptr<SchedulerRound> weak = round;  // the round owns its asks
  for (size_t i = 0; i < st.clients.size(); ++i) {
    if (!asked[i]) continue;
    ++round->left;
    round->ask[i] = [self, weak, i, each, all_done, msg...] {
      const auto& c = self->state.clients[i];
      self->request(c.actor, caf::infinite, msg...)
          .then(
              [self, weak, i, each, all_done, generation = c.generation](Reply& reply) {
                auto round = weak.lock();
                if (!round || !round->ask[i] || self->state.clients[i].generation != generation)
                  return;
                round->ask[i] = nullptr;
                each(i, reply);
                if (--round->left == 0) all_done();
              },
              [self, i, generation = c.generation](caf::error& err) {
                // A lost client's request: its down message decides (wait for it, or fail).
                if (self->state.clients[i].generation != generation ||
                    err == caf::sec::request_receiver_down)
                  return;
                fail_run(self, reason_of(err));
              });
    };
  }
  for (size_t i = 0; i < round->ask.size(); ++i)
    if (round->ask[i]) round->ask[i]();
  if (round->left == 0) all_done();
}

template <class Reply, class Each, class AllDone, class... Msg>
void ask_all(SchedulerSelf self, Each each, AllDone all_done, const Msg&... msg) {
  ask_clients<Reply>(self, std::vector<bool>(self->state.clients.size(), true), each, all_done,
                     msg...);
}

void run_phase(SchedulerSelf self, size_t index);

// Every client's results; those a scheduler restarted from its checkpoint already has are
// not asked again (their clients may have gone: they had given them).
void finish(SchedulerSelf self) {
  auto& st = self->state;
  st.finishing = true;
  st.stage = "finish";
  save_progress(self, true);
  std::vector<bool> asked;
  for (const auto& c : st.clients) asked.push_back(!st.results.count(c.name));
  ask_clients<std::string>(
      self, asked,
      [self](size_t i, std::string& s) {
        auto& st = self->state;
        st.results[st.clients[i].name] = s;
        save_progress(self, true);
      },
      [self] {
        auto& st = self->state;
        std::vector<json> jsons;
        for (const auto& c : st.clients) {
          jsons.push_back(json::parse(st.results[c.name], nullptr, false));
          if (jsons.back().is_discarded())
            return fail_run(self, "client " + c.name + " sent results that are not JSON");
        }
        if (st.progress) st.progress->finish();
        const double wall =
            st.wall_before +
            std::chrono::duration<double>(std::chrono::steady_clock::now() - st.start).count();
        st.state = "done";
        spdlog::info("scheduler: plan done in {:.1f} s", wall);
        st.done.deliver(combine_results(st.plan.config_toml, jsons, st.switches, wall).dump(1));
      },
      finish_atom_v);
}

// FedAvg: every client's adapters, weighted by its samples, back to every client. The average
// is checkpointed before it goes out: a scheduler restarted meanwhile hands out the same one
// (some clients may have it already, so it cannot be computed again from theirs).
void hand_out_average(SchedulerSelf self, size_t next_phase) {
  Encoded<AdapterUpload> avg;
  avg.bytes = *self->state.average;
  ask_all<bool>(
      self, [](size_t, bool) {},
      [self, next_phase] {
        spdlog::info("scheduler: adapters of {} clients averaged (FedAvg)",
                     self->state.clients.size());
        run_phase(self, next_phase);
      },
      adapters_atom_v, avg);
}

void average_adapters(SchedulerSelf self, size_t next_phase) {
  auto& st = self->state;
  st.stage = "fedavg";
  st.phase = next_phase - 1;
  if (st.average) return hand_out_average(self, next_phase);
  save_progress(self, true);
  auto uploads = std::make_shared<std::vector<AdapterUpload>>(st.clients.size());
  ask_all<Encoded<AdapterUpload>>(
      self, [uploads](size_t i, Encoded<AdapterUpload>& enc) { (*uploads)[i] = decode(enc); },
      [self, uploads, next_phase] {
        auto& st = self->state;
        try {
          std::vector<double> weights;
          for (const auto& c : st.clients) weights.push_back(c.weight);
          st.average = encode(average_uploads(*uploads, weights)).bytes;
        } catch (const std::exception& e) {
          return fail_run(self, std::string("FedAvg: ") + e.what());
        }
        save_progress(self, true);
        hand_out_average(self, next_phase);
      },
      adapters_atom_v);
}

void run_phase(SchedulerSelf self, size_t index) {
  auto& st = self->state;
  if (st.state != "running") return;
  st.average.reset();
  if (index == st.plan.phases.size()) return finish(self);
  st.phase = index;
  st.stage = "phase";
  save_progress(self, true);
  const auto& order = st.plan.phases[index];
  st.current = order.strategy;
  spdlog::info("scheduler: phase {} of {}: {} for {} steps on {} client(s)", index + 1,
               st.plan.phases.size(), order.strategy, order.steps, st.clients.size());
  ask_all<std::string>(
      self, [](size_t, std::string&) {},
      [self, index] {
        auto& st = self->state;
        if (st.plan.fedavg && st.clients.size() > 1) return average_adapters(self, index + 1);
        run_phase(self, index + 1);
      },
      order);
}

// A client that joined again redoes the steps after its checkpoint: a switch it took after one
// of them is given again at the same step, so that its run stays the one `switches` records.
std::string replayed_switch(SchedulerSelf self, const std::string& client, int64_t step) {
  std::string to;
  for (const auto& s : self->state.switches)
    if (s["client"] == client && s["after_step"] == step) to = s["to"].get<std::string>();
  return to.empty() ? "" : "switch:" + to;
}

std::string directive(SchedulerSelf self, const std::string& client, int64_t step) {
  auto& st = self->state;
  auto it = st.pending.find(client);
  if (it == st.pending.end()) return replayed_switch(self, client, step);
  auto to = it->second;
  st.pending.erase(it);
  for (auto& s : st.switches)
    if (s["client"] == client && s["after_step"].is_null()) s["after_step"] = step;
  save_progress(self, true);
  return "switch:" + to;
}

void request_switch(SchedulerSelf self, const std::string& to, const std::string& by) {
  auto& st = self->state;
  st.current = to;
  for (const auto& c : st.clients) {
    st.pending[c.name] = to;
    st.switches.push_back({{"client", c.name}, {"to", to}, {"by", by}, {"after_step", nullptr}});
  }
  spdlog::info("scheduler: switching to {} at the next step boundary ({})", to, by);
  save_progress(self, true);
}

void check_budget(SchedulerSelf self) {
  auto& st = self->state;
  if (st.plan.budget_bytes <= 0 || st.budget_spent) return;
  int64_t total = 0;
  for (const auto& [name, s] : st.status) total += s.last.bytes_up + s.last.bytes_down;
  if (total < st.plan.budget_bytes) return;
  st.budget_spent = true;
  request_switch(self, st.plan.fallback,
                 "budget: " + std::to_string(total) + " of " +
                     std::to_string(st.plan.budget_bytes) + " bytes spent");
}

json status_json(SchedulerSelf self) {
  auto& st = self->state;
  json clients = json::array();
  int64_t up = 0, down = 0;
  for (const auto& c : st.clients) {
    const auto& s = st.status[c.name];
    up += s.last.bytes_up;
    down += s.last.bytes_down;
    clients.push_back({{"name", c.name},
                       {"step", s.last.step},
                       {"strategy", s.last.strategy},
                       {"loss", s.last.loss},
                       {"bytes_up", s.last.bytes_up},
                       {"bytes_down", s.last.bytes_down},
                       {"paused", s.paused},
                       {"lost", c.lost}});
  }
  json phases = json::array();
  for (const auto& p : st.plan.phases)
    phases.push_back({{"strategy", p.strategy}, {"steps", p.steps}});
  return {{"state", st.paused && st.state == "running" ? "paused" : st.state},
          {"phase", st.phase},
          {"plan", phases},
          {"strategy", st.current},
          {"clients", clients},
          {"clients_expected", st.plan.clients},
          {"bytes_up", up},
          {"bytes_down", down},
          {"budget_bytes", st.plan.budget_bytes},
          {"attack",
           {{"attack", st.attack.attack},
            {"strategy", st.attack.strategy},
            {"rouge_l", st.attack.rouge_l},
            {"threshold", st.plan.attack_threshold}}},
          {"switches", st.switches}};
}

}  // namespace scheduler_detail

scheduler_actor::behavior_type scheduler_behavior(scheduler_detail::SchedulerSelf self,
                                                  SchedulerPlan plan,
                                                  std::vector<client_actor> clients,
                                                  std::vector<std::string> client_names) {
  using namespace scheduler_detail;
  auto& st = self->state;
  st.plan = std::move(plan);
  if (st.plan.resume) restore(self, *st.plan.resume);
  for (size_t i = 0; i < clients.size(); ++i) {
    const double weight = i < st.plan.client_weights.size() ? st.plan.client_weights[i] : 1.0;
    if (auto* c = find_client(self, client_names.at(i)))  // restored: back in its place
      rejoin(self, *c, std::move(clients[i]), weight);
    else
      add_client(self, client_names.at(i), std::move(clients[i]), weight);
  }
  if (st.plan.clients == 0) st.plan.clients = st.clients.size();
  self->set_down_handler([self](caf::down_msg& dm) { on_down(self, dm); });
  return {
      [self](run_atom) -> caf::result<std::string> {
        auto& st = self->state;
        if (st.state != "idle") return make_wire_error(wire_errc::rejected, "already ran");
        st.done = self->make_response_promise<std::string>();
        if (!all_joined(self)) {
          st.state = "waiting";
          spdlog::info("scheduler: waiting for clients {}/{}", joined_clients(self),
                       st.plan.clients);
        } else {
          start_run(self);
        }
        return st.done;
      },
      [self](status_atom) -> std::string { return status_json(self).dump(); },
      [self](switch_atom, std::string& to) -> std::string {
        auto& st = self->state;
        if (st.state != "running") return "no plan is running (state: " + st.state + ")";
        if (!st.plan.switchable.count(to)) {
          std::string known;
          for (const auto& s : st.plan.switchable) known += (known.empty() ? "" : ", ") + s;
          return "this run cannot switch to '" + to + "' (it can: " + known + ")";
        }
        request_switch(self, to, "operator");
        return "";
      },
      [self](pause_atom) -> std::string {
        auto& st = self->state;
        if (st.state != "running") return "no plan is running (state: " + st.state + ")";
        if (st.paused) return "already paused";
        st.paused = true;
        save_progress(self, true);
        spdlog::info("scheduler: pausing at the next step boundary");
        return "";
      },
      [self](resume_atom) -> std::string {
        auto& st = self->state;
        if (!st.paused) return "not paused";
        st.paused = false;
        save_progress(self, true);
        spdlog::info("scheduler: resuming");
        for (auto& [name, s] : st.status)
          if (s.paused) {
            s.paused = false;
            s.held.deliver(directive(self, name, s.last.step));
          }
        return "";
      },
      [self](AttackAlarm& alarm) {
        auto& st = self->state;
        st.attack = alarm;
        save_progress(self, false);
        if (st.plan.attack_threshold <= 0 || st.attack_alarmed || st.state != "running" ||
            alarm.rouge_l < st.plan.attack_threshold)
          return;
        st.attack_alarmed = true;
        char why[200];
        std::snprintf(why, sizeof why, "attack: %s reaches ROUGE-L %.3f on %s (threshold %.3f)",
                      alarm.attack.c_str(), alarm.rouge_l, alarm.strategy.c_str(),
                      st.plan.attack_threshold);
        request_switch(self, st.plan.fallback, why);
      },
      [self](StepReport& report) -> caf::result<std::string> {
        auto& st = self->state;
        const auto* c = find_client(self, report.client);
        if (!c || c->actor.address() != caf::actor_cast<caf::actor_addr>(self->current_sender()))
          return make_wire_error(wire_errc::rejected,
                                 "client " + report.client +
                                     " is not this run's (or was replaced by a newer connection "
                                     "of the same name)");
        auto& s = st.status[report.client];
        s.last = report;
        ++st.steps_reported;
        if (st.progress) {
          char line[160];
          int64_t up = 0, down = 0;
          for (const auto& [n, c] : st.status) up += c.last.bytes_up, down += c.last.bytes_down;
          std::snprintf(line, sizeof line, "%s  loss %.3f  up %.1f MB  down %.1f MB",
                        report.strategy.c_str(), report.loss, up / 1e6, down / 1e6);
          st.progress->update(st.steps_reported, line);
        }
        check_budget(self);
        save_progress(self, false);
        if (st.paused) {
          s.paused = true;
          s.held = self->make_response_promise<std::string>();
          return s.held;
        }
        return directive(self, report.client, report.step);
      },
      [self](join_atom, client_actor& actor, std::string& name, double weight)
          -> caf::result<std::string> { return join(self, std::move(actor), name, weight); },
      [self](deadline_atom, std::string& name, uint64_t generation) {
        auto& st = self->state;
        const auto* c = find_client(self, name);
        if (!c || !c->lost || c->generation != generation || st.state != "running") return;
        fail_run(self, "client " + name + " was lost (" + c->lost_reason +
                           ") and did not join again within " +
                           std::to_string(st.plan.rejoin_patience.count()) +
                           " s (network.reconnect_seconds)");
      },
  };
}

}  // namespace gt
