// See attacker_side.hpp.
#include "apps/attacker_side.hpp"

#include <spdlog/spdlog.h>

#include <fstream>

#include "apps/parties.hpp"
#include "common/error.hpp"
#include "data/default_task.hpp"
#include "data/lm_dataset.hpp"
#include "models/lora.hpp"
#include "models/tokenizer.hpp"
#include "privacy/attacks/embedding_inversion.hpp"
#include "privacy/attacks/gradient_matching.hpp"
#include "privacy/attacks/learned_inversion.hpp"

namespace gt::cli {
namespace {

// Public text the attacker may hold: a file, or the WordNet definitions of the
// synsets the clients' training split leaves out (same hash split as the data).
std::vector<std::string> public_texts(const RunConfig& cfg) {
  const auto& path = cfg.attacker.public_data;
  if (path.empty())
    return wordnet_definitions(cfg.data.wordnet_dir, cfg.data.valid_fraction, 1, 0).valid;
  std::vector<std::string> texts;
  std::ifstream in(path);
  if (!in) throw error_at(path, "cannot read the attacker's public text (attacker.public_data)");
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) texts.push_back(line);
  if (texts.empty()) throw error_at(path, "no text (one passage per line expected)");
  return texts;
}

}  // namespace

std::shared_ptr<Eavesdropper> make_attacker_side(const RunConfig& cfg, bool show_progress) {
  DecoderLM model = load_decoder(cfg.model.path, parse_dtype(cfg.model.dtype));
  set_trainable(*model, TrainMode::frozen);
  auto pretrained = split_model(model, {cfg.model.n_in, cfg.model.n_out});
  auto tokenizer = Tokenizer::from_dir(cfg.model.path);
  std::unique_ptr<LmDataset> text;
  std::vector<std::unique_ptr<Attack>> attacks;
  for (const auto& name : cfg.attacker.attacks) {
    if (name == "embedding_inversion") {
      attacks.push_back(std::make_unique<EmbeddingInversion>(pretrained));
    } else if (name == "gradient_matching") {
      attacks.push_back(std::make_unique<GradientMatching>(pretrained));
    } else {  // learned_inversion_<tap>
      if (!text)
        text = std::make_unique<LmDataset>(public_texts(cfg), tokenizer, cfg.training.max_len);
      LearnedInversionOptions o;
      o.tap = parse_tap(name.substr(name.rfind('_') + 1));
      o.steps = cfg.attacker.fit_steps;
      o.seed = cfg.training.seed;
      auto attack = std::make_unique<LearnedInversion>(o);
      std::unique_ptr<Progress> progress;
      if (show_progress) progress = std::make_unique<Progress>("attacker fits " + name, o.steps);
      const double loss = attack->fit(pretrained, *text, progress.get());
      spdlog::info("attacker: {} trained on {} public texts (final loss {:.3f})", name,
                   text->size(), loss);
      attacks.push_back(std::move(attack));
    }
  }
  EavesdropPlan plan{cfg.attacker.every, cfg.attacker.max_batches};
  return std::make_shared<Eavesdropper>(std::move(attacks), plan, tokenizer);
}

}  // namespace gt::cli
