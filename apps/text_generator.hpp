// A run's tuned model as text in, text out (issue 18), for gtune generate and gtune serve: the
// model with its adapter structure, the adapters a run wrote (or none: the pretrained model),
// the tokenizer, and the backbone here or on a server node (--connect).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "apps/network_options.hpp"
#include "common/error.hpp"
#include "config/run_config.hpp"
#include "models/decoder.hpp"
#include "models/generation.hpp"
#include "models/segments.hpp"
#include "models/tokenizer.hpp"
#include "monitoring/metrics.hpp"

namespace gt::cli {

class RemoteBackbone;

// Where the model comes from, as gtune generate and gtune serve take it: --adapters, --connect.
struct ModelSource {
  std::string adapters;  // a run's adapters.safetensors; "" = the pretrained model
  std::string connect;   // a server node's HOST:PORT; "" = the backbone in this process
  void add_to(CLI::App& cmd);
};

// A request the model cannot take (e.g. a prompt longer than its positions): the caller's
// fault, not the generator's.
struct BadPrompt : Error {
  using Error::Error;
};

struct Completion {
  std::string text;  // cut before a stop string
  // "stop" (EOS or a stop string), "length" (max_tokens) or "cancelled" (the reader went away)
  std::string finish_reason;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  int64_t wire_bytes = 0;  // generation messages to and from the server node, both ways
  double seconds_to_first_token = 0,
         seconds = 0;  // both from the call, its wait for the model included
};

// Called with each piece of final text as it is generated; false stops the generation (the
// reader went away).
using TextCallback = std::function<bool(const std::string& piece)>;

class TextGenerator {
 public:
  // `connect`: a server node's HOST:PORT, or "" for the backbone in this process.
  // `metrics` (may be null) counts the bytes to and from the server node.
  TextGenerator(const RunConfig& cfg, const std::string& adapters, const std::string& connect,
                const NetworkOptions& network, std::shared_ptr<Metrics> metrics = {});
  ~TextGenerator();

  // Generates after `prompt` (BOS first where the tokenizer has one) until EOS (unless
  // ignore_eos), a stop string or sampling.max_tokens. One generation at a time: a second
  // caller waits its turn.
  Completion complete(const std::string& prompt, SamplingOptions sampling,
                      const std::vector<std::string>& stops, const TextCallback& on_text = {},
                      bool ignore_eos = false);

  // The prompt's tokens as complete() feeds them (BOS included).
  int64_t prompt_length(const std::string& prompt) const;
  const Tokenizer& tokenizer() const { return tokenizer_; }
  int64_t max_positions() const { return seg_.cfg.max_positions; }

 private:
  std::vector<int64_t> prompt_ids(const std::string& prompt) const;

  DecoderLM model_{nullptr};
  Segments seg_;
  Tokenizer tokenizer_;
  std::unique_ptr<RemoteBackbone> server_;
  std::mutex busy_;  // one model, one set of caches
};

}  // namespace gt::cli
