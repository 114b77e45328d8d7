// See attacker_side.hpp.
#include "apps/attacker_side.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

#include "apps/parties.hpp"
#include "apps/shadow_client.hpp"
#include "common/error.hpp"
#include "common/stable_hash.hpp"
#include "data/gcide.hpp"
#include "data/lm_dataset.hpp"
#include "models/lora.hpp"
#include "models/tokenizer.hpp"
#include "privacy/attacks/embedding_inversion.hpp"
#include "privacy/attacks/gradient_matching.hpp"
#include "privacy/attacks/learned_inversion.hpp"
#include "privacy/privacy_objective.hpp"

namespace gt::cli {
namespace {

// Public text the attacker may hold: a file, or by default GCIDE (the dictionary the embedded
// model was pretrained on; Debian dict-gcide), 20000 passages of it, in pairs with a line break
// between, as documents have them: gcide_passages strips every line break, and the newline is
// the commonest token a prompt format adds (without it the attacker never read one back).
std::vector<std::string> public_texts(const RunConfig& cfg) {
  const auto& path = cfg.attacker.public_data;
  if (path.empty()) {
    const auto passages = gcide_passages(kGcideDictPath, 20000);
    std::vector<std::string> texts;
    for (size_t i = 0; i + 1 < passages.size(); i += 2)
      texts.push_back(passages[i] + "\n" + passages[i + 1]);
    return texts;
  }
  std::vector<std::string> texts;
  std::ifstream in(path);
  if (!in) throw error_at(path, "cannot read the attacker's public text (attacker.public_data)");
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) texts.push_back(line);
  if (texts.empty()) throw error_at(path, "no text (one passage per line expected)");
  return texts;
}

// The cache file of one learned inversion: every input of its fit goes into the name, so a
// changed setting never picks up a stale model.
std::string cache_path(const RunConfig& cfg, const LearnedInversionOptions& o,
                       const std::vector<std::string>& texts, const std::string& extra = "") {
  std::string key = "v1|" + extra + "|" +
                    std::filesystem::weakly_canonical(cfg.model.path).string() + "|" +
                    cfg.model.dtype + "|" + std::to_string(cfg.model.n_in) + "|" +
                    std::to_string(cfg.model.n_out) + "|" + std::to_string(cfg.training.max_len);
  for (const auto& f : std::filesystem::directory_iterator(cfg.model.path))
    if (f.path().extension() == ".safetensors")  // a changed checkpoint changes its size
      key += "|" + f.path().filename().string() + ":" + std::to_string(f.file_size());
  key += "|" + std::string(to_string(o.tap)) + "|" + std::to_string(o.steps) + "|" +
         std::to_string(o.batch) + "|" + std::to_string(o.lr) + "|" + std::to_string(o.seed) + "|" +
         std::to_string(o.hidden) + "|" + std::to_string(o.context) + "|" +
         std::to_string(int(o.wire)) + "|" + std::to_string(o.restrict_vocabulary) +
         std::to_string(o.embedding_head) + "|" + std::to_string(o.random_rows);
  uint64_t text_hash = 0;
  for (const auto& t : texts) text_hash = stable_hash(std::to_string(text_hash) + t);
  char name[64];
  std::snprintf(
      name, sizeof name, "-%016llx.pt",
      static_cast<unsigned long long>(stable_hash(key + "|" + std::to_string(text_hash))));
  return cfg.attacker.cache_dir + "/" +
         (o.name.empty() ? "learned_inversion_" + std::string(to_string(o.tap)) : o.name) + name;
}

// A model from the cache, or a fresh fit (then stored there).
// `make_model` gives the segments to fit through (the pretrained model, or an adaptive
// attacker's shadow); `extra` names what else the fit depends on, for the cache.
void fit_or_load(LearnedInversion& attack, const RunConfig& cfg, const Segments& pretrained,
                 const std::function<std::vector<Segments>()>& make_model, const std::string& extra,
                 const std::vector<std::string>& texts, const LmDataset& text, bool show_progress) {
  const auto name = attack.name();
  std::string cached;
  if (!cfg.attacker.cache_dir.empty()) {
    cached = cache_path(cfg, attack.options(), texts, extra);
    if (std::filesystem::exists(cached)) {
      try {
        attack.load(pretrained, cached);
        spdlog::info("attacker: {} from {}", name, cached);
        return;
      } catch (const Error& e) {
        spdlog::warn("attacker: {}; fitting again", e.what());
      }
    }
  }
  std::unique_ptr<Progress> progress;
  if (show_progress)
    progress = std::make_unique<Progress>("attacker fits " + name, attack.options().steps);
  const double loss = attack.fit(make_model(), text, progress.get());
  spdlog::info("attacker: {} trained on {} public texts (final loss {:.3f})", name, text.size(),
               loss);
  if (cached.empty()) return;
  std::filesystem::create_directories(cfg.attacker.cache_dir);
  const auto tmp = cached + ".tmp" + std::to_string(getpid());
  attack.save(tmp);
  std::filesystem::rename(tmp, cached);  // concurrent runs never read a half-written model
}

// Every setting the shadow's privatization depends on, for the cache key.
std::string shadow_fingerprint(const RunConfig& cfg) {
  std::string out =
      "shadow|" + std::to_string(kPrivacyObjectiveRecipe) + "|" +
      std::to_string(cfg.strategy.dcor_lambda) + "|" +
      std::to_string(cfg.privacy.adversary_weight) + "|" +
      std::to_string(cfg.privacy.adversary_lr) + "|" +
      std::to_string(cfg.privacy.adversary_tokens) + "|" +
      std::to_string(cfg.privacy.adversary_fit_steps) + "|" +
      std::to_string(cfg.privacy.adversary_decoy) + "|" + cfg.strategy.backward + "|" +
      std::to_string(cfg.privacy.dcor_tokens) + "|" + cfg.model.train + "|" +
      std::to_string(cfg.model.lora_rank) + "|" + cfg.optimizer.name + "|" +
      std::to_string(cfg.optimizer.lr) + "|" + std::to_string(cfg.optimizer.weight_decay) + "|" +
      std::to_string(cfg.optimizer.grad_clip) + "|" + std::to_string(cfg.training.batch) + "|" +
      std::to_string(cfg.data.train_examples) + "|" + std::to_string(cfg.offsite.keep_every) + "|" +
      std::to_string(cfg.offsite.distill_steps) + "|" + std::to_string(cfg.privacy.token_clusters) +
      "|" + std::to_string(cfg.privacy.privatize_output);
  for (const auto& p : run_plan(cfg))
    out += "|" + std::string(to_string(p.strategy)) + ":" + std::to_string(p.steps) + ":" +
           std::to_string(p.epochs);
  return out;
}

}  // namespace

std::shared_ptr<Eavesdropper> make_attacker_side(const RunConfig& cfg, bool show_progress) {
  DecoderLM model = load_decoder(cfg.model.path, parse_dtype(cfg.model.dtype));
  set_trainable(*model, TrainMode::frozen);
  auto pretrained = split_model(model, {cfg.model.n_in, cfg.model.n_out});
  auto tokenizer = Tokenizer::from_dir(cfg.model.path);
  std::unique_ptr<LmDataset> text;
  std::vector<std::string> texts;
  std::vector<std::unique_ptr<Attack>> attacks;
  for (const auto& name : cfg.attacker.attacks) {
    if (name == "membership_inference") {
      continue;  // on returned adapters, after the run (apps/run_audit.hpp)
    } else if (name == "embedding_inversion") {
      attacks.push_back(std::make_unique<EmbeddingInversion>(pretrained));
    } else if (name == "gradient_matching") {
      attacks.push_back(std::make_unique<GradientMatching>(pretrained));
    } else if (name == "gradient_matching_g2" || name == "gradient_matching_a1") {
      // One term alone: the backward one for an attacker that distrusts a1 (a privatized input
      // adapter's a1 pulls the dummy towards whatever the pretrained adapter maps there), the
      // forward one where no g2 is sent.
      GradientMatchingOptions o;
      (name == "gradient_matching_g2" ? o.forward_weight : o.backward_weight) = 0;
      attacks.push_back(std::make_unique<GradientMatching>(pretrained, o));
    } else {  // learned_inversion_<tap>
      if (!text) {
        texts = public_texts(cfg);
        text = std::make_unique<LmDataset>(texts, tokenizer, cfg.training.max_len);
      }
      LearnedInversionOptions o;
      o.tap = parse_tap(name.substr(name.rfind('_') + 1));
      o.steps = cfg.attacker.fit_steps;
      o.seed = cfg.training.seed;
      std::function<std::vector<Segments>()> through = [&] {
        return std::vector<Segments>{pretrained};
      };
      std::string extra;
      if (name.rfind("adaptive_", 0) == 0) {
        // Knows the defence (every setting of the run), not the client's seed: its own.
        o.name = name;
        through = [&cfg, &text, show_progress] {
          std::vector<Segments> shadows;
          for (int64_t k = 0; k < cfg.attacker.shadows; ++k) {
            DecoderLM shadow{nullptr};
            shadows.push_back(shadow_adapters(cfg, *text, cfg.training.seed + 1 + uint64_t(k),
                                              shadow, show_progress));
          }
          return shadows;
        };
        extra = shadow_fingerprint(cfg);
        if (cfg.attacker.shadows > 1) extra += "|shadows " + std::to_string(cfg.attacker.shadows);
      }
      auto attack = std::make_unique<LearnedInversion>(o);
      fit_or_load(*attack, cfg, pretrained, through, extra, texts, *text, show_progress);
      attacks.push_back(std::move(attack));
    }
  }
  EavesdropPlan plan{cfg.attacker.every, cfg.attacker.max_batches};
  return std::make_shared<Eavesdropper>(std::move(attacks), plan, tokenizer);
}

std::string ask_report(caf::actor_system& sys, const attacker_actor& attacker) {
  caf::scoped_actor self{sys};
  std::string out;
  self->request(attacker, caf::infinite, report_atom_v)
      .receive([&](std::string& json) { out = std::move(json); },
               [&](caf::error& err) { spdlog::warn("attacker: no report: {}", describe(err)); });
  return out;
}

}  // namespace gt::cli
