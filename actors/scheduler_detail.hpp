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

// Membership (scheduler_membership.cpp).
void start_run(SchedulerSelf self);
void add_client(SchedulerSelf self, const std::string& name, client_actor actor, double weight);
std::string join(SchedulerSelf self, client_actor actor, const std::string& name, double weight);
void on_down(SchedulerSelf self, const caf::down_msg& dm);

}  // namespace gt::scheduler_detail
