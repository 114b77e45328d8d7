// gtune serve: the tuned model behind OpenAI's HTTP API (issue 18), on the data owner's side.
// The adapters stay in this process; with --connect the backbone is a server node's, as in
// training (a1 privatized and quantized the same way). Existing tools (the openai clients,
// curl) use it as they would OpenAI's: /v1/completions, /v1/chat/completions, /v1/models.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>

#include "apps/commands.hpp"
#include "apps/metrics_options.hpp"
#include "apps/network_options.hpp"
#include "apps/run_options.hpp"
#include "apps/service_lifetime.hpp"
#include "apps/text_generator.hpp"
#include "common/error.hpp"
#include "control/address.hpp"
#include "control/openai_api.hpp"

namespace gt::cli {
namespace {

struct ServeOptions {
  RunOptions run;
  NetworkOptions network;  // to the server node (--connect)
  MetricsOptions metrics;
  ModelSource source;
  std::string listen = "127.0.0.1:8080", model_name, api_key_file, port_file;
  int threads = 4;
  double timeout_seconds = 30;
};

// The API key: from --api-key-file (its first line) or GTUNE_API_KEY; never a command-line
// argument, which every local user can read in the process list.
std::string api_key(const ServeOptions& opt) {
  if (!opt.api_key_file.empty()) {
    std::ifstream in(opt.api_key_file);
    std::string key;
    if (!in || !std::getline(in, key)) throw error_at(opt.api_key_file, "cannot read the API key");
    while (!key.empty() && (key.back() == '\r' || key.back() == ' ')) key.pop_back();
    if (key.empty()) throw error_at(opt.api_key_file, "the API key is empty");
    return key;
  }
  const char* env = std::getenv("GTUNE_API_KEY");
  return env ? env : "";
}

TextBackend backend_of(TextGenerator& generator, const std::string& model,
                       std::shared_ptr<Metrics> metrics) {
  const auto sampling_of = [&generator](const TextRequest& r) {
    SamplingOptions s;
    s.temperature = r.temperature;
    s.top_p = r.top_p;
    s.top_k = r.top_k;
    s.seed = r.seed;
    const auto room = generator.max_positions() - generator.prompt_length(r.prompt);
    s.max_tokens = r.max_tokens < 0 ? room : r.max_tokens;
    return s;
  };
  TextBackend b;
  b.model = model;
  b.check = [&generator](const TextRequest& r) {
    const auto n = generator.prompt_length(r.prompt);
    const auto room = generator.max_positions() - n;
    if (room < 1 || r.max_tokens > room)
      throw InvalidRequest(
          "the prompt is " + std::to_string(n) + " tokens; with max_tokens " +
              (r.max_tokens < 0 ? std::string("1") : std::to_string(r.max_tokens)) +
              " it passes the model's " + std::to_string(generator.max_positions()) + " positions",
          r.max_tokens > 0 && n < generator.max_positions() ? "max_tokens" : "prompt");
  };
  b.complete = [&generator, sampling_of, metrics](
                   const TextRequest& r, const std::function<bool(const std::string&)>& on_text) {
    Completion c;
    try {
      c = generator.complete(r.prompt, sampling_of(r), r.stop, on_text, r.ignore_eos);
    } catch (const BadPrompt& e) {
      throw InvalidRequest(e.what(), "prompt");
    }
    const auto decoding = c.seconds - c.seconds_to_first_token;
    metrics->add_completion(c.finish_reason, c.completion_tokens, c.seconds_to_first_token,
                            decoding > 0 ? double(c.completion_tokens - 1) / decoding : 0);
    if (c.wire_bytes > 0 && c.completion_tokens > 0)
      metrics->add_completion_wire_bytes_per_token(double(c.wire_bytes) /
                                                   double(c.completion_tokens));
    return TextResult{c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens};
  };
  return b;
}

void run_serve(const ServeOptions& opt) {
  const auto at = parse_host_port(opt.listen, "--listen");
  const auto key = api_key(opt);
  if (!is_loopback(at.host) && key.empty())
    throw Error("--listen " + opt.listen +
                ": beyond loopback the API needs a key (--api-key-file or GTUNE_API_KEY); put a "
                "TLS proxy in front of it where the network is not trusted");
  const auto cfg = opt.run.load();
  auto metrics = std::make_shared<Metrics>();
  TextGenerator generator(cfg, opt.source.adapters, opt.source.connect, opt.network, metrics);
  const auto model = opt.model_name.empty() ? cfg.run.name : opt.model_name;
  const auto exposer = opt.metrics.serve(metrics);
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(opt.timeout_seconds * 1000));
  HttpServer http(at.host, at.port, openai_routes(backend_of(generator, model, metrics), {key}),
                  timeout, opt.threads);
  std::printf("serving \"%s\" at %s/v1 (%s; %s)\n", model.c_str(), http.url().c_str(),
              opt.source.adapters.empty() ? "the pretrained model" : opt.source.adapters.c_str(),
              opt.source.connect.empty() ? "backbone in this process"
                                         : ("backbone on " + opt.source.connect).c_str());
  std::fflush(stdout);
  write_port_file(opt.port_file, http.port());
  wait_for_signal();
}

}  // namespace

void add_serve(CLI::App& app) {
  auto opt = std::make_shared<ServeOptions>();
  auto* cmd = app.add_subcommand(
      "serve", "Serve a run's tuned model over OpenAI's HTTP API (completions, chat, models)");
  opt->run.add_to(*cmd);
  opt->network.add_to(*cmd);
  opt->metrics.add_to(*cmd);
  cmd->add_option("--listen", opt->listen, "HOST:PORT of the HTTP API (port 0: any free port)")
      ->capture_default_str();
  opt->source.add_to(*cmd);
  cmd->add_option("--model-name", opt->model_name,
                  "the model id clients name (default: the run's run.name)");
  cmd->add_option("--api-key-file", opt->api_key_file,
                  "require \"Authorization: Bearer KEY\" with the key on this file's first line "
                  "(or set GTUNE_API_KEY); needed beyond loopback")
      ->check(CLI::ExistingFile);
  cmd->add_option("--port-file", opt->port_file, "write the bound port here once listening");
  cmd->add_option("--threads", opt->threads,
                  "requests handled at once (generations still take turns on the one model)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  cmd->add_option("--timeout", opt->timeout_seconds,
                  "seconds a client gets to send its request and to take each streamed piece")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  cmd->callback([opt] { run_serve(*opt); });
}

}  // namespace gt::cli
