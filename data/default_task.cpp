// WordNet definitions as a language-modelling task.
#include "data/default_task.hpp"

#include <algorithm>
#include <cstdint>

#include "common/stable_hash.hpp"
#include "data/wordnet.hpp"

namespace gt {
TextSplit wordnet_definitions(const std::string& dir, double valid_fraction, size_t max_train,
                              size_t max_valid) {
  struct Keyed {
    uint64_t key;
    std::string text;
  };
  std::vector<Keyed> train, valid;
  for (const char* part : {"noun", "verb", "adj", "adv"})
    for (const auto& s : read_wordnet(dir, part)) {
      auto def = gloss_definition(s.gloss);
      if (s.words.empty() || def.empty()) continue;
      const auto key = stable_hash(s.offset + s.pos);
      const bool is_valid = double(key % 1000000) / 1e6 < valid_fraction;
      (is_valid ? valid : train)
          .push_back({stable_hash(std::to_string(key)),
                      s.words[0] + " (" + part_of_speech_name(s.pos) + "): " + def});
    }
  auto take = [](std::vector<Keyed>& xs, size_t max) {
    std::sort(xs.begin(), xs.end(), [](const Keyed& a, const Keyed& b) { return a.key < b.key; });
    if (max > 0 && xs.size() > max) xs.resize(max);
    std::vector<std::string> out;
    for (auto& x : xs) out.push_back(std::move(x.text));
    return out;
  };
  return {take(train, max_train), take(valid, max_valid)};
}

}  // namespace gt
