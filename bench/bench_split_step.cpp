// Benchmark: what the actors and the wire add to one split-learning training step of
// opt-mini (issue 3), all variants interleaved in one run on the same fixed batches:
//   A0  CentralizedTrainer, whole model in one place (the compute floor);
//   A   ClientChannel + SplitServer objects called directly, every message through
//       encode/decode (fp32 wire, no dCor);
//   B   A's step with the server as a CAF actor in this process (a scoped_actor plays
//       the client: request(...).receive(...) per message);
//   C   B with the server actor in a second process (this binary re-executed with
//       --serve), reached over 127.0.0.1 through CAF's middleman;
//   B2, C2, C4  B and C with the step pipelined in 2 / 4 micro-batches (strategy.micro_batches,
//       issue 8): every chunk's forward request sent at once, then the replies handled in
//       order, each g2 sent as soon as computed; the server computes chunk i+1 while the
//       client computes chunk i.
// Variant A's steps are also timed part by part (client / server), which bounds what
// pipelining can gain.
// Also the encoded bytes per step of split fp32 vs. online quantization schemes.
// --device cuda runs every party (and the child of C) on the GPU, timing each step to its end
// (torch::cuda::synchronize); --model opt-1.3b-random builds a random-weight model of
// OPT-1.3B's shape (1.3e9 parameters, no download) instead of the embedded opt-mini;
// --variants and --bytes 0 keep a big model's run to what is needed. bench/hf_split_step.py
// is the same split step written with PyTorch + transformers, for comparison on one GPU.
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>
#include <zstd.h>

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
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "actors/server.hpp"
#include "bench/bench_util.hpp"
#include "config/run_config.hpp"
#include "data/instructions.hpp"
#include "models/device.hpp"
#include "models/lora.hpp"
#include "models/safetensors.hpp"
#include "strategies/centralized.hpp"
#include "strategies/client_channel.hpp"
#include "strategies/split_client.hpp"
#include "strategies/split_server.hpp"
#include "strategies/wire_quantization.hpp"

namespace {

using namespace gt::bench;  // Clock, median, now_string, loadavg, seconds_since

// OPT-1.3B's config.json (facebook/opt-1.3b) without dropout: the shape of the big model.
constexpr const char* kRandomModel = "opt-1.3b-random";
constexpr const char* kOpt13bConfig = R"({
  "model_type": "opt", "activation_function": "relu", "do_layer_norm_before": true,
  "enable_bias": true, "ffn_dim": 8192, "hidden_size": 2048, "max_position_embeddings": 2048,
  "num_attention_heads": 32, "num_hidden_layers": 24, "vocab_size": 50272,
  "word_embed_proj_dim": 2048, "tie_word_embeddings": true, "pad_token_id": 1,
  "bos_token_id": 2, "eos_token_id": 2, "dropout": 0.0, "attention_dropout": 0.0
})";

struct Options {
  std::string model = GT_DEFAULT_MODEL_DIR;      // a checkpoint directory, or kRandomModel
  std::string tokenizer = GT_DEFAULT_MODEL_DIR;  // of the batches (a random model has none)
  std::string device = "cpu";
  std::string variants = "A0,A,B,C";  // of A0, A, B, C, B2, C2, C4
  std::string json;                   // write the step times here as JSON too ("" = no)
  std::string dump_batches;    // write the batches here (safetensors) for bench/peer_split_step.py
  int label_only = 1;          // run.label_only_logits of every party
  int packed = 1;              // run.packed_batches of every party
  std::string train = "full";  // the adapters: full, or LoRA factors (model.lora_*'s defaults)
  int64_t synthetic = 0;  // > 0: random batches of this length (rows T/2..T real) for WordNet's
  int bytes = 1;          // print the bytes-per-step table (five more model pairs)
  std::string wordnet = "/usr/share/wordnet";
  std::string caf_policy =
      "sharing";  // as gtune runs (apps/run_client.cpp), or CAF's default stealing
  int rounds = 40, warmup = 1, batches = 4, threads = 0;
  int64_t batch = 8, max_len = 64;
  int serve_fd = -1, lifeline_fd = -1;  // internal: server mode (variant C's child)
};

[[noreturn]] void usage(const char* argv0, const std::string& why) {
  std::cerr << argv0 << ": " << why << "\nusage: " << argv0
            << " [--model DIR|opt-1.3b-random] [--tokenizer DIR] [--device cpu|cuda|cuda:N]\n"
               "       [--variants A0,A,B,C,B2,C2,C4] [--bytes 0|1] [--json FILE] [--wordnet DIR]\n"
               "       [--rounds N] [--warmup N] [--batches N] [--threads N] [--batch B]\n"
               "       [--max-len T] [--caf-policy stealing|sharing] [--label-only 0|1]\n"
               "       [--packed 0|1] [--train full|lora] [--synthetic T]\n"
               "       [--dump-batches FILE]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage(argv[0], "missing value after " + a);
    const std::string v = argv[++i];
    const std::map<std::string, std::string*> strs{{"--model", &o.model},
                                                   {"--wordnet", &o.wordnet},
                                                   {"--caf-policy", &o.caf_policy},
                                                   {"--tokenizer", &o.tokenizer},
                                                   {"--device", &o.device},
                                                   {"--variants", &o.variants},
                                                   {"--json", &o.json},
                                                   {"--dump-batches", &o.dump_batches},
                                                   {"--train", &o.train}};
    const std::map<std::string, int*> ints{
        {"--rounds", &o.rounds},   {"--warmup", &o.warmup},         {"--batches", &o.batches},
        {"--threads", &o.threads}, {"--serve", &o.serve_fd},        {"--lifeline", &o.lifeline_fd},
        {"--bytes", &o.bytes},     {"--label-only", &o.label_only}, {"--packed", &o.packed}};
    const std::map<std::string, int64_t*> longs{
        {"--batch", &o.batch}, {"--max-len", &o.max_len}, {"--synthetic", &o.synthetic}};
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
  if (o.bytes != 0 && o.bytes != 1) usage(argv[0], "--bytes must be 0 or 1");
  if (o.label_only != 0 && o.label_only != 1) usage(argv[0], "--label-only must be 0 or 1");
  if (o.packed != 0 && o.packed != 1) usage(argv[0], "--packed must be 0 or 1");
  if (o.train != "full" && o.train != "lora") usage(argv[0], "--train must be full or lora");
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
  cfg.run.device = o.device;
  cfg.run.label_only_logits = o.label_only != 0;
  cfg.run.packed_batches = o.packed != 0;
  cfg.model.train = o.train;
  return cfg;
}

// The checkpoint, or OPT-1.3B's shape with random weights (the same for every copy: seed 0).
// Without hold_backbone, the backbone's blocks are hollow, as a client node holds them.
gt::DecoderLM load_model(const gt::RunConfig& cfg, bool hold_backbone = true) {
  const auto mcfg = cfg.model.path == kRandomModel
                        ? gt::parse_model_config(kOpt13bConfig, kRandomModel)
                        : gt::load_model_config(cfg.model.path);
  gt::BlockRange backbone;
  if (!hold_backbone) backbone = {cfg.model.n_in, mcfg.num_layers - cfg.model.n_out};
  if (cfg.model.path == kRandomModel) return gt::make_decoder(mcfg, 0, backbone);
  return gt::load_decoder(cfg.model.path, torch::kFloat, backbone);
}

// Each tensor once (the tied head is the embedding); a hollow block counts as the others do.
int64_t parameter_count(const gt::DecoderLM& model) {
  int64_t n = 0, per_block = 0, hollow = 0;
  for (const auto& [name, t] : gt::hf_named_parameters(gt::all_parts(*model))) n += t.numel();
  for (const auto& b : model->blocks) {
    if (gt::is_hollow(*b)) {
      ++hollow;
      continue;
    }
    per_block = 0;
    for (const auto& p : b->parameters()) per_block += p.numel();
  }
  return n + hollow * per_block;
}

// Peak resident memory of a live process (VmHWM), in MB; 0 when unreadable.
double peak_rss_mb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  return 0;
}

// A client's copy of the model with trainable adapters, as apps/parties.cpp builds it.
struct ClientCopy {
  gt::DecoderLM model{nullptr};
  gt::Segments seg;
  std::shared_ptr<torch::optim::Optimizer> optimizer;
};

ClientCopy make_client(const gt::RunConfig& cfg, double lr, bool hold_backbone) {
  ClientCopy c;
  c.model = load_model(cfg, hold_backbone);
  c.seg = gt::split_model(c.model, {cfg.model.n_in, cfg.model.n_out});
  gt::set_trainable(*c.model, gt::TrainMode::frozen);
  const auto mode = gt::parse_train_mode(cfg.model.train);
  if (mode == gt::TrainMode::lora) {  // seeded: every variant's copy starts from the same factors
    torch::manual_seed(0);
    const gt::LoraOptions lora{cfg.model.lora_rank, cfg.model.lora_alpha, cfg.model.lora_targets};
    gt::apply_lora(*c.seg.input, lora);
    gt::apply_lora(*c.seg.output, lora);
  }
  gt::set_trainable(*c.seg.input, mode);
  gt::set_trainable(*c.seg.output, mode);
  gt::set_compute_options(c.seg, cfg.run.packed_batches, cfg.run.label_only_logits);
  gt::to_device(c.seg, gt::parse_device(cfg.run.device));  // before the optimizer
  c.optimizer = std::make_shared<torch::optim::AdamW>(
      gt::unique_parameters({c.seg.input.get(), c.seg.output.get()}),
      torch::optim::AdamWOptions(lr).weight_decay(cfg.optimizer.weight_decay));
  return c;
}

// The client's split-learning half over `copy`, with the given wire quantization, its steps in
// `micro_batches` pipelined chunks.
std::unique_ptr<gt::ClientChannel> channel(const ClientCopy& copy, gt::WireSchemes schemes = {},
                                           int64_t micro_batches = 1) {
  auto model =
      std::make_shared<gt::ClientModel>(gt::ClientModel{copy.seg, copy.optimizer, 0, nullptr});
  return std::make_unique<gt::ClientChannel>(
      model, std::make_unique<gt::WireQuantization>(
                 std::make_unique<gt::SplitClient>(model, "split", 0, micro_batches), schemes));
}

std::shared_ptr<gt::SplitServer> make_server(const gt::RunConfig& cfg, const std::string& name) {
  auto model = load_model(cfg);
  gt::set_trainable(*model, gt::TrainMode::frozen);
  auto seg = gt::split_model(model, {cfg.model.n_in, cfg.model.n_out});
  gt::set_compute_options(seg, cfg.run.packed_batches, cfg.run.label_only_logits);
  gt::to_device(seg, gt::parse_device(cfg.run.device));
  return std::make_shared<gt::SplitServer>(seg, name);
}

// Random ids, row 0 of length T and the others of T/2..T real tokens (right padding), every real
// token labelled: long sequences, which the WordNet examples are not.
std::vector<gt::LmBatch> synthetic_batches(const Options& o, int64_t vocab) {
  auto gen = at::detail::createCPUGenerator(0);
  std::vector<gt::LmBatch> out;
  const auto T = o.synthetic;
  for (int i = 0; i < o.batches; ++i) {
    auto ids = torch::randint(3, std::min<int64_t>(vocab, 8192), {o.batch, T}, gen, torch::kLong);
    auto lengths = torch::randint(std::max<int64_t>(1, T / 2), T + 1, {o.batch}, gen, torch::kLong);
    lengths[0] = T;
    auto mask = torch::arange(T).unsqueeze(0).lt(lengths.unsqueeze(1)).to(torch::kLong);
    out.push_back({ids, mask, ids.masked_fill(mask.eq(0), -100)});
  }
  return out;
}

std::vector<gt::LmBatch> make_batches(const Options& o) {
  if (o.synthetic > 0) {
    const auto vocab =
        o.model == kRandomModel ? int64_t(50272) : gt::load_model_config(o.model).vocab_size;
    return synthetic_batches(o, vocab);
  }
  const size_t want = static_cast<size_t>(o.batch) * o.batches;
  // Extra examples in case the tokenizer drops some that do not fit max_len.
  auto ex = gt::wordnet_instructions(o.wordnet, 0.05, want + 64, 1).train;
  const gt::InstructionDataset data(ex, gt::Tokenizer::from_dir(o.tokenizer), o.max_len);
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
  // Only where asked (the bytes table): what zstd would make of each encoded message, and
  // what the padded positions left off the wire would have added.
  bool zstd = false;
  int64_t zstd_up = 0, zstd_down = 0, padding_up = 0, padding_down = 0;
};
// The bytes a tensor's padded rows would add if they were sent too (protocol 1 sent them).
int64_t padding_bytes(const gt::WireTensor& w) {
  if (w.rows.empty()) return 0;
  int64_t rows = 1, sent = 0;
  for (size_t i = 0; i + 1 < w.shape.size(); ++i) rows *= w.shape[i];
  for (auto b : w.rows) sent += __builtin_popcount(b);
  const int64_t per_row = int64_t(w.payload.size()) / sent +
                          (w.scheme == gt::QuantScheme::none ? 0 : 8);  // + scale and zero
  return (rows - sent) * per_row - int64_t(w.rows.size());
}
template <class T>
int64_t padding_bytes(const T&) {
  return 0;
}
int64_t padding_bytes(const gt::ForwardRequest& m) {
  return padding_bytes(m.activations);
}
int64_t padding_bytes(const gt::ForwardReply& m) {
  return padding_bytes(m.activations);
}
int64_t padding_bytes(const gt::BackwardRequest& m) {
  return padding_bytes(m.gradient);
}
int64_t padding_bytes(const gt::BackwardReply& m) {
  return padding_bytes(m.gradient);
}
// zstd at its default level 3, the size an optional compression would send.
int64_t zstd_size(const std::vector<uint8_t>& bytes) {
  std::vector<uint8_t> out(ZSTD_compressBound(bytes.size()));
  const size_t n = ZSTD_compress(out.data(), out.size(), bytes.data(), bytes.size(), 3);
  if (ZSTD_isError(n)) throw std::runtime_error(ZSTD_getErrorName(n));
  return static_cast<int64_t>(n);
}
template <class T>
T wire(const T& msg, int64_t& counter, int64_t* zstd_counter = nullptr,
       int64_t* padding_counter = nullptr) {
  auto enc = gt::encode(msg);
  counter += static_cast<int64_t>(enc.bytes.size());
  if (zstd_counter) *zstd_counter += zstd_size(enc.bytes);
  if (padding_counter) *padding_counter += padding_bytes(msg);
  return gt::decode(enc);
}

// Seconds of each part of variant A's steps, summed: the client's input adapter forward, the
// server's backbone forward, the client's output adapter forward + backward, the server's
// backward, the client's input adapter backward + optimizer step (each with the codec work of
// the message it takes in).
struct Parts {
  double input_fwd = 0, server_fwd = 0, output = 0, server_bwd = 0, input_bwd = 0;
  double client() const { return input_fwd + output + input_bwd; }
  double server() const { return server_fwd + server_bwd; }
};

double step_direct(gt::ClientChannel& c, gt::SplitServer& s, const gt::LmBatch& b, Bytes& n,
                   Parts* parts = nullptr) {
  int64_t* zu = n.zstd ? &n.zstd_up : nullptr;
  int64_t* zd = n.zstd ? &n.zstd_down : nullptr;
  int64_t* pu = n.zstd ? &n.padding_up : nullptr;
  int64_t* pd = n.zstd ? &n.padding_down : nullptr;
  auto t = Clock::now();
  auto lap = [&](double Parts::*part) {
    const auto now = Clock::now();
    if (parts) parts->*part += std::chrono::duration<double>(now - t).count();
    t = now;
  };
  auto req = std::get<gt::ForwardRequest>(c.begin_step({b, {}}));
  lap(&Parts::input_fwd);
  auto fwd = s.forward(wire(req, n.up, zu, pu));
  lap(&Parts::server_fwd);
  auto up = c.on_reply(wire(fwd, n.down, zd, pd));
  lap(&Parts::output);
  auto bwd = s.backward(wire(std::get<gt::BackwardRequest>(up), n.up, zu, pu));
  lap(&Parts::server_bwd);
  const auto loss = std::get<gt::StepOutcome>(c.on_reply(wire(bwd, n.down, zd, pd))).loss;
  lap(&Parts::input_bwd);
  return loss;
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

// Sends a request now; its reply is taken later with take().
template <class Req>
auto send_request(caf::scoped_actor& self, const gt::server_actor& server, const Req& req) {
  return self->request(server, std::chrono::minutes(2), gt::encode(req));
}
template <class Rep, class Handle>
Rep take(Handle& pending) {
  Rep out;
  std::string failure;
  pending.receive([&](gt::Encoded<Rep>& enc) { out = gt::decode(enc); },
                  [&](caf::error& err) { failure = gt::describe(err); });
  if (!failure.empty()) throw std::runtime_error("server actor: " + failure);
  return out;
}

double step_actor(gt::ClientChannel& c, caf::scoped_actor& self, const gt::server_actor& server,
                  const gt::LmBatch& b) {
  auto out = c.begin_step({b, {}});
  if (auto* fs = std::get_if<gt::ForwardRequests>(&out)) {
    // Pipelined: every chunk's forward at once; each a2 as it comes, its g2 sent at once; then
    // the g1 chunks.
    using Fwd = decltype(send_request(self, server, fs->front()));
    using Bwd = decltype(send_request(self, server, gt::BackwardRequest{}));
    std::vector<Fwd> forwards;
    std::vector<Bwd> backwards;
    for (const auto& f : *fs) forwards.push_back(send_request(self, server, f));
    for (auto& f : forwards) {
      auto g2 = std::get<gt::BackwardRequest>(c.on_reply(take<gt::ForwardReply>(f)));
      backwards.push_back(send_request(self, server, g2));
    }
    for (auto& g : backwards) out = c.on_reply(take<gt::BackwardReply>(g));
    return std::get<gt::StepOutcome>(out).loss;
  }
  auto fwd = ask<gt::ForwardReply>(self, server, std::get<gt::ForwardRequest>(out));
  auto bwd = ask<gt::BackwardReply>(self, server,
                                    std::get<gt::BackwardRequest>(c.on_reply(std::move(fwd))));
  return std::get<gt::StepOutcome>(c.on_reply(std::move(bwd))).loss;
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
    std::vector<std::string> args{"bench_split_step", "--model", o.model,
                                  "--device",         o.device,  "--threads"};
    args.insert(args.end(), {std::to_string(o.threads), "--caf-policy", o.caf_policy, "--packed",
                             std::to_string(o.packed), "--label-only", std::to_string(o.label_only),
                             "--serve"});
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
  auto copy = make_client(cfg, 0.0, false);
  auto client = channel(copy, schemes);
  auto server = make_server(cfg, "bytes");
  Bytes n;
  client->set_session(server->open(wire(client->hello("bytes"), n.up)).header.session);
  n = Bytes{};
  n.zstd = true;
  for (auto& b : batches) step_direct(*client, *server, b, n);
  const auto k = static_cast<int64_t>(batches.size());
  return {n.up / k,         n.down / k,        true, n.zstd_up / k, n.zstd_down / k,
          n.padding_up / k, n.padding_down / k};
}

// The timed variants, in this order everywhere; micro-batches of each step.
const std::vector<std::string> kVariants{"A0", "A", "B", "C", "B2", "C2", "C4"};
const int64_t kMicroBatches[] = {1, 1, 1, 1, 2, 2, 4};

// Which of kVariants to run: a comma-separated list.
std::vector<bool> parse_variants(const std::string& list, const char* argv0) {
  const auto& known = kVariants;
  std::vector<bool> want(known.size(), false);
  std::string item;
  std::stringstream in(list);
  while (std::getline(in, item, ',')) {
    const auto it = std::find(known.begin(), known.end(), item);
    if (it == known.end()) usage(argv0, "--variants: unknown variant '" + item + "'");
    want[size_t(it - known.begin())] = true;
  }
  if (std::find(want.begin(), want.end(), true) == want.end())
    usage(argv0, "--variants: name at least one of A0, A, B, C, B2, C2, C4");
  return want;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (o.threads > 0) torch::set_num_threads(o.threads);
  spdlog::set_level(spdlog::level::warn);  // no per-session info lines in the output
  if (o.serve_fd >= 0) return serve(o);
  const auto want = parse_variants(o.variants, argv[0]);

  std::string cmd;
  for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + std::string(argv[i]);
  std::printf("command: %s\n", cmd.c_str());
  std::printf("date: %s\n", now_string().c_str());
  std::printf("hardware_concurrency: %u, torch threads: %d, interop threads: %d\n",
              std::thread::hardware_concurrency(), torch::get_num_threads(),
              torch::get_num_interop_threads());
  std::printf("load average at start: %s\n", loadavg().c_str());

  Child child;
  try {
    const auto device = gt::parse_device(o.device, "--device");
    const auto cfg = run_config(o);
    if (o.model == kRandomModel)
      std::printf(
          "model: %s (random weights, OPT-1.3B's shape: hidden 2048, 24 layers, 32 heads, "
          "ffn 8192, vocab 50272); batches tokenized with %s\n",
          o.model.c_str(), o.tokenizer.c_str());
    else
      std::printf("model: %s\n", o.model.c_str());
    if (!device.is_cpu())
      std::printf("device: %s (every party; LibTorch %s)\n", device.str().c_str(), TORCH_VERSION);
    enum { kA0, kA, kB, kC, kB2, kC2, kC4, kN };
    if (want[kC] || want[kC2] || want[kC4])
      child = spawn_server_process(o);  // loads its model while we load ours
    const auto batches = make_batches(o);
    std::printf("data: %s, %d fixed batches of %lld, max_len %lld; shapes:",
                o.synthetic > 0 ? "synthetic (random ids, rows T/2..T)" : "WordNet instructions",
                o.batches, static_cast<long long>(o.batch), static_cast<long long>(o.max_len));
    for (auto& b : batches)
      std::printf(" %lldx%lld", static_cast<long long>(b.input_ids.size(0)),
                  static_cast<long long>(b.input_ids.size(1)));
    std::printf(
        "\nsplit n_in=%lld n_out=%lld, adapters %s, AdamW lr %g, fp32 wire, no dCor, "
        "label-only logits %s, packed batches %s\n",
        static_cast<long long>(cfg.model.n_in), static_cast<long long>(cfg.model.n_out),
        cfg.model.train.c_str(), cfg.optimizer.lr, cfg.run.label_only_logits ? "on" : "off",
        cfg.run.packed_batches ? "on" : "off");
    if (!o.dump_batches.empty()) {
      std::vector<std::pair<std::string, torch::Tensor>> named;
      for (size_t i = 0; i < batches.size(); ++i) {
        const auto prefix = "batch_" + std::to_string(i) + ".";
        named.emplace_back(prefix + "input_ids", batches[i].input_ids);
        named.emplace_back(prefix + "attention_mask", batches[i].attention_mask);
        named.emplace_back(prefix + "labels", batches[i].labels);
      }
      gt::save_safetensors(o.dump_batches, named, {});
      std::printf("batches written to %s\n", o.dump_batches.c_str());
    }

    // ---- bytes per step ----
    using QS = gt::QuantScheme;
    const std::vector<std::pair<const char*, gt::WireSchemes>> cases = {
        {"split fp32", {}},
        {"online a1 int8", {QS::int8, QS::none, QS::none, QS::none}},
        {"online a1 int4", {QS::int4, QS::none, QS::none, QS::none}},
        {"online a1+g2 int8", {QS::int8, QS::none, QS::int8, QS::none}},
        {"online all four int8", {QS::int8, QS::int8, QS::int8, QS::int8}},
        {"online a1 int2", {QS::int2, QS::none, QS::none, QS::none}},
        {"online a1 int2, rest int8", {QS::int2, QS::int8, QS::int8, QS::int8}},
    };
    if (o.bytes) {
      std::printf(
          "\n[bytes per step] encoded message sizes, mean over the %d batches; -%%: against split "
          "fp32; padding sent: the same with the padded positions sent too (protocol 1), and -%% "
          "of split fp32 so; zstd-3: the messages compressed one by one (zstd level 3), and what "
          "that saves\n",
          o.batches);
      std::printf("  %-26s %9s %9s %9s %7s %7s %8s %9s %7s %9s %6s\n", "wire", "up B", "down B",
                  "total B", "up -%", "down -%", "total -%", "padded B", "-% so", "zstd-3 B",
                  "saves");
      Bytes ref;
      int64_t last_total = 0;
      for (size_t i = 0; i < cases.size(); ++i) {
        const auto n = bytes_per_step(cfg, cases[i].second, batches);
        if (i == 0) ref = n;
        auto pct = [](int64_t x, int64_t r) { return r ? 100.0 * (1.0 - double(x) / r) : 0.0; };
        const auto total = n.up + n.down, zstd_total = n.zstd_up + n.zstd_down;
        const auto padded = total + n.padding_up + n.padding_down;
        last_total = total;
        const auto ref_padded = ref.up + ref.down + ref.padding_up + ref.padding_down;
        std::printf(
            "  %-26s %9lld %9lld %9lld %6.1f%% %6.1f%% %7.1f%% %9lld %6.1f%% %9lld %5.1f%%\n",
            cases[i].first, static_cast<long long>(n.up), static_cast<long long>(n.down),
            static_cast<long long>(total), pct(n.up, ref.up), pct(n.down, ref.down),
            pct(total, ref.up + ref.down), static_cast<long long>(padded), pct(padded, ref_padded),
            static_cast<long long>(zstd_total), pct(zstd_total, total));
      }
      const auto old_wire = ref.up + ref.down + ref.padding_up + ref.padding_down;
      std::printf(
          "  (split fp32 with the padding sent, %lld B, is the wire before protocol 2: the last "
          "row sends %.1f%% less)\n",
          static_cast<long long>(old_wire), 100.0 * (1.0 - double(last_total) / double(old_wire)));
    }

    // ---- timed variants ----
    const char* names[kN] = {"A0 centralized",        "A  split direct",
                             "B  actors, 1 process",  "C  actors, loopback",
                             "B2 B, 2 micro-batches", "C2 C, 2 micro-batches",
                             "C4 C, 4 micro-batches"};
    const double lr = cfg.optimizer.lr;
    // Only the copies the chosen variants need (a big model's copies take memory and time); the
    // split variants' clients hold no backbone, as a client node does (the server runs it).
    ClientCopy copies[kN];
    for (int v = 0; v < kN; ++v)
      if (want[v]) copies[v] = make_client(cfg, lr, /*hold_backbone=*/v == kA0);
    const int first = int(std::find(want.begin(), want.end(), true) - want.begin());
    const auto& first_copy = want[kA] ? copies[kA] : copies[first];
    const int64_t parameters = parameter_count(first_copy.model);
    if (o.model == kRandomModel)
      std::printf("parameters: %lld (each tensor once)\n", static_cast<long long>(parameters));
    std::optional<gt::CentralizedTrainer> trainer;
    if (want[kA0]) trainer.emplace(copies[kA0].seg, copies[kA0].optimizer);
    std::unique_ptr<gt::ClientChannel> channels[kN];
    for (int v = kA; v < kN; ++v)
      if (want[v]) channels[v] = channel(copies[v], {}, kMicroBatches[v]);
    const bool local = want[kB] || want[kB2], remote = want[kC] || want[kC2] || want[kC4];
    std::shared_ptr<gt::SplitServer> server_a;
    Bytes sink;
    if (want[kA]) {
      server_a = make_server(cfg, "bench-direct");
      channels[kA]->set_session(
          server_a->open(wire(channels[kA]->hello("a"), sink.up)).header.session);
    }

    ActorConfig acfg{o.caf_policy};
    caf::actor_system sys{acfg};
    gt::server_actor server_b;
    if (local)
      server_b = sys.spawn(gt::server_behavior, make_server(cfg, "bench-local"),
                           std::make_shared<gt::WireStats>());
    struct ExitGuard {  // else ~actor_system would wait for it forever
      gt::server_actor actor;
      ~ExitGuard() {
        if (actor) caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
      }
    } exit_guard{server_b};
    gt::server_actor server_c;
    if (remote) {
      auto found = sys.middleman().remote_actor<gt::server_actor>("127.0.0.1", child.port);
      if (!found) throw std::runtime_error("remote_actor: " + caf::to_string(found.error()));
      server_c = *found;
    }
    // Each variant's server actor: B's in this process, C's in the other; one session each,
    // opened by the variant's own client actor (a session belongs to the actor that opened it).
    auto server_of = [&](int v) { return v == kB || v == kB2 ? server_b : server_c; };
    std::unique_ptr<caf::scoped_actor> selves[kN];
    for (int v = kB; v < kN; ++v)
      if (want[v]) {
        selves[v] = std::make_unique<caf::scoped_actor>(sys);
        channels[v]->set_session(
            ask<gt::SessionAccept>(*selves[v], server_of(v), channels[v]->hello(kVariants[v]))
                .header.session);
      }
    if (remote)
      std::printf("CAF scheduler: %s, %zu workers; server process pid %d on 127.0.0.1:%u\n",
                  o.caf_policy.c_str(), sys.scheduler().num_workers(), static_cast<int>(child.pid),
                  static_cast<unsigned>(child.port));
    else
      std::printf("CAF scheduler: %s, %zu workers\n", o.caf_policy.c_str(),
                  sys.scheduler().num_workers());

    gt::WireStats a0_stats;
    Parts parts;  // variant A's, timed rounds only
    bool timing_parts = false;
    auto run_step = [&](int v, const gt::LmBatch& b) {
      double loss = 0;
      if (v == kA0)
        loss = trainer->step(b, a0_stats, "a0").loss;
      else if (v == kA)
        loss = step_direct(*channels[kA], *server_a, b, sink, timing_parts ? &parts : nullptr);
      else
        loss = step_actor(*channels[v], *selves[v], server_of(v), b);
      gt::synchronize(device);  // the step ends when the GPU's queued work (optimizer) is done
      return loss;
    };
    // Ratios reported: numerator / denominator variant.
    const std::vector<std::pair<int, int>> pairs{{kA, kA0}, {kB, kA},  {kC, kA},
                                                 {kB2, kB}, {kC2, kC}, {kC4, kC}};
    std::vector<double> t[kN], losses[kN];
    std::vector<std::vector<double>> ratios[2];  // [per round, per step][pair]
    for (auto& r : ratios) r.resize(pairs.size());
    auto add_ratios = [&](const double* x, int which) {
      for (size_t i = 0; i < pairs.size(); ++i)
        if (want[pairs[i].first] && want[pairs[i].second])
          ratios[which][i].push_back(x[pairs[i].first] / x[pairs[i].second]);
    };
    for (int r = 0; r < o.warmup + o.rounds; ++r) {
      timing_parts = r >= o.warmup;
      double round[kN] = {};
      for (auto& b : batches) {
        double step[kN] = {};
        for (int k = 0; k < kN; ++k) {
          // Rotate the order each round, and reverse it every kN rounds, so that each
          // variant runs first, last, and right after every other one equally often.
          const int rot = (k + r) % kN, v = (r / kN) % 2 ? kN - 1 - rot : rot;
          if (!want[v]) continue;
          const auto t0 = Clock::now();
          losses[v].push_back(run_step(v, b));
          step[v] = std::chrono::duration<double>(Clock::now() - t0).count();
          round[v] += step[v];
        }
        if (r >= o.warmup) add_ratios(step, 1);
      }
      if (r < o.warmup) continue;
      for (int v = 0; v < kN; ++v)
        if (want[v]) t[v].push_back(round[v] / o.batches);
      add_ratios(round, 0);
    }
    const int ref = want[kA] ? kA : first;
    double max_diff[kN] = {};
    for (int v = 0; v < kN; ++v)
      for (size_t i = 0; i < losses[v].size(); ++i)
        max_diff[v] = std::max(max_diff[v], std::abs(losses[v][i] - losses[ref][i]));

    std::printf(
        "\n[step time] %d warm-up + %d timed rounds; each batch runs with every variant "
        "in turn, order rotated\n",
        o.warmup, o.rounds);
    std::printf("  %-22s %10s %10s %10s %12s\n", "variant", "median s", "min s", "max s",
                "max|dloss|");
    for (int v = 0; v < kN; ++v)
      if (want[v])
        std::printf("  %-22s %10.4f %10.4f %10.4f %12.3g\n", names[v], median(t[v]),
                    *std::min_element(t[v].begin(), t[v].end()),
                    *std::max_element(t[v].begin(), t[v].end()), max_diff[v]);
    for (size_t i = 0; i < pairs.size(); ++i) {
      auto& pr = ratios[0][i];
      if (pr.empty()) continue;
      const auto [num, den] = pairs[i];
      const std::string what = kVariants[num] + "/" + kVariants[den];
      const char* target = num == kB   ? "  target < 1.03 (issue 8)"
                           : num == kC ? "  target < 1.10 (issue 8)"
                                       : "";
      std::printf("  %-5s median of per-round ratios %.3f (min %.3f, max %.3f); per-step %.3f%s\n",
                  what.c_str(), median(pr), *std::min_element(pr.begin(), pr.end()),
                  *std::max_element(pr.begin(), pr.end()), median(ratios[1][i]), target);
    }
    std::printf(
        "  (max|dloss|: largest |loss - loss of %s| over all %zu steps; same batches, "
        "same start)\n",
        kVariants[ref].c_str(), losses[ref].size());
    if (want[kA]) {
      // What pipelining can gain: with k micro-batches the server's share overlaps the
      // client's except about 1/k of it (its first forward chunk and last backward chunk), so
      // a step takes at least client + server / k, and never less than max(client, server).
      const double steps = double(o.rounds) * double(o.batches);
      const double client = parts.client() / steps, server = parts.server() / steps;
      std::printf(
          "\n[parts of A] mean s/step: client %.4f (input fwd %.4f, output fwd+bwd %.4f, input "
          "bwd+step %.4f), server %.4f (fwd %.4f, bwd %.4f); server share %.1f%%\n",
          client, parts.input_fwd / steps, parts.output / steps, parts.input_bwd / steps, server,
          parts.server_fwd / steps, parts.server_bwd / steps, 100 * server / (client + server));
      for (int k : {2, 4})
        std::printf(
            "  bound with %d micro-batches, server and client each on its own core: "
            "(client + server/%d) / (client + server) = %.3f\n",
            k, k, (client + server / k) / (client + server));
      std::printf(
          "  bound with unlimited micro-batches: max(client, server) / (client + server) "
          "= %.3f\n",
          std::max(client, server) / (client + server));
    }
    {
      rusage self_usage{};
      getrusage(RUSAGE_SELF, &self_usage);
      std::printf("\npeak RSS: this process %.0f MB (the clients; A's and B's servers too)",
                  double(self_usage.ru_maxrss) / 1024.0);
      if (child.pid > 0) std::printf(", C's server process %.0f MB", peak_rss_mb(child.pid));
      std::printf("\n");
    }
    if (!o.json.empty()) {
      nlohmann::json j = {{"impl", "gtune (LibTorch " + std::string(TORCH_VERSION) + ")"},
                          {"model", o.model},
                          {"device", device.str()},
                          {"rounds", o.rounds},
                          {"warmup", o.warmup},
                          {"shapes", nlohmann::json::array()},
                          {"median_s_per_step", nlohmann::json::object()},
                          {"first_loss", nlohmann::json::object()}};
      j["parameters"] = parameters;
      j["label_only_logits"] = cfg.run.label_only_logits;
      j["packed_batches"] = cfg.run.packed_batches;
      rusage usage{};
      getrusage(RUSAGE_SELF, &usage);
      // This process: the clients, and the servers of A and B; C's server is the other process.
      j["peak_rss_mb"] = double(usage.ru_maxrss) / 1024.0;
      if (child.pid > 0) j["server_process_peak_rss_mb"] = peak_rss_mb(child.pid);
      for (auto& b : batches)
        j["shapes"].push_back(std::to_string(b.input_ids.size(0)) + "x" +
                              std::to_string(b.input_ids.size(1)));
      for (int v = 0; v < kN; ++v)
        if (want[v]) {
          j["median_s_per_step"][kVariants[v]] = median(t[v]);
          j["first_loss"][kVariants[v]] = losses[v].front();
        }
      std::ofstream(o.json) << j.dump(1) << "\n";
    }
  } catch (const std::exception& e) {
    stop(child);
    std::fprintf(stderr, "bench_split_step: %s\n", e.what());
    return 1;
  }
  stop(child);
  std::printf("load average at end: %s\n", loadavg().c_str());
  return 0;
}
