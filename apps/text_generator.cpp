// See text_generator.hpp.
#include "apps/text_generator.hpp"

#include <chrono>
#include <optional>

#include "apps/parties.hpp"
#include "apps/remote_backbone.hpp"
#include "models/adapter_io.hpp"
#include "models/text_stream.hpp"

namespace gt::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

void ModelSource::add_to(CLI::App& cmd) {
  cmd.add_option("--connect", connect,
                 "a server node's HOST:PORT: the backbone runs there (this process holds the "
                 "adapters only)");
  cmd.add_option("--adapters", adapters,
                 "adapters.safetensors a run wrote (without it: the pretrained model)")
      ->check(CLI::ExistingFile);
}

TextGenerator::TextGenerator(const RunConfig& cfg, const std::string& adapters,
                             const std::string& connect, const NetworkOptions& network,
                             std::shared_ptr<Metrics> metrics)
    : seg_(load_adapter_model(cfg, model_, /*hold_backbone=*/connect.empty())),
      tokenizer_(Tokenizer::from_dir(cfg.model.path)) {
  if (!connect.empty())
    server_ = std::make_unique<RemoteBackbone>(connect, network, cfg, seg_, std::move(metrics));
  coarsen_client_inputs(cfg, seg_);  // as the client computed (privacy.token_clusters)
  if (!adapters.empty()) load_adapters(adapters, seg_);
}

TextGenerator::~TextGenerator() = default;

std::vector<int64_t> TextGenerator::prompt_ids(const std::string& prompt) const {
  std::vector<int64_t> ids;
  if (tokenizer_.special().bos >= 0) ids.push_back(tokenizer_.special().bos);
  const auto text = tokenizer_.encode(prompt);
  ids.insert(ids.end(), text.begin(), text.end());
  return ids;
}

int64_t TextGenerator::prompt_length(const std::string& prompt) const {
  return static_cast<int64_t>(prompt_ids(prompt).size());
}

Completion TextGenerator::complete(const std::string& prompt, SamplingOptions sampling,
                                   const std::vector<std::string>& stops,
                                   const TextCallback& on_text, bool ignore_eos) {
  const auto t0 = Clock::now();  // before the wait for the model: clients feel that wait too
  std::lock_guard<std::mutex> lock(busy_);
  const auto ids = prompt_ids(prompt);
  const auto n = static_cast<int64_t>(ids.size());
  if (n + sampling.max_tokens > max_positions())
    throw BadPrompt("the prompt (" + std::to_string(n) + " tokens) and max_tokens " +
                    std::to_string(sampling.max_tokens) + " pass the model's " +
                    std::to_string(max_positions()) + " positions");
  if (tokenizer_.special().eos >= 0 && !ignore_eos)
    sampling.stop_tokens.push_back(tokenizer_.special().eos);

  Completion out;
  out.prompt_tokens = n;
  TextStream stream(tokenizer_, stops);
  bool reader_gone = false;
  const auto on_token = [&](int64_t, int64_t token) {
    if (out.seconds_to_first_token == 0) out.seconds_to_first_token = seconds_since(t0);
    const bool go_on = stream.push(token);
    const auto piece = stream.take();
    if (on_text && !piece.empty() && !on_text(piece)) reader_gone = true;
    return go_on && !reader_gone;
  };
  const auto input = torch::tensor(ids).view({1, n});
  const auto mask = torch::ones_like(input);
  Generation g;
  if (server_) {
    const auto bytes_before = server_->wire_bytes();
    auto remote = server_->generation();
    const BackboneStep backbone = [&](const torch::Tensor& a1, const torch::Tensor& m) {
      return remote.step(a1, m);
    };
    try {
      g = generate(seg_, backbone, input, mask, sampling, on_token);
    } catch (...) {
      try {
        remote.end();  // the server drops this generation's cache now, not at the session's end
      } catch (...) {
      }
      throw;
    }
    remote.end();
    out.wire_bytes = server_->wire_bytes() - bytes_before;
  } else {
    g = generate(seg_, input, mask, sampling, on_token);
  }
  const auto rest = stream.take(/*finished=*/true);
  if (on_text && !rest.empty() && !reader_gone) on_text(rest);
  out.text = stream.text();
  out.finish_reason = reader_gone ? "cancelled" : g.finish[0];
  out.completion_tokens = static_cast<int64_t>(g.tokens[0].size());
  out.seconds = seconds_since(t0);
  return out;
}

}  // namespace gt::cli
