// Benchmark (issue 18): split generation against generating in one process, side by side in one
// run, on opt-mini: tokens per second and the bytes each new token costs on the wire.
//
// Variants, interleaved round by round on the same prompt:
//   one process  the backbone here (gt::generate with the segments' own backbone);
//   split fp32   the backbone and its KV cache in a SplitServer, every message encoded and
//                decoded as on the wire, a1 fp32;
//   split int8   the same with a1 quantized to int8, as the online design sends it.
// The split variants include the codec and the server's session and cache bookkeeping, not a
// network: add the round trip of your link per token (docs/generation.md).
// Prompts are fixed random token ids; EOS is not a stop token, so every generation makes
// exactly --new tokens.
#include <torch/torch.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "bench/bench_util.hpp"
#include "models/decoder.hpp"
#include "models/generation.hpp"
#include "protocols/codec.hpp"
#include "strategies/generation_client.hpp"
#include "strategies/split_server.hpp"

namespace {

using namespace gt::bench;  // Clock, median, now_string, loadavg, seconds_since

struct Options {
  std::string model = GT_DEFAULT_MODEL_DIR;
  std::vector<int64_t> prompts{32, 128};
  int64_t new_tokens = 128;
  int rounds = 5, warmup = 1;
  int threads = 1;
};

[[noreturn]] void usage(const char* argv0, const std::string& why) {
  std::cerr << argv0 << ": " << why << "\n"
            << "usage: " << argv0
            << " [--model DIR] [--prompt T (repeat)] [--new N] [--rounds N] [--warmup N]"
               " [--threads N]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  bool prompts_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage(argv[0], "missing value after " + a);
    const std::string v = argv[++i];
    try {
      if (a == "--model") {
        o.model = v;
      } else if (a == "--prompt") {
        if (!prompts_given) o.prompts.clear(), prompts_given = true;
        o.prompts.push_back(std::stoll(v));
      } else if (a == "--new") {
        o.new_tokens = std::stoll(v);
      } else if (a == "--rounds") {
        o.rounds = std::stoi(v);
      } else if (a == "--warmup") {
        o.warmup = std::stoi(v);
      } else if (a == "--threads") {
        o.threads = std::stoi(v);
      } else {
        usage(argv[0], "unknown option " + a);
      }
    } catch (const std::logic_error&) {
      usage(argv[0], "bad value for " + a + ": " + v);
    }
  }
  if (o.rounds < 1 || o.new_tokens < 1) usage(argv[0], "--rounds and --new must be positive");
  return o;
}

// Bytes of the encoded messages of one generation: the prompt's exchange and every later one.
struct WireBytes {
  int64_t prompt = 0, per_step = 0, steps = 0;
};

struct Measured {
  std::vector<double> seconds;
  WireBytes wire;
};

}  // namespace

int main(int argc, char** argv) {
  const auto opt = parse(argc, argv);
  if (opt.threads > 0) torch::set_num_threads(opt.threads);
  torch::NoGradGuard no_grad;
  auto client_model = gt::load_decoder(opt.model);
  auto client = gt::split_model(client_model, {1, 1});
  gt::SplitServer server(gt::split_model(gt::load_decoder(opt.model), {1, 1}), "server");
  const auto session = server.open(gt::generation_hello(client, "client")).header.session;

  std::printf("bench_generation  %s  load %s  threads %d\n", now_string().c_str(),
              loadavg().c_str(), torch::get_num_threads());
  std::printf("model %s (%lld layers; client: embeddings + 1 block, 1 block + head)\n",
              opt.model.c_str(), static_cast<long long>(client.cfg.num_layers));
  std::printf("batch 1, %lld new tokens, greedy; medians of %d rounds\n\n",
              static_cast<long long>(opt.new_tokens), opt.rounds);
  std::printf("%-7s %-12s %10s %9s %14s %14s\n", "prompt", "variant", "tokens/s", "ratio",
              "prompt bytes", "bytes/token");

  for (const auto prompt_len : opt.prompts) {
    if (prompt_len + opt.new_tokens > client.cfg.max_positions) {
      std::printf("%-7lld skipped: %lld + %lld positions pass the model's %lld\n",
                  static_cast<long long>(prompt_len), static_cast<long long>(prompt_len),
                  static_cast<long long>(opt.new_tokens),
                  static_cast<long long>(client.cfg.max_positions));
      continue;
    }
    torch::manual_seed(prompt_len);
    const auto ids = torch::randint(4, client.cfg.vocab_size, {1, prompt_len}, torch::kLong);
    const auto mask = torch::ones_like(ids);
    gt::SamplingOptions o;
    o.max_tokens = opt.new_tokens;  // no stop tokens: exactly this many

    const auto split = [&](gt::QuantScheme scheme, WireBytes& wire) {
      gt::GenerationClient remote(session, scheme, [&](gt::GenerateRequest r) {
        const auto up = gt::encode(r);
        const auto reply = server.generate(gt::decode(up));
        const auto down = gt::encode(reply);
        const auto bytes = static_cast<int64_t>(up.bytes.size() + down.bytes.size());
        (wire.steps == 0 ? wire.prompt : wire.per_step) += bytes;
        ++wire.steps;
        return gt::decode(down);
      });
      const auto g = gt::generate(
          client,
          [&](const torch::Tensor& a1, const torch::Tensor& m) { return remote.step(a1, m); }, ids,
          mask, o);
      remote.end();
      return g;
    };
    const std::vector<std::string> names{"one process", "split fp32", "split int8"};
    std::vector<Measured> m(names.size());
    std::vector<std::vector<int64_t>> tokens(names.size());
    for (int round = 0; round < opt.warmup + opt.rounds; ++round)
      for (size_t v = 0; v < names.size(); ++v) {
        WireBytes wire;
        const auto t0 = Clock::now();
        const auto g = v == 0   ? gt::generate(client, ids, mask, o)
                       : v == 1 ? split(gt::QuantScheme::none, wire)
                                : split(gt::QuantScheme::int8, wire);
        const double s = seconds_since(t0);
        if (round < opt.warmup) continue;
        m[v].seconds.push_back(s);
        m[v].wire = wire;
        tokens[v] = g.tokens.front();
      }
    const double base = static_cast<double>(opt.new_tokens) / median(m[0].seconds);
    for (size_t v = 0; v < names.size(); ++v) {
      const double tps = static_cast<double>(opt.new_tokens) / median(m[v].seconds);
      const auto& w = m[v].wire;
      const auto decode_steps = std::max<int64_t>(w.steps - 1, 1);
      if (v == 0)
        std::printf("%-7lld %-12s %10.1f %9.2f %14s %14s\n", static_cast<long long>(prompt_len),
                    names[v].c_str(), tps, 1.0, "-", "-");
      else
        std::printf("%-7lld %-12s %10.1f %9.2f %14lld %14.0f\n", static_cast<long long>(prompt_len),
                    names[v].c_str(), tps, tps / base, static_cast<long long>(w.prompt),
                    double(w.per_step) / double(decode_steps));
    }
    size_t same = 0;
    for (size_t i = 0; i < tokens[0].size(); ++i) same += tokens[2][i] == tokens[0][i];
    std::printf("        greedy tokens: split fp32 %s one process; split int8 keeps %zu of %zu\n",
                tokens[1] == tokens[0] ? "equals" : "DIFFERS FROM", same, tokens[0].size());
  }
  std::printf(
      "\nratio: tokens/s over one process's (above 1 = faster). bytes/token: up + down,\n"
      "encoded, of each step after the prompt's.\n");
  return 0;
}
