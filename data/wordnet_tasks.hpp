// Embedded evaluation tasks: 4-way multiple choice built from WordNet (Debian wordnet-base),
// scored with score_mc (data/multiple_choice.hpp).
#pragma once

#include <string>
#include <vector>

#include "data/multiple_choice.hpp"

namespace gt {

// Tasks (one item per synset that supports it; the synset is the item's id):
//   definition_to_word  "Which word means: <definition>?\nAnswer:"  -> " <first lemma>"
//                       (skipped where the definition itself contains the lemma)
//   word_to_hypernym    "A dog is a kind of"                         -> " canine"
//   adjective_antonym   "The opposite of \"good\" is"                -> " bad"; satellite
//                       adjectives ("soggy") take their head's antonym (WordNet's indirect
//                       antonyms)
//   example_cloze       "<gloss example with the lemma as ___>\nThe missing word is" -> " <lemma>"
//                       (the first synset word, in order, found as a whole word in an example)
// The hypernym and antonym contexts are exactly wordnet_instructions' prompts.
//
// Distractors (3 per item) are picked by stable hash from a pool of the same kind of word:
// same part of speech (definition, cloze), hypernym lemmas (hypernym), head adjectives with an
// antonym (antonym). They are distinct (case-insensitively), never a word of the item's synset,
// and never a right answer for another sense of the cue word: no hypernym (at any depth) of any
// noun sense, no antonym (or the antonym's satellites) of any adjective sense. Definition and
// cloze distractors also have no sense near the item's synset (its hypernym, a hyponym, a
// sibling under the same hypernym; for satellites, the head adjective). They are drawn
// near the answer first: same capitalization, SemCor frequency within a factor of ~4
// (cntlist.rev, optional), length within max(2, len/4) bytes; each condition relaxes in turn
// where too few words qualify. The answer's position is hashed too.
//
// Splits use wordnet_instructions' key: u = (stable_hash(offset + pos) % 1e6) / 1e6, pos as in
// the file ('s' for satellites). test: u < 0.05; valid: 0.05 <= u < 0.10; train: the rest. So
// test is held out of the instruction data for any valid_fraction >= 0.05 (the default), valid
// too for valid_fraction >= 0.10, and a synset is on the same side in every task. An item whose
// (context, answer) already occurs in train (or, for test, in valid) is dropped, so held-out
// items never repeat training ones. Note that antonymy is symmetric: "good" -> "bad" in test
// usually has "bad" -> "good" in train. Each split is in hash order; max_per_split > 0 keeps
// that many (a prefix, so smaller sets are subsets of larger ones); 0 keeps all. Nothing
// depends on file order or RNG state.
inline constexpr double kMcTestFraction = 0.05;
inline constexpr double kMcValidFraction = 0.05;  // valid: [test fraction, test + valid)

const std::vector<std::string>& wordnet_mc_task_names();

// All tasks of wordnet_mc_task_names(), in that order, reading WordNet once.
std::vector<McTask> wordnet_mc_tasks(const std::string& wordnet_dir, size_t max_per_split);

// One task by name; throws gt::Error listing the names for an unknown one.
McTask wordnet_mc_task(const std::string& name, const std::string& wordnet_dir,
                       size_t max_per_split);

// The split point u in [0, 1) of a synset (offset and pos as in the data file).
double wordnet_split_point(const std::string& offset, char pos);

}  // namespace gt
