// The scheduler actor with clients that join it (as client nodes do): who may join, when the
// plan starts, and what happens to a client that is lost mid-run: it joins again and gets the
// order in flight, or the run fails naming it; and a scheduler restarted from its checkpoint.
// The clients are stand-ins that answer at once.
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "actors/scheduler.hpp"
#include "common/error.hpp"
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
      [=](gt::status_atom) -> caf::result<std::string> {
        if (!answers) return self->make_response_promise<std::string>();  // busy or gone
        return std::string("{}");
      },
      [](gt::adapters_atom) -> gt::Encoded<gt::AdapterUpload> {
        return gt::encode(gt::AdapterUpload{});
      },
      [](gt::adapters_atom, gt::Encoded<gt::AdapterUpload>&) -> bool { return true; },
  };
}

// What a recording stand-in was asked: phase indexes, FedAvg uploads and downloads, finish.
struct Asked {
  std::mutex mutex;
  std::vector<std::string> what;
  void add(std::string s) {
    std::lock_guard<std::mutex> lock(mutex);
    what.push_back(std::move(s));
  }
  std::vector<std::string> all() {
    std::lock_guard<std::mutex> lock(mutex);
    return what;
  }
};

// A stand-in that records what it is asked and never answers the phase `stall_phase` (busy
// when its scheduler dies) nor, with `stall_finish`, the finish.
gt::client_actor::behavior_type recording_client(gt::client_actor::pointer self, std::string name,
                                                 int64_t stall_phase, bool stall_finish,
                                                 std::shared_ptr<Asked> asked) {
  return {
      [=](gt::PhaseOrder& o) -> caf::result<std::string> {
        asked->add("phase " + std::to_string(o.index));
        if (o.index == stall_phase) return self->make_response_promise<std::string>();
        return std::string("{}");
      },
      [](gt::status_atom) -> std::string { return "{}"; },
      [=](gt::finish_atom) -> caf::result<std::string> {
        asked->add("finish");
        if (stall_finish) return self->make_response_promise<std::string>();
        return run_json(name);
      },
      [=](gt::adapters_atom) -> gt::Encoded<gt::AdapterUpload> {
        asked->add("upload");
        return gt::encode(gt::AdapterUpload{});
      },
      [=](gt::adapters_atom, gt::Encoded<gt::AdapterUpload>&) -> bool {
        asked->add("average");
        return true;
      },
  };
}

struct Env {
  QuietLogs quiet;
  Config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys}, runner{sys};
  gt::scheduler_actor scheduler;
  gt::SchedulerPlan plan;

  explicit Env(std::chrono::seconds patience = std::chrono::seconds(0), std::string no_rejoin = "",
               const std::function<void(gt::SchedulerPlan&)>& adjust = {}) {
    plan.clients = 2;
    plan.phases = {gt::PhaseOrder{0, "split", 2}};
    plan.show_progress = false;
    plan.liveness_timeout = std::chrono::milliseconds(300);
    plan.rejoin_patience = patience;
    plan.no_rejoin = std::move(no_rejoin);
    if (adjust) adjust(plan);
    spawn();
  }
  void spawn() {
    scheduler = sys.spawn(gt::scheduler_behavior, plan, std::vector<gt::client_actor>{},
                          std::vector<std::string>{});
  }
  // The scheduler dies (as its process would) and another starts from its checkpoint.
  void restart() {
    caf::anon_send_exit(scheduler, caf::exit_reason::kill);
    // The first run's outcome, if its broken promise sends one, is not the restarted run's.
    runner->receive([](std::string&) {}, [](caf::error&) {},
                    caf::after(std::chrono::milliseconds(300)) >> [] {});
    plan.resume = plan.checkpoint->load();
    spawn();
  }
  gt::client_actor recording(const std::string& name, std::shared_ptr<Asked> asked,
                             int64_t stall_phase = -1, bool stall_finish = false) {
    return sys.spawn(recording_client, name, stall_phase, stall_finish, asked);
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

TEST_CASE("scheduler: a client under a taken name replaces one that does not answer") {
  Env env(std::chrono::seconds(30));
  auto hung_orders = std::make_shared<std::atomic<int>>(0);
  auto back_orders = std::make_shared<std::atomic<int>>(0);
  auto hung = env.client("b", false, hung_orders);  // alive, but it answers nothing
  REQUIRE(env.join(env.client("a"), "a") == "");
  REQUIRE(env.join(hung, "b") == "");
  env.run();
  REQUIRE(eventually([&] { return *hung_orders == 1; }));
  CHECK(env.join(env.client("b"), "b", 11).find("other data") != std::string::npos);
  CHECK(env.join(env.client("b", true, back_orders), "b") == "");  // at once, not after 30 s
  const auto results = env.outcome();
  CHECK(*back_orders == 1);  // the phase in flight, sent to the newcomer
  REQUIRE(results.rfind("{", 0) == 0);
  CHECK(env.status()["clients"][1]["lost"] == false);
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

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/gt_scheduler_ckpt_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST_CASE("scheduler checkpoint: saved and loaded alike, other settings and bad files refused") {
  TempDir dir;
  gt::SchedulerCheckpoint ckpt(dir.path, "training.steps = 4\n");
  CHECK_FALSE(ckpt.load().has_value());
  gt::SchedulerProgress p;
  p.stage = "fedavg";
  p.phase = 1;
  p.phases = {{0, "offline", 3}, {1, "online", 4}};
  p.clients = {{"a", 40}, {"b", 41}};
  p.current = "online";
  p.pending = {{"b", "gradfree"}};
  p.switches = {{{"client", "b"}, {"to", "gradfree"}, {"by", "budget"}, {"after_step", nullptr}}};
  p.budget_spent = true;
  p.attack = {"gradient_matching", "online", 0.25};
  p.status["a"] = gt::StepReport{"a", "online", 1, 7, 2.5, 100, 200};
  p.steps_reported = 13;
  p.wall_seconds = 3.5;
  p.results = {{"a", "{}"}};
  p.average = std::vector<uint8_t>{1, 2, 3, 0, 255};
  ckpt.save(p, true);
  const auto back = ckpt.load();
  REQUIRE(back.has_value());
  CHECK(back->stage == "fedavg");
  CHECK(back->phase == 1);
  REQUIRE(back->phases.size() == 2);
  CHECK(back->phases[1].index == 1);
  CHECK(back->phases[1].strategy == "online");
  CHECK(back->phases[1].steps == 4);
  CHECK(back->clients == p.clients);
  CHECK(back->pending == p.pending);
  CHECK(back->switches == p.switches);
  CHECK(back->budget_spent);
  CHECK_FALSE(back->paused);
  CHECK(back->attack.rouge_l == 0.25);
  CHECK(back->status.at("a").step == 7);
  CHECK(back->status.at("a").bytes_down == 200);
  CHECK(back->steps_reported == 13);
  CHECK(back->results == p.results);
  CHECK(back->average == p.average);

  gt::SchedulerCheckpoint other(dir.path, "training.steps = 5\n");
  CHECK_THROWS_WITH_AS(other.load(), doctest::Contains("other settings (training.steps = 4)"),
                       gt::Error);
  std::ofstream(ckpt.path()) << "{\"format\": \"gtune-scheduler-checkpoint-1\"";
  CHECK_THROWS_WITH_AS(ckpt.load(), doctest::Contains("scheduler.json: not JSON"), gt::Error);
  std::ofstream(ckpt.path()) << "{\"format\": \"something else\"}";
  CHECK_THROWS_WITH_AS(ckpt.load(), doctest::Contains("not a scheduler checkpoint"), gt::Error);
  std::ofstream(ckpt.path()) << "{\"format\": \"gtune-scheduler-checkpoint-1\", \"fingerprint\": "
                                "\"training.steps = 4\\n\"}";
  CHECK_THROWS_WITH_AS(ckpt.load(), doctest::Contains("malformed"), gt::Error);
}

TEST_CASE("scheduler: restarted from its checkpoint mid-phase, it goes on with the same phase") {
  TempDir dir;
  Env env(std::chrono::seconds(0), "", [&](gt::SchedulerPlan& plan) {
    plan.phases = {{0, "split", 2}, {1, "online", 2}};
    plan.fedavg = true;
    plan.checkpoint = std::make_shared<const gt::SchedulerCheckpoint>(dir.path, "fp\n");
  });
  auto asked_a = std::make_shared<Asked>(), asked_b = std::make_shared<Asked>();
  REQUIRE(env.join(env.recording("a", asked_a), "a", 10) == "");
  REQUIRE(env.join(env.recording("b", asked_b, 1), "b", 30) == "");  // busy in phase 1
  env.run();
  REQUIRE(eventually([&] { return asked_b->all().size() == 4; }));
  CHECK(asked_b->all() == std::vector<std::string>{"phase 0", "upload", "average", "phase 1"});
  env.restart();
  CHECK(env.status()["state"] == "idle");
  env.run();
  CHECK(env.status()["state"] == "waiting");
  CHECK(env.join(env.recording("c", asked_a), "c").find("has the clients a, b, not c") !=
        std::string::npos);
  CHECK(env.join(env.recording("b", asked_b), "b", 31).find("other data") != std::string::npos);
  auto again_a = std::make_shared<Asked>(), again_b = std::make_shared<Asked>();
  REQUIRE(env.join(env.recording("b", again_b), "b", 30) == "");
  REQUIRE(env.join(env.recording("a", again_a), "a", 10) == "");
  const auto results = env.outcome();
  REQUIRE(results.rfind("{", 0) == 0);
  // Phase 1 again, not the plan from its start (FedAvg follows every phase).
  CHECK(again_a->all() == std::vector<std::string>{"phase 1", "upload", "average", "finish"});
  CHECK(again_b->all() == std::vector<std::string>{"phase 1", "upload", "average", "finish"});
  const auto j = nlohmann::json::parse(results);
  REQUIRE(j["clients"].size() == 2);
  CHECK(j["clients"][0]["client"] == "a");  // the order of the first run, kept
}

TEST_CASE("scheduler: restarted while finishing, it keeps the results it had") {
  TempDir dir;
  Env env(std::chrono::seconds(0), "", [&](gt::SchedulerPlan& plan) {
    plan.checkpoint = std::make_shared<const gt::SchedulerCheckpoint>(dir.path, "fp\n");
  });
  auto asked_a = std::make_shared<Asked>(), asked_b = std::make_shared<Asked>();
  REQUIRE(env.join(env.recording("a", asked_a), "a") == "");
  REQUIRE(env.join(env.recording("b", asked_b, -1, true), "b") == "");  // never gives results
  env.run();
  REQUIRE(eventually([&] { return asked_b->all().size() == 2; }));
  REQUIRE(eventually([&] { return env.plan.checkpoint->load()->results.count("a") == 1; }));
  env.restart();
  env.run();
  // a has gone with its results given: only b is waited for, and only b is asked.
  auto again_b = std::make_shared<Asked>();
  REQUIRE(env.join(env.recording("b", again_b), "b") == "");
  const auto results = env.outcome();
  REQUIRE(results.rfind("{", 0) == 0);
  CHECK(again_b->all() == std::vector<std::string>{"finish"});
  CHECK(asked_a->all() == std::vector<std::string>{"phase 0", "finish"});
  CHECK(nlohmann::json::parse(results)["clients"][0]["client"] == "a");
}
