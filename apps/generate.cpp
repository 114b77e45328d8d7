// gtune generate: text from the tuned model (issue 18). Loads the run's model with its adapter
// structure (LoRA or full), plugs in the adapters a run wrote (--adapters; without it, the
// pretrained model) and generates after each prompt with KV caches, printing the text as it
// comes. With --connect the backbone is a server node's: this process holds the adapters only,
// sends a1 (quantized as in training) and keeps its adapters' cache; the server keeps the
// backbone's.
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "apps/commands.hpp"
#include "apps/network_options.hpp"
#include "apps/run_options.hpp"
#include "apps/text_generator.hpp"
#include "common/error.hpp"

namespace gt::cli {
namespace {

struct GenerateOptions {
  RunOptions run;
  NetworkOptions network;
  ModelSource source;
  std::vector<std::string> prompts;
  std::string prompts_file;
  SamplingOptions sampling;
  std::vector<std::string> stops;
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

void run_generate(const GenerateOptions& opt) {
  auto prompts = opt.prompts;
  if (!opt.prompts_file.empty()) {
    const auto more = read_prompts(opt.prompts_file);
    prompts.insert(prompts.end(), more.begin(), more.end());
  }
  if (prompts.empty()) throw Error("generate: give --prompt TEXT or --prompts FILE.jsonl");
  TextGenerator generator(opt.run.load(), opt.source.adapters, opt.source.connect, opt.network);
  for (const auto& prompt : prompts) {
    if (!opt.json) std::printf("%s", prompt.c_str());
    const auto show = [&](const std::string& piece) {
      if (opt.json) return true;
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return true;
    };
    Completion c;
    try {
      c = generator.complete(prompt, opt.sampling, opt.stops, show);
    } catch (const BadPrompt& e) {
      throw Error(std::string("generate: ") + e.what());
    }
    if (opt.json) {
      nlohmann::json j = {{"prompt", prompt},
                          {"text", c.text},
                          {"tokens", c.completion_tokens},
                          {"finish_reason", c.finish_reason}};
      if (c.wire_bytes > 0) j["wire_bytes"] = c.wire_bytes;
      std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::printf("\n[%s, %lld tokens]\n", c.finish_reason.c_str(),
                  static_cast<long long>(c.completion_tokens));
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
  opt->source.add_to(*cmd);
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
  cmd->add_option("--stop", opt->stops,
                  "end the text before this string (repeat for several; not part of the output)");
  cmd->add_option("--seed", opt->sampling.seed, "sampling seed")->capture_default_str();
  cmd->add_flag("--json", opt->json, "one JSON line per prompt instead of streamed text");
  cmd->callback([opt] { run_generate(*opt); });
}

}  // namespace gt::cli
