// The scheduler actor with clients that join it (as client nodes do): who may join, when the
// plan starts, and what happens to a client that is lost mid-run: it joins again and gets the
// order in flight, or the run fails naming it. The clients are stand-ins that answer at once.
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "actors/scheduler.hpp"
#include "protocols/codec.hpp"
#include "tests/actor_test_support.hpp"
#include "tests/doctest_torch.hpp"

namespace {

constexpr auto kTimeout = std::chrono::seconds(30);

using Config = gt::test::ActorConfig;
using gt::test::QuietLogs;

// The least run JSON combine_results reads: one phase of two steps.
std::string run_json(const std::string& name) {
  nlohmann::json phase = {{"strategy", "split"},
                          {"strategies", {"split"}},
                          {"first_step", 1},
                          {"last_step", 2},
                          {"step_bytes_up", 0},
                          {"step_bytes_down", 0},
                          {"bytes", nlohmann::json::array()},
                          {"seconds", 0.0}};
  return nlohmann::json{{"client", name},
                        {"phases", {phase}},
                        {"evals", nlohmann::json::array()},
                        {"totals",
                         {{"steps", 2},
                          {"step_bytes_up", 0},
                          {"step_bytes_down", 0},
                          {"all_bytes", nlohmann::json::array()},
                          {"messages", nlohmann::json::array()}}}}
      .dump();
}

// A client stand-in: counts the phase orders it gets; `answers` false: it never answers one
// (it is busy when it is lost).
gt::client_actor::behavior_type fake_client(gt::client_actor::pointer self, std::string name,
                                            bool answers,
                                            std::shared_ptr<std::atomic<int>> orders) {
  return {
      [=](gt::PhaseOrder&) -> caf::result<std::string> {
        ++*orders;
        if (!answers) return self->make_response_promise<std::string>();  // never delivered
        return std::string("{}");
      },
      [=](gt::finish_atom) -> std::string { return run_json(name); },
      [](gt::adapters_atom) -> gt::Encoded<gt::AdapterUpload> {
        return gt::encode(gt::AdapterUpload{});
      },
      [](gt::adapters_atom, gt::Encoded<gt::AdapterUpload>&) -> bool { return true; },
  };
}

struct Env {
  QuietLogs quiet;
  Config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys}, runner{sys};
  gt::scheduler_actor scheduler;

  explicit Env(std::chrono::seconds patience = std::chrono::seconds(0),
               std::string no_rejoin = "") {
    gt::SchedulerPlan plan;
    plan.clients = 2;
    plan.phases = {gt::PhaseOrder{0, "split", 2}};
    plan.show_progress = false;
    plan.rejoin_patience = patience;
    plan.no_rejoin = std::move(no_rejoin);
    scheduler = sys.spawn(gt::scheduler_behavior, plan, std::vector<gt::client_actor>{},
                          std::vector<std::string>{});
  }
  ~Env() { caf::anon_send_exit(scheduler, caf::exit_reason::user_shutdown); }

  gt::client_actor client(const std::string& name, bool answers = true,
                          std::shared_ptr<std::atomic<int>> orders = nullptr) {
    if (!orders) orders = std::make_shared<std::atomic<int>>(0);
    return sys.spawn(fake_client, name, answers, orders);
  }
  // The scheduler's reply to a join: "" when accepted.
  std::string join(const gt::client_actor& c, const std::string& name, double weight = 10) {
    std::string out = "no reply";
    self->request(scheduler, kTimeout, gt::join_atom_v, c, name, weight)
        .receive([&](std::string& reason) { out = reason; },
                 [&](caf::error& err) { out = gt::describe(err); });
    return out;
  }
  nlohmann::json status() {
    std::string out;
    self->request(scheduler, kTimeout, gt::status_atom_v)
        .receive([&](std::string& s) { out = s; }, [&](caf::error&) {});
    return nlohmann::json::parse(out);
  }
  // Asks for the run on `runner`; its outcome comes with outcome().
  void run() { runner->send(scheduler, gt::run_atom_v); }
  // results.json, or "error: <reason>".
  std::string outcome() {
    std::string out = "no outcome";
    runner->receive([&](std::string& results) { out = results; },
                    [&](caf::error& err) { out = "error: " + gt::reason_of(err); },
                    caf::after(kTimeout) >> [&] { out = "timed out"; });
    return out;
  }
};

bool eventually(const std::function<bool()>& ok) {
  for (int i = 0; i < 300; ++i, std::this_thread::sleep_for(std::chrono::milliseconds(20)))
    if (ok()) return true;
  return ok();
}

}  // namespace

TEST_CASE("scheduler: clients join until scheduler.clients, then the plan runs") {
  Env env;
  auto b = env.client("site-10"), a = env.client("site-2");
  CHECK(env.join(b, "site-10") == "");
  env.run();
  CHECK(env.status()["state"] == "waiting");
  CHECK(env.join(env.client("x"), "site-10").find("a client named site-10 has already joined") !=
        std::string::npos);
  CHECK(env.join(env.client("x"), "").find("needs a name") != std::string::npos);
  CHECK(env.join(env.client("x"), "y", 0).find("no training samples") != std::string::npos);
  CHECK(env.join(a, "site-2") == "");  // the second: the plan starts
  const auto results = env.outcome();
  REQUIRE(results.rfind("error", 0) != 0);
  const auto j = nlohmann::json::parse(results);
  REQUIRE(j["clients"].size() == 2);
  // In the order of their names (numbers as numbers), not of joining: FedAvg's order.
  CHECK(j["clients"][0]["client"] == "site-2");
  CHECK(j["clients"][1]["client"] == "site-10");
  CHECK(env.join(env.client("late"), "late").find("the run is over") != std::string::npos);
}

TEST_CASE("scheduler: a join beyond scheduler.clients is refused") {
  Env env;
  CHECK(env.join(env.client("a"), "a") == "");
  CHECK(env.join(env.client("b"), "b") == "");
  CHECK(env.join(env.client("c"), "c").find("has all its clients (scheduler.clients = 2)") !=
        std::string::npos);
  env.run();  // both are there: it runs at once
  CHECK(env.outcome().rfind("{", 0) == 0);
}

TEST_CASE("scheduler: a client lost mid-phase joins again and gets the order again") {
  Env env(std::chrono::seconds(30));
  auto lost_orders = std::make_shared<std::atomic<int>>(0);
  auto back_orders = std::make_shared<std::atomic<int>>(0);
  auto busy = env.client("b", false, lost_orders);
  REQUIRE(env.join(env.client("a"), "a") == "");
  REQUIRE(env.join(busy, "b") == "");
  env.run();
  REQUIRE(eventually([&] { return *lost_orders == 1; }));
  CHECK(env.join(env.client("c"), "c").find("already running") != std::string::npos);
  caf::anon_send_exit(busy, caf::exit_reason::kill);
  REQUIRE(eventually([&] { return env.status()["clients"][1]["lost"] == true; }));
  CHECK(env.join(env.client("b"), "b", 11).find("other data") != std::string::npos);
  CHECK(env.join(env.client("b", true, back_orders), "b") == "");
  const auto results = env.outcome();
  CHECK(*back_orders == 1);  // the phase in flight, sent again
  REQUIRE(results.rfind("{", 0) == 0);
  CHECK(nlohmann::json::parse(results)["clients"].size() == 2);
}

TEST_CASE("scheduler: a lost client that cannot come back fails the run, naming it") {
  Env env(std::chrono::seconds(0), "no checkpoints");
  auto busy = env.client("b", false);
  REQUIRE(env.join(env.client("a"), "a") == "");
  REQUIRE(env.join(busy, "b") == "");
  env.run();
  caf::anon_send_exit(busy, caf::exit_reason::kill);
  const auto out = env.outcome();
  CHECK(out.find("error: client b was lost") == 0);
  CHECK(out.find("no checkpoints") != std::string::npos);
}

TEST_CASE("scheduler: a lost client that does not join again in time fails the run") {
  Env env(std::chrono::seconds(1));
  auto busy = env.client("b", false);
  REQUIRE(env.join(env.client("a"), "a") == "");
  REQUIRE(env.join(busy, "b") == "");
  env.run();
  caf::anon_send_exit(busy, caf::exit_reason::kill);
  const auto out = env.outcome();
  CHECK(out.find("error: client b was lost") == 0);
  CHECK(out.find("did not join again within 1 s (network.reconnect_seconds)") != std::string::npos);
}

TEST_CASE("scheduler: a client that leaves before the run frees its place") {
  Env env;
  auto a = env.client("a");
  REQUIRE(env.join(a, "a") == "");
  caf::anon_send_exit(a, caf::exit_reason::kill);
  REQUIRE(eventually([&] { return env.status()["clients"].empty(); }));
  CHECK(env.join(env.client("a"), "a") == "");
  CHECK(env.join(env.client("b"), "b") == "");
  env.run();
  CHECK(env.outcome().rfind("{", 0) == 0);
}
