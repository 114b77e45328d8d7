// The embedded default task: WordNet definitions as short texts
// ("abandon (verb): forsake, leave behind"), with a deterministic split.
#pragma once

#include <string>
#include <vector>

namespace gt {

struct TextSplit {
  std::vector<std::string> train, valid;
};

// Every synset's first lemma with its definition, across nouns, verbs, adjectives
// and adverbs. A synset goes to `valid` when a hash of its offset and part of
// speech falls in the valid fraction, so the split never depends on ordering.
// At most max_train / max_valid texts are kept (0 = all), chosen by the same hash.
TextSplit wordnet_definitions(const std::string& wordnet_dir, double valid_fraction,
                              size_t max_train, size_t max_valid);

}  // namespace gt
