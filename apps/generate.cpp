// gtune generate: text from the tuned model (issue 18). Loads the run's model with its adapter
// structure (LoRA or full), plugs in the adapters a run wrote (--adapters; without it, the
// pretrained model) and generates after each prompt with KV caches, printing the text as it
// comes. With --connect the backbone is a server node's: this process holds the adapters only,
// sends a1 (quantized as in training) and keeps its adapters' cache; the server keeps the
// backbone's.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "apps/commands.hpp"
#include "apps/network_options.hpp"
#include "apps/parties.hpp"
#include "apps/run_options.hpp"
#include "apps/run_plan.hpp"
#include "common/error.hpp"
#include "control/address.hpp"
#include "models/adapter_io.hpp"
#include "models/generation.hpp"
#include "models/tokenizer.hpp"
#include "strategies/generation_client.hpp"

namespace gt::cli {
namespace {

struct GenerateOptions {
  RunOptions run;
  NetworkOptions network;
  std::string connect;  // a server node's HOST:PORT; "" = the backbone in this process
  std::string adapters;
  std::vector<std::string> prompts;
  std::string prompts_file;
  SamplingOptions sampling;
  bool json = false;
};

// The prompts of a JSON-lines file: one object with a "prompt" string per non-empty line.
std::vector<std::string> read_prompts(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw error_at(path, "cannot open the prompts file");
  std::vector<std::string> out;
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto where = path + ":" + std::to_string(line_no);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(where + ": not JSON (" + e.what() + ")");
    }
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string())
      throw Error(where + ": expected an object with a \"prompt\" string");
    out.push_back(j["prompt"].get<std::string>());
  }
  if (out.empty()) throw error_at(path, "no prompts (the file is empty or has only blank lines)");
  return out;
}

// A session with a server node for generations: hello, then each step a request answered
// with a2, and a goodbye at the end.
class RemoteBackbone {
 public:
  RemoteBackbone(const GenerateOptions& opt, const RunConfig& cfg, const Segments& seg)
      : acfg_(configured(opt.network)), sys_(acfg_), self_(sys_) {
    const auto where = parse_host_port(opt.connect, "--connect");
    opt.network.check(where.host, "--connect");
    auto found = connect_server(sys_, opt.network, where.host, where.port);
    if (!found)
      throw Error("cannot reach the server at " + opt.connect + ": " +
                  connect_error_text(found.error()));
    server_ = *found;
    const auto h =
        generation_hello(seg, cfg.run.name, parse_quant_scheme(cfg.strategy.quantize_a2));
    session_ = decode(ask<SessionAccept>(encode(h))).header.session;
    a1_scheme_ = parse_quant_scheme(cfg.strategy.quantize_a1);
  }
  ~RemoteBackbone() {
    SessionBye bye;
    bye.header = Header{kProtocolVersion, session_, 0};
    self_->send(server_, encode(bye));
  }
  // A generation's backbone steps; end() it when the generation is done.
  GenerationClient generation() {
    return GenerationClient(session_, a1_scheme_, [this](GenerateRequest r) {
      return decode(ask<GenerateReply>(encode(r)));
    });
  }

 private:
  static ActorConfig configured(const NetworkOptions& net) {
    ActorConfig c;
    net.configure(c);
    return c;
  }
  template <class Rep, class Req>
  Encoded<Rep> ask(const Encoded<Req>& msg) {
    Encoded<Rep> out;
    self_->request(server_, std::chrono::minutes(10), msg)
        .receive([&](Encoded<Rep>& rep) { out = std::move(rep); },
                 [&](caf::error& e) { throw Error("the server refused: " + describe(e)); });
    return out;
  }

  ActorConfig acfg_;
  caf::actor_system sys_;
  caf::scoped_actor self_;
  server_actor server_;
  uint64_t session_ = 0;
  QuantScheme a1_scheme_ = QuantScheme::none;
};

void run_generate(const GenerateOptions& opt) {
  auto prompts = opt.prompts;
  if (!opt.prompts_file.empty()) {
    const auto more = read_prompts(opt.prompts_file);
    prompts.insert(prompts.end(), more.begin(), more.end());
  }
  if (prompts.empty()) throw Error("generate: give --prompt TEXT or --prompts FILE.jsonl");
  const auto cfg = opt.run.load();
  DecoderLM model{nullptr};
  const bool remote = !opt.connect.empty();
  auto seg = load_adapter_model(cfg, model, /*hold_backbone=*/!remote);
  std::unique_ptr<RemoteBackbone> server;
  if (remote) server = std::make_unique<RemoteBackbone>(opt, cfg, seg);
  coarsen_client_inputs(cfg, seg);  // as the client computed (privacy.token_clusters)
  if (!opt.adapters.empty()) load_adapters(opt.adapters, seg);
  const auto tokenizer = Tokenizer::from_dir(cfg.model.path);
  auto sampling = opt.sampling;
  if (tokenizer.special().eos >= 0) sampling.stop_tokens.push_back(tokenizer.special().eos);
  for (const auto& prompt : prompts) {
    std::vector<int64_t> ids;
    if (tokenizer.special().bos >= 0) ids.push_back(tokenizer.special().bos);
    const auto text = tokenizer.encode(prompt);
    ids.insert(ids.end(), text.begin(), text.end());
    const auto n = static_cast<int64_t>(ids.size());
    if (n + sampling.max_tokens > seg.cfg.max_positions)
      throw Error("generate: the prompt (" + std::to_string(n) + " tokens) and --max-tokens " +
                  std::to_string(sampling.max_tokens) + " pass the model's " +
                  std::to_string(seg.cfg.max_positions) + " positions");
    auto input = torch::tensor(ids).view({1, n});
    std::vector<int64_t> made;
    std::string shown;
    if (!opt.json) std::printf("%s", prompt.c_str());
    std::optional<GenerationClient> on_server;
    BackboneStep backbone;
    if (remote) {
      on_server.emplace(server->generation());
      backbone = [&](const torch::Tensor& a1, const torch::Tensor& m) {
        return on_server->step(a1, m);
      };
    }
    const auto show = [&](int64_t, int64_t t) {
      if (opt.json) return;
      made.push_back(t);
      // Byte-level BPE: print what the tokens so far add to the text.
      const auto now = tokenizer.decode(made);
      if (now.size() > shown.size() && now.compare(0, shown.size(), shown) == 0) {
        std::fwrite(now.data() + shown.size(), 1, now.size() - shown.size(), stdout);
        std::fflush(stdout);
        shown = now;
      }
    };
    const auto mask = torch::ones_like(input);
    const auto g = remote ? generate(seg, backbone, input, mask, sampling, show)
                          : generate(seg, input, mask, sampling, show);
    if (on_server) on_server->end();
    if (opt.json) {
      nlohmann::json j = {{"prompt", prompt},
                          {"text", tokenizer.decode(g.tokens[0])},
                          {"tokens", g.tokens[0].size()},
                          {"finish_reason", g.finish[0]}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("\n[%s, %zu tokens]\n", g.finish[0].c_str(), g.tokens[0].size());
    }
    std::fflush(stdout);
  }
}

}  // namespace

void add_generate(CLI::App& app) {
  auto opt = std::make_shared<GenerateOptions>();
  auto* cmd = app.add_subcommand(
      "generate", "Generate text with a run's model and its tuned adapters (KV-cached decoding)");
  opt->run.add_to(*cmd);
  opt->network.add_to(*cmd);
  cmd->add_option("--connect", opt->connect,
                  "a server node's HOST:PORT: the backbone runs there (this process holds the "
                  "adapters only)");
  cmd->add_option("--adapters", opt->adapters,
                  "adapters.safetensors a run wrote (without it: the pretrained model)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--prompt", opt->prompts, "a prompt (repeat for several)");
  cmd->add_option("--prompts", opt->prompts_file, "JSON lines, one {\"prompt\": \"...\"} per line");
  cmd->add_option("--max-tokens", opt->sampling.max_tokens, "new tokens at most per prompt")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--temperature", opt->sampling.temperature, "0: greedy")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-k", opt->sampling.top_k, "sample from the k most probable (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", opt->sampling.top_p, "sample from the nucleus of this mass")
      ->capture_default_str()
      ->check(CLI::Range(1e-9, 1.0));
  cmd->add_option("--seed", opt->sampling.seed, "sampling seed")->capture_default_str();
  cmd->add_flag("--json", opt->json, "one JSON line per prompt instead of streamed text");
  cmd->callback([opt] { run_generate(*opt); });
}

}  // namespace gt::cli
