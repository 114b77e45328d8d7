// The scheduler actor's parts, shared by actors/scheduler*.cpp (not an interface): the run's
// phases (scheduler.cpp) and its membership, clients joining, lost and joining again
// (scheduler_membership.cpp).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "actors/scheduler.hpp"

namespace gt::scheduler_detail {

using SchedulerSelf = scheduler_actor::stateful_pointer<SchedulerState>;
using json = nlohmann::json;

// Ends the run with `what` (the first reason is the one told).
void fail_run(SchedulerSelf self, const std::string& what);
SchedulerClient* find_client(SchedulerSelf self, const std::string& name);
void run_phase(SchedulerSelf self, size_t index);
void average_adapters(SchedulerSelf self, size_t next_phase);
void finish(SchedulerSelf self);
// Writes the resumable state (a checkpoint), when the plan has one; `durable`: to disk.
void save_progress(SchedulerSelf self, bool durable);

// Membership (scheduler_membership.cpp).
void start_run(SchedulerSelf self);
// A checkpoint's state, its clients lost until they join again.
void restore(SchedulerSelf self, const SchedulerProgress& p);
// Every client the run needs is here (a restarted scheduler's: back); how many are.
bool all_joined(SchedulerSelf self);
size_t joined_clients(SchedulerSelf self);
std::string rejoin(SchedulerSelf self, SchedulerClient& c, client_actor actor, double weight);
void add_client(SchedulerSelf self, const std::string& name, client_actor actor, double weight);
// "" when the client may run, else the reason it may not; a client under a name already
// taken replaces the one there if that one does not answer (a restarted client whose old
// connection is not seen to close yet), else is refused.
caf::result<std::string> join(SchedulerSelf self, client_actor actor, const std::string& name,
                              double weight);
void on_down(SchedulerSelf self, const caf::down_msg& dm);

}  // namespace gt::scheduler_detail
