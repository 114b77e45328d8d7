// See text_stream.hpp.
#include "models/text_stream.hpp"

#include <algorithm>

namespace gt {

TextStream::TextStream(Tokenizer tokenizer, std::vector<std::string> stops)
    : tokenizer_(std::move(tokenizer)), stops_(std::move(stops)) {
  stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string()), stops_.end());
}

bool TextStream::push(int64_t token) {
  if (stopped_) return false;
  tokens_.push_back(token);
  // The whole decode, not the token's alone: a tokenizer need not decode piece by piece.
  text_ = tokenizer_.decode(tokens_);
  // Text already handed out holds no stop string nor the start of one: search after it.
  size_t cut = std::string::npos;
  for (const auto& stop : stops_) cut = std::min(cut, text_.find(stop, taken_));
  if (cut == std::string::npos) return true;
  text_.resize(cut);
  stopped_ = true;
  return false;
}

size_t TextStream::final_end() const {
  if (stopped_) return text_.size();
  size_t end = text_.size();
  for (const auto& stop : stops_) {
    // The longest end of the text that a stop string starts with may yet become that string.
    for (size_t k = std::min(stop.size() - 1, text_.size()); k > 0; --k) {
      if (text_.compare(text_.size() - k, k, stop, 0, k) == 0) {
        end = std::min(end, text_.size() - k);
        break;
      }
    }
  }
  return whole_utf8_prefix(text_.substr(0, end));
}

std::string TextStream::take(bool finished) {
  const auto end = std::max(taken_, finished ? text_.size() : final_end());
  auto out = text_.substr(taken_, end - taken_);
  taken_ = end;
  return out;
}

size_t whole_utf8_prefix(const std::string& text) {
  // Walk back over at most 3 continuation bytes to the last lead byte, and check that its
  // sequence is complete.
  const auto n = text.size();
  size_t i = n, back = 0;
  while (i > 0 && back < 3 && (static_cast<unsigned char>(text[i - 1]) & 0xC0) == 0x80) --i, ++back;
  if (i == 0) return n;
  const auto lead = static_cast<unsigned char>(text[i - 1]);
  const size_t need = lead >= 0xF0 && lead < 0xF8   ? 4
                      : lead >= 0xE0 && lead < 0xF0 ? 3
                      : lead >= 0xC0 && lead < 0xE0 ? 2
                                                    : 1;
  return need > back + 1 ? i - 1 : n;
}

}  // namespace gt
