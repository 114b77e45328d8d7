// Instruction/response examples for fine-tuning (WordNet-derived or JSONL), tokenized so that
// the loss counts only response tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/batch_source.hpp"
#include "models/tokenizer.hpp"

namespace gt {

// The model sees prompt + response; only the response is learned. Both are encoded
// separately, so a response that continues a line should start with a space (" canine").
struct InstructionExample {
  std::string prompt, response;
};
inline bool operator==(const InstructionExample& a, const InstructionExample& b) {
  return a.prompt == b.prompt && a.response == b.response;
}

struct InstructionSplit {
  std::vector<InstructionExample> train, valid;
};

// One example per WordNet synset that has a definition, its template picked by a stable hash
// among those the synset supports:
//   define     Define the verb "abandon":              -> " forsake, leave behind"
//   word for   Which word means: forsake, leave behind? -> " abandon"
//   hypernym   A dog is a kind of                      -> " canine"   (nouns with a hypernym)
//   antonym    The opposite of "good" is               -> " bad"      (adjectives with an antonym)
// The train/valid split hashes the synset exactly as wordnet_definitions does, so a synset is
// on the same side in every WordNet task. At most max_train / max_valid examples are kept
// (0 = all), chosen by hash; the order is fixed too. Exact duplicate examples are kept once.
InstructionSplit wordnet_instructions(const std::string& wordnet_dir, double valid_fraction,
                                      size_t max_train, size_t max_valid);

// JSONL, one object per line (blank lines skipped), either
//   {"prompt": "...", "response": "..."}                 used verbatim, or
//   {"instruction": "...", "input": "...", "output": "..."} (Alpaca; "input" optional), turned
//   into the Alpaca prompt "### Instruction:\n...\n\n[### Input:\n...\n\n]### Response:\n"
//   with the output verbatim as the response.
// Other fields are ignored. Throws gt::Error naming file:line and the problem (invalid JSON,
// not an object, missing / empty / non-string field, mixed schemas), or the file when it is
// missing or holds no examples.
std::vector<InstructionExample> read_jsonl_instructions(const std::string& path);

// Tokenized examples: [bos] + encode(prompt) + encode(response) + [eos], cut to max_len tokens
// keeping the start. Labels equal input_ids (same positions; causal_lm_loss shifts) except
// -100 on bos, prompt and padding, so only response and eos tokens count. An example with no
// labelled token left after the cut is dropped. bos / eos are left out where the tokenizer
// has none.
class InstructionDataset : public BatchSource {
 public:
  InstructionDataset(const std::vector<InstructionExample>& examples, const Tokenizer& tokenizer,
                     int64_t max_len);
  size_t size() const override { return sequences_.size(); }
  size_t dropped() const { return dropped_; }
  // Labelled tokens (response + eos) over all kept examples.
  int64_t num_response_tokens() const;
  // Right padding with the pad id (else eos, else 0, where the tokenizer has none).
  LmBatch batch(const std::vector<size_t>& indices) const override;

 private:
  std::vector<std::vector<int64_t>> sequences_;
  std::vector<size_t> prompt_lens_;  // leading tokens (bos + prompt) labelled -100
  size_t dropped_ = 0;
  int64_t pad_id_ = 0;
};

}  // namespace gt
