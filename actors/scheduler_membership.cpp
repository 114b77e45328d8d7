// See scheduler_detail.hpp: clients joining, lost and joining again.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "actors/scheduler_detail.hpp"

namespace gt::scheduler_detail {
namespace {

// Names in natural order ("c-2" before "c-10"): clients named <run.name>-<shard> run in the
// order `gtune simulate` gives its clients, so FedAvg adds their adapters in the same order.
bool natural_less(const std::string& a, const std::string& b) {
  const auto digit = [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)) != 0; };
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (!digit(a[i]) || !digit(b[j])) {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i, ++j;
      continue;
    }
    size_t ei = i, ej = j;
    while (ei < a.size() && digit(a[ei])) ++ei;
    while (ej < b.size() && digit(b[ej])) ++ej;
    while (i + 1 < ei && a[i] == '0') ++i;  // leading zeros do not count
    while (j + 1 < ej && b[j] == '0') ++j;
    if (ei - i != ej - j) return ei - i < ej - j;
    if (const int c = a.compare(i, ei - i, b, j, ej - j); c != 0) return c < 0;
    i = ei, j = ej;
  }
  return a.size() - i < b.size() - j;
}

}  // namespace

void resume_run(SchedulerSelf self);

void restore(SchedulerSelf self, const SchedulerProgress& p) {
  auto& st = self->state;
  st.plan.phases = p.phases;
  st.plan.clients = p.clients.size();
  st.stage = p.stage;
  st.phase = p.phase;
  st.current = p.current;
  st.pending = p.pending;
  st.switches = p.switches;
  st.paused = p.paused;
  st.budget_spent = p.budget_spent;
  st.attack_alarmed = p.attack_alarmed;
  st.attack = p.attack;
  st.steps_reported = p.steps_reported;
  st.wall_before = p.wall_seconds;
  st.results = p.results;
  st.average = p.average;
  for (const auto& [name, weight] : p.clients) {
    SchedulerClient c;
    c.name = name;
    c.weight = weight;
    c.lost = true;
    c.lost_reason = "not back since the scheduler restarted";
    st.clients.push_back(std::move(c));
    auto it = p.status.find(name);
    if (it != p.status.end()) st.status[name].last = it->second;
    st.status[name].last.client = name;
  }
  st.resuming = true;
  spdlog::info("scheduler: resuming from {} ({} of phase {} of {}); waiting for its {} client(s)",
               st.plan.checkpoint ? st.plan.checkpoint->path() : "a checkpoint", st.stage,
               st.phase + 1, st.plan.phases.size(), st.clients.size());
}

// A client that has given its results need not come back to a restarted scheduler.
size_t joined_clients(SchedulerSelf self) {
  auto& st = self->state;
  size_t n = 0;
  for (const auto& c : st.clients) n += !c.lost || st.results.count(c.name);
  return n;
}

bool all_joined(SchedulerSelf self) {
  return self->state.clients.size() >= self->state.plan.clients &&
         joined_clients(self) == self->state.clients.size();
}

void start_run(SchedulerSelf self) {
  auto& st = self->state;
  if (st.resuming) return resume_run(self);
  if (st.order_by_name)
    std::stable_sort(st.clients.begin(), st.clients.end(),
                     [](const auto& a, const auto& b) { return natural_less(a.name, b.name); });
  if (st.plan.phases.empty() && st.plan.make_phases && !st.clients.empty())
    st.plan.phases = st.plan.make_phases(static_cast<int64_t>(st.clients.front().weight));
  st.state = "running";
  st.start = std::chrono::steady_clock::now();
  if (st.order_by_name) {
    std::string names;
    for (const auto& c : st.clients) names += (names.empty() ? "" : ", ") + c.name;
    spdlog::info("scheduler: all {} client(s) joined ({}); running the plan", st.clients.size(),
                 names);
  }
  int64_t total = 0;
  for (const auto& p : st.plan.phases) total += p.steps * int64_t(st.clients.size());
  if (st.plan.show_progress) st.progress = std::make_unique<Progress>("plan", total);
  run_phase(self, 0);
}

// The plan from where the checkpoint left it.
void resume_run(SchedulerSelf self) {
  auto& st = self->state;
  st.resuming = false;
  st.state = "running";
  st.start = std::chrono::steady_clock::now();
  int64_t total = 0;
  for (const auto& p : st.plan.phases) total += p.steps * int64_t(st.clients.size());
  if (st.plan.show_progress) {
    st.progress = std::make_unique<Progress>("plan", total);
    st.progress->update(st.steps_reported, "resumed");
  }
  spdlog::info("scheduler: all {} client(s) back; resuming the plan ({} of phase {})",
               st.clients.size(), st.stage, st.phase + 1);
  if (st.stage == "finish") return finish(self);
  if (st.stage == "fedavg") return average_adapters(self, st.phase + 1);
  run_phase(self, st.phase);
}

// Monitored: a lost client is noticed at once.
void add_client(SchedulerSelf self, const std::string& name, client_actor actor, double weight) {
  auto& st = self->state;
  self->monitor(actor);
  SchedulerClient c;
  c.name = name;
  c.actor = std::move(actor);
  c.weight = weight;
  st.clients.push_back(std::move(c));
  st.status[name].last.client = name;
}

// A lost client back (restarted with the same command, it resumes from its checkpoint): it
// takes its old place and gets the request in flight again.
std::string rejoin(SchedulerSelf self, SchedulerClient& c, client_actor actor, double weight) {
  auto& st = self->state;
  if (weight != c.weight)
    return "client " + c.name + " joins again with " + std::to_string(int64_t(weight)) +
           " training samples, not its " + std::to_string(int64_t(c.weight)) + " (other data?)";
  self->monitor(actor);
  c.actor = std::move(actor);
  c.lost = false;
  c.lost_reason.clear();
  ++c.generation;
  const auto i = static_cast<size_t>(&c - st.clients.data());
  const bool in_flight = st.round && i < st.round->ask.size() && st.round->ask[i];
  spdlog::info("scheduler: client {} joined again{}", c.name,
               in_flight ? "; it gets the request in flight again" : "");
  if (in_flight) st.round->ask[i]();
  if (st.state == "waiting" && all_joined(self)) start_run(self);
  return "";
}

// The client under `name` answered, so the one joining under its name is a second one.
std::string name_taken(const std::string& name) {
  return "a client named " + name +
         " has already joined (each client needs its own run.name, or --shard)";
}

// A client joining under the name of one that is there: if that one answers within
// plan.liveness_timeout, the newcomer is refused; if not (its process died on a host that went
// away, or a partition: CAF would notice only after its connection timeout), the newcomer
// takes its place at once, as a lost client that joins again would.
caf::result<std::string> take_over(SchedulerSelf self, SchedulerClient& old, client_actor actor,
                                   double weight) {
  auto rp = self->make_response_promise<std::string>();
  self->request(old.actor, self->state.plan.liveness_timeout, status_atom_v)
      .then([rp, name = old.name](std::string&) mutable { rp.deliver(name_taken(name)); },
            [self, rp, actor, weight, name = old.name,
             generation = old.generation](caf::error& err) mutable {
              auto* c = find_client(self, name);
              if (!c || c->generation != generation) {  // it changed meanwhile: ask again
                rp.delegate(caf::actor_cast<scheduler_actor>(self), join_atom_v, actor, name,
                            weight);
                return;
              }
              if (!c->lost) {
                spdlog::warn(
                    "scheduler: client {} is replaced by a newer connection of the same name (the "
                    "old one did not answer: {})",
                    name, describe(err));
                self->demonitor(c->actor.address());
                c->lost = true;
                c->lost_reason = "replaced by a newer connection";
              }
              rp.deliver(rejoin(self, *c, std::move(actor), weight));
            });
  return rp;
}

caf::result<std::string> join(SchedulerSelf self, client_actor actor, const std::string& name,
                              double weight) {
  auto& st = self->state;
  if (!actor) return std::string("no client actor to join");
  if (name.empty()) return std::string("a client needs a name (run.name)");
  if (!(weight > 0)) return "client " + name + ": no training samples to weigh its adapters by";
  if (st.state == "done" || st.state == "failed") return "the run is over (" + st.state + ")";
  if (auto* c = find_client(self, name)) {
    if (c->lost) return rejoin(self, *c, std::move(actor), weight);
    if (c->actor == actor) return name_taken(name);
    return take_over(self, *c, std::move(actor), weight);
  }
  const auto n = std::to_string(st.plan.clients);
  if (st.resuming) {
    std::string names;
    for (const auto& c : st.clients) names += (names.empty() ? "" : ", ") + c.name;
    return "the run resumed from its checkpoint has the clients " + names + ", not " + name;
  }
  if (st.state == "running") return "the plan is already running with its " + n + " client(s)";
  if (st.clients.size() >= st.plan.clients)
    return "the run has all its clients (scheduler.clients = " + n + ")";
  add_client(self, name, std::move(actor), weight);
  st.order_by_name = true;
  spdlog::info("scheduler: client {} joined ({}/{})", name, st.clients.size(), n);
  if (st.state == "waiting" && st.clients.size() == st.plan.clients) start_run(self);
  return std::string();
}

void on_down(SchedulerSelf self, const caf::down_msg& dm) {
  auto& st = self->state;
  auto it = std::find_if(st.clients.begin(), st.clients.end(), [&](const SchedulerClient& c) {
    return !c.lost && c.actor && c.actor.address() == dm.source;
  });
  if (it == st.clients.end()) return;
  const auto why = describe_exit(dm.reason);
  if (st.resuming) {  // a restarted scheduler's client: its place stays, it may come back
    spdlog::warn("scheduler: client {} left before the run resumed ({})", it->name, why);
    it->lost = true;
    it->lost_reason = why;
    return;
  }
  if (st.state == "idle" || st.state == "waiting") {  // not started: its place is free again
    spdlog::warn("scheduler: client {} left before the run ({}); {}/{} joined", it->name, why,
                 st.clients.size() - 1, st.plan.clients);
    st.status.erase(it->name);
    st.clients.erase(it);
    return;
  }
  if (st.state != "running") return;
  it->lost = true;
  it->lost_reason = why;
  const auto i = static_cast<size_t>(it - st.clients.begin());
  if (st.finishing && st.round && !st.round->ask[i]) {  // it has given its results: no loss
    spdlog::info("scheduler: client {} left after giving its results", it->name);
    return;
  }
  if (st.plan.rejoin_patience.count() <= 0)
    return fail_run(self, "client " + it->name + " was lost (" + why + ")" +
                              (st.plan.no_rejoin.empty() ? "" : "; " + st.plan.no_rejoin));
  spdlog::warn(
      "scheduler: client {} was lost ({}); waiting up to {} s for it to join again "
      "(network.reconnect_seconds)",
      it->name, why, st.plan.rejoin_patience.count());
  self->delayed_send(self, st.plan.rejoin_patience, deadline_atom_v, it->name, it->generation);
}

}  // namespace gt::scheduler_detail
