// GPT-2 style byte-level BPE tokenizer (GPT-2, RoBERTa, OPT) read from a HuggingFace
// checkpoint directory's vocab.json + merges.txt. No torch dependency.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gt {

// Token ids of the special roles; -1 where the checkpoint defines none.
struct SpecialTokens {
  int64_t bos = -1, eos = -1, pad = -1, unk = -1;
};

// Immutable after from_dir; copies share the loaded tables, and all methods are safe to call
// from several threads at once.
//
// Behaviour beyond HuggingFace's (which only sees valid Unicode text):
// - encode accepts any bytes. Bytes that are not valid UTF-8 never match the pre-tokenizer
//   regex; each maximal run of them becomes a word of its own and is byte-mapped like any
//   other text, so decode(encode(x)) == x for every byte string x.
// - decode returns raw bytes (no U+FFFD replacement, no clean_up_tokenization_spaces), so
//   decoding a prefix of the ids may end in the middle of a UTF-8 character.
class Tokenizer {
 public:
  // Reads dir/vocab.json and dir/merges.txt (required). Added tokens come from tokenizer.json
  // "added_tokens" and tokenizer_config.json "added_tokens_decoder" (both optional). Special
  // roles come from special_tokens_map.json, then tokenizer_config.json, then config.json's
  // <role>_token_id, then tokenizer.json's model.unk_token, then the conventional "<unk>" /
  // "<pad>" added tokens. Throws gt::Error naming the file and the problem.
  static Tokenizer from_dir(const std::string& dir);

  // Token ids for `text`; no BOS/EOS added. Added/special token strings are matched literally
  // (leftmost, longest first) before the regex pre-tokenizer sees the rest.
  std::vector<int64_t> encode(const std::string& text) const;
  // The bytes the ids stand for; special tokens left out when skip_special. Throws gt::Error
  // for an id that is not in the vocabulary.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const;

  std::string token(int64_t id) const;               // the vocab string (byte-level alphabet)
  int64_t token_id(const std::string& token) const;  // -1 when not in the vocabulary
  int64_t vocab_size() const;                        // highest id + 1
  const SpecialTokens& special() const;
  bool is_special(int64_t id) const;  // skipped by decode(ids, true)
  const std::string& dir() const;

 private:
  Tokenizer() = default;
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace gt
