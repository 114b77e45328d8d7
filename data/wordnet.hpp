// Reader for the WordNet 3.0 database files (Debian `wordnet-base`,
// /usr/share/wordnet/data.{noun,verb,adj,adv}): real lexicographers' text.
#pragma once

#include <string>
#include <vector>

namespace gt {

struct WordnetPointer {
  std::string symbol;  // "@" hypernym, "!" antonym, "&" similar, ...
  std::string target;  // synset offset
  char pos;            // n v a s r
};

struct Synset {
  std::string offset;
  char pos;                        // n v a s r
  std::vector<std::string> words;  // lemma forms, '_' replaced by ' '
  std::vector<WordnetPointer> pointers;
  std::string gloss;  // definition and quoted examples, as in the file
};

inline const char* kDefaultWordnetDir = "/usr/share/wordnet";

// Reads dir/data.<part> (part: noun, verb, adj, adv). Throws gt::Error naming
// the file and line for anything malformed, or the package when it is missing.
std::vector<Synset> read_wordnet(const std::string& dir, const std::string& part);

// "noun", "verb", "adjective" (a and s) or "adverb".
const char* part_of_speech_name(char pos);

// The definition part of a gloss (before the first "; \"" example).
std::string gloss_definition(const std::string& gloss);

}  // namespace gt
