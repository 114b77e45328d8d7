// See generation_eval.hpp.
#include "apps/generation_eval.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "common/error.hpp"
#include "data/default_task.hpp"
#include "models/device.hpp"
#include "models/generation.hpp"
#include "models/tokenizer.hpp"
#include "privacy/attacks/scoring.hpp"

namespace gt::cli {
namespace {

constexpr int64_t kMaxTokens = 32;  // WordNet definitions are short
constexpr int64_t kBatch = 16;
constexpr size_t kSamplesShown = 3;

struct DefinitionItem {
  std::string prompt, reference;  // "abandon (verb):", "forsake, leave behind"
};

// Held-out definitions ("abandon (verb): forsake, leave behind"), cut after the part of speech.
std::vector<DefinitionItem> held_out_items(const RunConfig& cfg) {
  const auto n = static_cast<size_t>(cfg.evaluation.generation_examples);
  const auto split = wordnet_definitions(cfg.data.wordnet_dir, cfg.data.valid_fraction, 1, n);
  std::vector<DefinitionItem> out;
  for (const auto& text : split.valid) {
    const auto cut = text.find("): ");
    if (cut == std::string::npos) continue;
    out.push_back({text.substr(0, cut + 2), text.substr(cut + 3)});
  }
  if (out.empty())
    throw Error("evaluation.generation_examples: no held-out WordNet definitions under " +
                cfg.data.wordnet_dir +
                " (data.valid_fraction = " + std::to_string(cfg.data.valid_fraction) + ")");
  return out;
}

// Greedy text after each prompt, up to the first newline, EOS or kMaxTokens tokens.
std::vector<std::string> generate_texts(Segments& seg, const Tokenizer& tokenizer,
                                        const std::vector<DefinitionItem>& items) {
  torch::NoGradGuard no_grad;
  SamplingOptions o;
  o.max_tokens = kMaxTokens;
  if (tokenizer.special().eos >= 0) o.stop_tokens.push_back(tokenizer.special().eos);
  std::vector<std::string> out;
  for (size_t begin = 0; begin < items.size(); begin += kBatch) {
    const auto end = std::min(items.size(), begin + size_t(kBatch));
    std::vector<std::vector<int64_t>> rows;
    size_t width = 0;
    for (size_t i = begin; i < end; ++i) {
      std::vector<int64_t> ids;
      if (tokenizer.special().bos >= 0) ids.push_back(tokenizer.special().bos);
      const auto text = tokenizer.encode(items[i].prompt);
      ids.insert(ids.end(), text.begin(), text.end());
      width = std::max(width, ids.size());
      rows.push_back(std::move(ids));
    }
    // Left padding: every row's new tokens follow its prompt directly.
    auto ids = torch::zeros({int64_t(rows.size()), int64_t(width)}, torch::kLong);
    auto mask = torch::zeros_like(ids);
    for (size_t r = 0; r < rows.size(); ++r) {
      const auto pad = int64_t(width - rows[r].size());
      for (size_t t = 0; t < rows[r].size(); ++t) {
        ids[int64_t(r)][pad + int64_t(t)] = rows[r][t];
        mask[int64_t(r)][pad + int64_t(t)] = 1;
      }
    }
    const auto g = generate(seg, ids.to(seg.device()), mask.to(seg.device()), o);
    for (const auto& tokens : g.tokens) {
      auto text = tokenizer.decode(tokens);
      text = text.substr(0, text.find('\n'));
      out.push_back(text);
    }
  }
  return out;
}

// Mean ROUGE-L and a percentile bootstrap 95% interval over the items (fixed draws).
nlohmann::json score(const std::vector<DefinitionItem>& items,
                     const std::vector<std::string>& texts) {
  std::vector<double> f1;
  for (size_t i = 0; i < items.size(); ++i)
    f1.push_back(rouge_l_f1(lowercase_words(texts[i]), lowercase_words(items[i].reference)));
  const auto mean = [](const std::vector<double>& xs) {
    double s = 0;
    for (double x : xs) s += x;
    return xs.empty() ? 0.0 : s / double(xs.size());
  };
  std::mt19937_64 rng(0);
  std::uniform_int_distribution<size_t> pick(0, f1.size() - 1);
  std::vector<double> means, draw(f1.size());
  for (int r = 0; r < 1000; ++r) {
    for (auto& x : draw) x = f1[pick(rng)];
    means.push_back(mean(draw));
  }
  std::sort(means.begin(), means.end());
  auto samples = nlohmann::json::array();
  for (size_t i = 0; i < std::min(kSamplesShown, items.size()); ++i)
    samples.push_back(
        {{"prompt", items[i].prompt}, {"reference", items[i].reference}, {"text", texts[i]}});
  return {{"rouge_l", mean(f1)}, {"ci95", {means[25], means[974]}}, {"samples", samples}};
}

}  // namespace

nlohmann::json evaluate_generation(const RunConfig& cfg, const std::vector<ClientSide>& clients,
                                   bool show_progress) {
  if (cfg.evaluation.generation_examples <= 0) return nullptr;
  const auto items = held_out_items(cfg);
  if (show_progress)
    spdlog::info("evaluation: generating the definitions of {} held-out words", items.size());
  auto tokenizer = Tokenizer::from_dir(cfg.model.path);
  auto pretrained_model = load_decoder(cfg.model.path, parse_dtype(cfg.model.dtype));
  auto pretrained = split_model(pretrained_model, {cfg.model.n_in, cfg.model.n_out});
  to_device(pretrained, parse_device(cfg.run.device));
  set_compute_options(pretrained, cfg.run.packed_batches, cfg.run.label_only_logits);
  nlohmann::json out = {{"examples", items.size()},
                        {"max_tokens", kMaxTokens},
                        {"pretrained", score(items, generate_texts(pretrained, tokenizer, items))},
                        {"tuned", nlohmann::json::array()}};
  for (const auto& c : clients) {
    auto seg = c.seg();
    auto j = score(items, generate_texts(seg, tokenizer, items));
    j["client"] = c.name;
    out["tuned"].push_back(j);
  }
  return out;
}

}  // namespace gt::cli
