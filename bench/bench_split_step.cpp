// Benchmark: what the actors and the wire add to one split-learning training step of
// opt-mini (issue 3), all variants interleaved in one run on the same fixed batches:
//   A0  CentralizedTrainer, whole model in one place (the compute floor);
//   A   ClientChannel + SplitServer objects called directly, every message through
//       encode/decode (fp32 wire, no dCor);
//   B   A's step with the server as a CAF actor in this process (a scoped_actor plays
//       the client: request(...).receive(...) per message);
//   C   B with the server actor in a second process (this binary re-executed with
//       --serve), reached over 127.0.0.1 through CAF's middleman.
// Also the encoded bytes per step of split fp32 vs. online quantization schemes.
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <caf/io/all.hpp>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "actors/server.hpp"
#include "bench/bench_util.hpp"
#include "config/run_config.hpp"
#include "data/instructions.hpp"
#include "models/lora.hpp"
#include "strategies/centralized.hpp"
#include "strategies/client_channel.hpp"
#include "strategies/split_client.hpp"
#include "strategies/split_server.hpp"
#include "strategies/wire_quantization.hpp"

namespace {

using namespace gt::bench;  // Clock, median, now_string, loadavg, seconds_since

struct Options {
  std::string model = GT_DEFAULT_MODEL_DIR;
  std::string wordnet = "/usr/share/wordnet";
  std::string caf_policy =
      "sharing";  // as gtune runs (apps/run_client.cpp), or CAF's default stealing
  int rounds = 40, warmup = 1, batches = 4, threads = 0;
  int64_t batch = 8, max_len = 64;
  int serve_fd = -1, lifeline_fd = -1;  // internal: server mode (variant C's child)
};

[[noreturn]] void usage(const char* argv0, const std::string& why) {
  std::cerr << argv0 << ": " << why << "\nusage: " << argv0
            << " [--model DIR] [--wordnet DIR] [--rounds N] [--warmup N] [--batches N]\n"
               "       [--threads N] [--batch B] [--max-len T] [--caf-policy stealing|sharing]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage(argv[0], "missing value after " + a);
    const std::string v = argv[++i];
    const std::map<std::string, std::string*> strs{
        {"--model", &o.model}, {"--wordnet", &o.wordnet}, {"--caf-policy", &o.caf_policy}};
    const std::map<std::string, int*> ints{
        {"--rounds", &o.rounds},   {"--warmup", &o.warmup},  {"--batches", &o.batches},
        {"--threads", &o.threads}, {"--serve", &o.serve_fd}, {"--lifeline", &o.lifeline_fd}};
    const std::map<std::string, int64_t*> longs{{"--batch", &o.batch}, {"--max-len", &o.max_len}};
    if (!strs.count(a) && !ints.count(a) && !longs.count(a)) usage(argv[0], "unknown option " + a);
    try {
      if (strs.count(a)) *strs.at(a) = v;
      if (ints.count(a)) *ints.at(a) = std::stoi(v);
      if (longs.count(a)) *longs.at(a) = std::stoll(v);
    } catch (const std::logic_error&) {
      usage(argv[0], "bad number for " + a + ": " + v);
    }
  }
  if (o.rounds < 1 || o.warmup < 0 || o.batches < 1 || o.batch < 1 || o.max_len < 2)
    usage(argv[0], "counts must be positive (max-len >= 2)");
  if (o.caf_policy != "stealing" && o.caf_policy != "sharing")
    usage(argv[0], "--caf-policy must be stealing or sharing");
  return o;
}

struct ActorConfig : caf::actor_system_config {
  explicit ActorConfig(const std::string& policy) {
    gt::register_protocol(*this);
    load<caf::io::middleman>();
    set("scheduler.policy", policy == "sharing" ? caf::atom("sharing") : caf::atom("stealing"));
  }
};

// The defaults of `gtune` (default_run_config: n_in = n_out = 1, model.train = full, AdamW).
gt::RunConfig run_config(const Options& o) {
  auto cfg = gt::default_run_config();
  cfg.model.path = o.model;
  return cfg;
}

// A client's copy of the model with trainable adapters, as apps/parties.cpp builds it.
struct ClientCopy {
  gt::DecoderLM model{nullptr};
  gt::Segments seg;
  std::shared_ptr<torch::optim::Optimizer> optimizer;
};

ClientCopy make_client(const gt::RunConfig& cfg, double lr) {
  ClientCopy c;
  c.model = gt::load_decoder(cfg.model.path);
  c.seg = gt::split_model(c.model, {cfg.model.n_in, cfg.model.n_out});
  gt::set_trainable(*c.model, gt::TrainMode::frozen);
  gt::set_trainable(*c.seg.input, gt::TrainMode::full);
  gt::set_trainable(*c.seg.output, gt::TrainMode::full);
  c.optimizer = std::make_shared<torch::optim::AdamW>(
      gt::unique_parameters({c.seg.input.get(), c.seg.output.get()}),
      torch::optim::AdamWOptions(lr).weight_decay(cfg.optimizer.weight_decay));
  return c;
}

// The client's split-learning half over `copy`, with the given wire quantization.
std::unique_ptr<gt::ClientChannel> channel(const ClientCopy& copy, gt::WireSchemes schemes = {}) {
  auto model = std::make_shared<gt::ClientModel>(gt::ClientModel{copy.seg, copy.optimizer, 0});
  return std::make_unique<gt::ClientChannel>(
      model, std::make_unique<gt::WireQuantization>(
                 std::make_unique<gt::SplitClient>(model, "split"), schemes));
}

std::shared_ptr<gt::SplitServer> make_server(const gt::RunConfig& cfg, const std::string& name) {
  auto model = gt::load_decoder(cfg.model.path);
  gt::set_trainable(*model, gt::TrainMode::frozen);
  return std::make_shared<gt::SplitServer>(
      gt::split_model(model, {cfg.model.n_in, cfg.model.n_out}), name);
}

std::vector<gt::LmBatch> make_batches(const Options& o) {
  const size_t want = static_cast<size_t>(o.batch) * o.batches;
  // Extra examples in case the tokenizer drops some that do not fit max_len.
  auto ex = gt::wordnet_instructions(o.wordnet, 0.05, want + 64, 1).train;
  const gt::InstructionDataset data(ex, gt::Tokenizer::from_dir(o.model), o.max_len);
  if (data.size() < want) throw std::runtime_error("too few WordNet instruction examples");
  std::vector<gt::LmBatch> out;
  for (int i = 0; i < o.batches; ++i) {
    std::vector<size_t> idx;
    for (int64_t b = 0; b < o.batch; ++b) idx.push_back(static_cast<size_t>(i * o.batch + b));
    out.push_back(data.batch(idx));
  }
  return out;
}

// Variant A's wire: encode and decode, the codec work both ends do for real.
struct Bytes {
  int64_t up = 0, down = 0;
};
template <class T>
T wire(const T& msg, int64_t& counter) {
  auto enc = gt::encode(msg);
  counter += static_cast<int64_t>(enc.bytes.size());
  return gt::decode(enc);
}

double step_direct(gt::ClientChannel& c, gt::SplitServer& s, const gt::LmBatch& b, Bytes& n) {
  auto fwd = s.forward(wire(std::get<gt::ForwardRequest>(c.begin_step({b, {}})), n.up));
  auto up = c.on_reply(wire(fwd, n.down));
  auto bwd = s.backward(wire(std::get<gt::BackwardRequest>(up), n.up));
  return std::get<gt::StepOutcome>(c.on_reply(wire(bwd, n.down))).loss;
}

// One request/reply with a server actor, local or remote; throws on an error reply.
template <class Rep, class Req>
Rep ask(caf::scoped_actor& self, const gt::server_actor& server, const Req& req) {
  Rep out;
  std::string failure;
  self->request(server, std::chrono::minutes(2), gt::encode(req))
      .receive([&](gt::Encoded<Rep>& enc) { out = gt::decode(enc); },
               [&](caf::error& err) { failure = gt::describe(err); });
  if (!failure.empty()) throw std::runtime_error("server actor: " + failure);
  return out;
}

double step_actor(gt::ClientChannel& c, caf::scoped_actor& self, const gt::server_actor& server,
                  const gt::LmBatch& b) {
  auto fwd =
      ask<gt::ForwardReply>(self, server, std::get<gt::ForwardRequest>(c.begin_step({b, {}})));
  auto bwd = ask<gt::BackwardReply>(self, server, std::get<gt::BackwardRequest>(c.on_reply(fwd)));
  return std::get<gt::StepOutcome>(c.on_reply(bwd)).loss;
}

// Variant C's child: publish a server actor on 127.0.0.1, port 0; write the port to serve_fd;
// live until the parent closes the lifeline pipe (or dies) or kills us.
int serve(const Options& o) {
  ActorConfig acfg{o.caf_policy};
  caf::actor_system sys{acfg};
  auto server = sys.spawn(gt::server_behavior, make_server(run_config(o), "bench-remote"),
                          std::make_shared<gt::WireStats>());
  auto port = caf::io::publish(server, 0, "127.0.0.1", true);
  const std::string line = port ? std::to_string(*port) + "\n" : "error\n";
  if (write(o.serve_fd, line.data(), line.size()) < 0) return 1;
  close(o.serve_fd);
  char c;
  for (;;) {
    const auto n = read(o.lifeline_fd, &c, 1);
    if (n == 0 || (n < 0 && errno != EINTR)) break;
  }
  std::_Exit(0);  // no orderly actor shutdown needed: nothing to keep
}

struct Child {
  pid_t pid = -1;
  int lifeline = -1;
  uint16_t port = 0;
};

// Re-executes this binary in server mode; returns once its actor is published.
Child spawn_server_process(const Options& o) {
  int port_pipe[2], life_pipe[2];
  if (pipe(port_pipe) != 0 || pipe(life_pipe) != 0) throw std::runtime_error("pipe failed");
  Child ch;
  ch.pid = fork();
  if (ch.pid < 0) throw std::runtime_error("fork failed");
  if (ch.pid == 0) {
    close(port_pipe[0]);
    close(life_pipe[1]);
    std::vector<std::string> args{"bench_split_step", "--model", o.model, "--threads"};
    args.insert(args.end(), {std::to_string(o.threads), "--caf-policy", o.caf_policy, "--serve"});
    args.insert(args.end(),
                {std::to_string(port_pipe[1]), "--lifeline", std::to_string(life_pipe[0])});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  close(port_pipe[1]);
  close(life_pipe[0]);
  ch.lifeline = life_pipe[1];
  std::string line;
  char c;
  while (read(port_pipe[0], &c, 1) == 1 && c != '\n') line += c;
  close(port_pipe[0]);
  const int port = std::atoi(line.c_str());
  if (port <= 0 || port > 65535)
    throw std::runtime_error("server process did not report a port (got '" + line + "')");
  ch.port = static_cast<uint16_t>(port);
  return ch;
}

void stop(Child& ch) {
  if (ch.pid <= 0) return;
  close(ch.lifeline);
  kill(ch.pid, SIGTERM);
  waitpid(ch.pid, nullptr, 0);
  ch.pid = -1;
}

// Bytes per step of one wire configuration, on a throwaway pair (lr 0: weights never move).
Bytes bytes_per_step(const gt::RunConfig& cfg, const gt::WireSchemes& schemes,
                     const std::vector<gt::LmBatch>& batches) {
  auto copy = make_client(cfg, 0.0);
  auto client = channel(copy, schemes);
  auto server = make_server(cfg, "bytes");
  Bytes n;
  client->set_session(server->open(wire(client->hello("bytes"), n.up)).header.session);
  n = Bytes{};
  for (auto& b : batches) step_direct(*client, *server, b, n);
  const auto k = static_cast<int64_t>(batches.size());
  return {n.up / k, n.down / k};
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (o.threads > 0) torch::set_num_threads(o.threads);
  spdlog::set_level(spdlog::level::warn);  // no per-session info lines in the output
  if (o.serve_fd >= 0) return serve(o);

  std::string cmd;
  for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + std::string(argv[i]);
  std::printf("command: %s\n", cmd.c_str());
  std::printf("date: %s\n", now_string().c_str());
  std::printf("hardware_concurrency: %u, torch threads: %d, interop threads: %d\n",
              std::thread::hardware_concurrency(), torch::get_num_threads(),
              torch::get_num_interop_threads());
  std::printf("load average at start: %s\n", loadavg().c_str());
  std::printf("model: %s\n", o.model.c_str());

  Child child;
  try {
    const auto cfg = run_config(o);
    child = spawn_server_process(o);  // loads its model while we load ours
    const auto batches = make_batches(o);
    std::printf("data: WordNet instructions, %d fixed batches of %lld, max_len %lld; shapes:",
                o.batches, static_cast<long long>(o.batch), static_cast<long long>(o.max_len));
    for (auto& b : batches)
      std::printf(" %lldx%lld", static_cast<long long>(b.input_ids.size(0)),
                  static_cast<long long>(b.input_ids.size(1)));
    std::printf("\nsplit n_in=%lld n_out=%lld, adapters full, AdamW lr %g, fp32 wire, no dCor\n",
                static_cast<long long>(cfg.model.n_in), static_cast<long long>(cfg.model.n_out),
                cfg.optimizer.lr);

    // ---- bytes per step ----
    using QS = gt::QuantScheme;
    const std::vector<std::pair<const char*, gt::WireSchemes>> cases = {
        {"split fp32", {}},
        {"online a1 int8", {QS::int8, QS::none, QS::none, QS::none}},
        {"online a1 int4", {QS::int4, QS::none, QS::none, QS::none}},
        {"online a1+g2 int8", {QS::int8, QS::none, QS::int8, QS::none}},
        {"online all four int8", {QS::int8, QS::int8, QS::int8, QS::int8}},
    };
    std::printf("\n[bytes per step] encoded message sizes, mean over the %d batches\n", o.batches);
    std::printf("  %-22s %12s %12s %12s %8s %8s %8s\n", "wire", "up B", "down B", "total B",
                "up -%", "down -%", "total -%");
    Bytes ref;
    for (size_t i = 0; i < cases.size(); ++i) {
      const auto n = bytes_per_step(cfg, cases[i].second, batches);
      if (i == 0) ref = n;
      auto pct = [](int64_t x, int64_t r) { return r ? 100.0 * (1.0 - double(x) / r) : 0.0; };
      std::printf("  %-22s %12lld %12lld %12lld %7.1f%% %7.1f%% %7.1f%%\n", cases[i].first,
                  static_cast<long long>(n.up), static_cast<long long>(n.down),
                  static_cast<long long>(n.up + n.down), pct(n.up, ref.up), pct(n.down, ref.down),
                  pct(n.up + n.down, ref.up + ref.down));
    }

    // ---- timed variants ----
    enum { kA0, kA, kB, kC, kN };
    const char* names[kN] = {"A0 centralized", "A  split direct", "B  actors, 1 process",
                             "C  actors, loopback"};
    const double lr = cfg.optimizer.lr;
    auto c0 = make_client(cfg, lr), ca = make_client(cfg, lr), cb = make_client(cfg, lr),
         cc = make_client(cfg, lr);
    gt::CentralizedTrainer trainer(c0.seg, c0.optimizer);
    auto channel_a = channel(ca), channel_b = channel(cb), channel_c = channel(cc);
    auto &client_a = *channel_a, &client_b = *channel_b, &client_c = *channel_c;
    auto server_a = make_server(cfg, "bench-direct");
    Bytes sink;
    client_a.set_session(server_a->open(wire(client_a.hello("a"), sink.up)).header.session);

    ActorConfig acfg{o.caf_policy};
    caf::actor_system sys{acfg};
    auto server_b = sys.spawn(gt::server_behavior, make_server(cfg, "bench-local"),
                              std::make_shared<gt::WireStats>());
    struct ExitGuard {  // else ~actor_system would wait for it forever
      gt::server_actor actor;
      ~ExitGuard() { caf::anon_send_exit(actor, caf::exit_reason::user_shutdown); }
    } exit_guard{server_b};
    auto server_c = sys.middleman().remote_actor<gt::server_actor>("127.0.0.1", child.port);
    if (!server_c) throw std::runtime_error("remote_actor: " + caf::to_string(server_c.error()));
    caf::scoped_actor self{sys};
    client_b.set_session(
        ask<gt::SessionAccept>(self, server_b, client_b.hello("b")).header.session);
    client_c.set_session(
        ask<gt::SessionAccept>(self, *server_c, client_c.hello("c")).header.session);
    std::printf("CAF scheduler: %s, %zu workers; server process pid %d on 127.0.0.1:%u\n",
                o.caf_policy.c_str(), sys.scheduler().num_workers(), static_cast<int>(child.pid),
                static_cast<unsigned>(child.port));

    gt::WireStats a0_stats;
    auto run_step = [&](int v, const gt::LmBatch& b) {
      if (v == kA0) return trainer.step(b, a0_stats, "a0").loss;
      if (v == kA) return step_direct(client_a, *server_a, b, sink);
      return v == kB ? step_actor(client_b, self, server_b, b)
                     : step_actor(client_c, self, *server_c, b);
    };
    std::vector<double> t[kN], losses[kN], ratios[3][2];  // [A/A0, B/A, C/A][per round, step]
    auto add_ratios = [&](const double* x, int which) {
      ratios[0][which].push_back(x[kA] / x[kA0]);
      ratios[1][which].push_back(x[kB] / x[kA]);
      ratios[2][which].push_back(x[kC] / x[kA]);
    };
    for (int r = 0; r < o.warmup + o.rounds; ++r) {
      double round[kN] = {0, 0, 0, 0};
      for (auto& b : batches) {
        double step[kN];
        for (int k = 0; k < kN; ++k) {
          // Rotate the order each round, and reverse it every kN rounds, so that each
          // variant runs first, last, and right after every other one equally often.
          const int rot = (k + r) % kN, v = (r / kN) % 2 ? kN - 1 - rot : rot;
          const auto t0 = Clock::now();
          losses[v].push_back(run_step(v, b));
          step[v] = std::chrono::duration<double>(Clock::now() - t0).count();
          round[v] += step[v];
        }
        if (r >= o.warmup) add_ratios(step, 1);
      }
      if (r < o.warmup) continue;
      for (int v = 0; v < kN; ++v) t[v].push_back(round[v] / o.batches);
      add_ratios(round, 0);
    }
    double max_diff[kN] = {0, 0, 0, 0};
    for (int v = 0; v < kN; ++v)
      for (size_t i = 0; i < losses[v].size(); ++i)
        max_diff[v] = std::max(max_diff[v], std::abs(losses[v][i] - losses[kA][i]));

    std::printf(
        "\n[step time] %d warm-up + %d timed rounds; each batch runs with every variant "
        "in turn, order rotated\n",
        o.warmup, o.rounds);
    std::printf("  %-22s %10s %10s %10s %12s\n", "variant", "median s", "min s", "max s",
                "max|dloss|");
    for (int v = 0; v < kN; ++v)
      std::printf("  %-22s %10.4f %10.4f %10.4f %12.3g\n", names[v], median(t[v]),
                  *std::min_element(t[v].begin(), t[v].end()),
                  *std::max_element(t[v].begin(), t[v].end()), max_diff[v]);
    const char* what[3] = {"A/A0", "B/A", "C/A"};
    const char* target[3] = {"", "  target < 1.05", "  target < 1.15"};
    for (int i = 0; i < 3; ++i) {
      auto& pr = ratios[i][0];
      std::printf("  %-5s median of per-round ratios %.3f (min %.3f, max %.3f); per-step %.3f%s\n",
                  what[i], median(pr), *std::min_element(pr.begin(), pr.end()),
                  *std::max_element(pr.begin(), pr.end()), median(ratios[i][1]), target[i]);
    }
    std::printf(
        "  (max|dloss|: largest |loss - loss of A| over all %zu steps; same batches, "
        "same start)\n",
        losses[kA].size());
  } catch (const std::exception& e) {
    stop(child);
    std::fprintf(stderr, "bench_split_step: %s\n", e.what());
    return 1;
  }
  stop(child);
  std::printf("load average at end: %s\n", loadavg().c_str());
  return 0;
}
