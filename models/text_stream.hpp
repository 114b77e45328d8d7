// The text of one generation as its tokens arrive (issue 18). A stop string ends the text (it
// and what follows are not part of it, as in OpenAI's API), and only text that no later token
// can change is handed out while streaming: never the possible start of a stop string, never
// half of a UTF-8 character.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/tokenizer.hpp"

namespace gt {

class TextStream {
 public:
  TextStream(Tokenizer tokenizer, std::vector<std::string> stops);
  // Adds a generated token; false once a stop string has ended the text.
  bool push(int64_t token);
  // The text not handed out yet that is final; with `finished` (the generation is over) all of
  // it.
  std::string take(bool finished = false);
  // The text so far, cut before a stop string.
  const std::string& text() const { return text_; }
  bool stopped() const { return stopped_; }
  int64_t tokens() const { return static_cast<int64_t>(tokens_.size()); }

 private:
  size_t final_end() const;

  Tokenizer tokenizer_;
  std::vector<std::string> stops_;
  std::vector<int64_t> tokens_;
  std::string text_;
  size_t taken_ = 0;
  bool stopped_ = false;
};

// The length of the longest prefix of `text` that ends on a whole UTF-8 character (a cut
// multi-byte sequence at the end is left out; invalid bytes count as whole).
size_t whole_utf8_prefix(const std::string& text);

}  // namespace gt
