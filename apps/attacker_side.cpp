// See attacker_side.hpp.
#include "apps/attacker_side.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "apps/parties.hpp"
#include "common/error.hpp"
#include "common/stable_hash.hpp"
#include "data/gcide.hpp"
#include "data/lm_dataset.hpp"
#include "models/lora.hpp"
#include "models/tokenizer.hpp"
#include "privacy/attacks/embedding_inversion.hpp"
#include "privacy/attacks/gradient_matching.hpp"
#include "privacy/attacks/learned_inversion.hpp"

namespace gt::cli {
namespace {

// Public text the attacker may hold: a file, or by default GCIDE (the dictionary the embedded
// model was pretrained on; Debian dict-gcide), 20000 passages of it.
std::vector<std::string> public_texts(const RunConfig& cfg) {
  const auto& path = cfg.attacker.public_data;
  if (path.empty()) return gcide_passages(kGcideDictPath, 20000);
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
                       const std::vector<std::string>& texts) {
  std::string key = "v1|" + std::filesystem::weakly_canonical(cfg.model.path).string() + "|" +
                    cfg.model.dtype + "|" + std::to_string(cfg.model.n_in) + "|" +
                    std::to_string(cfg.model.n_out) + "|" + std::to_string(cfg.training.max_len);
  for (const auto& f : std::filesystem::directory_iterator(cfg.model.path))
    if (f.path().extension() == ".safetensors")  // a changed checkpoint changes its size
      key += "|" + f.path().filename().string() + ":" + std::to_string(f.file_size());
  key += "|" + std::string(to_string(o.tap)) + "|" + std::to_string(o.steps) + "|" +
         std::to_string(o.batch) + "|" + std::to_string(o.lr) + "|" + std::to_string(o.seed) + "|" +
         std::to_string(o.hidden) + "|" + std::to_string(o.context) + "|" +
         std::to_string(int(o.wire)) + "|" + std::to_string(o.restrict_vocabulary) +
         std::to_string(o.embedding_head);
  uint64_t text_hash = 0;
  for (const auto& t : texts) text_hash = stable_hash(std::to_string(text_hash) + t);
  char name[64];
  std::snprintf(
      name, sizeof name, "-%016llx.pt",
      static_cast<unsigned long long>(stable_hash(key + "|" + std::to_string(text_hash))));
  return cfg.attacker.cache_dir + "/learned_inversion_" + to_string(o.tap) + name;
}

// A model from the cache, or a fresh fit (then stored there).
void fit_or_load(LearnedInversion& attack, const RunConfig& cfg, const Segments& pretrained,
                 const std::vector<std::string>& texts, const LmDataset& text, bool show_progress) {
  const auto name = attack.name();
  std::string cached;
  if (!cfg.attacker.cache_dir.empty()) {
    cached = cache_path(cfg, attack.options(), texts);
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
  const double loss = attack.fit(pretrained, text, progress.get());
  spdlog::info("attacker: {} trained on {} public texts (final loss {:.3f})", name, text.size(),
               loss);
  if (cached.empty()) return;
  std::filesystem::create_directories(cfg.attacker.cache_dir);
  const auto tmp = cached + ".tmp" + std::to_string(getpid());
  attack.save(tmp);
  std::filesystem::rename(tmp, cached);  // concurrent runs never read a half-written model
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
    } else {  // learned_inversion_<tap>
      if (!text) {
        texts = public_texts(cfg);
        text = std::make_unique<LmDataset>(texts, tokenizer, cfg.training.max_len);
      }
      LearnedInversionOptions o;
      o.tap = parse_tap(name.substr(name.rfind('_') + 1));
      o.steps = cfg.attacker.fit_steps;
      o.seed = cfg.training.seed;
      auto attack = std::make_unique<LearnedInversion>(o);
      fit_or_load(*attack, cfg, pretrained, texts, *text, show_progress);
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
