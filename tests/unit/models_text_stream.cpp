// The text of a generation as its tokens arrive (models/text_stream.hpp), with the embedded
// model's tokenizer: stop strings cut the text as OpenAI's API does, and streamed pieces are
// final (never a stop string's start, never half a UTF-8 character) and add up to the text.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "models/text_stream.hpp"
#include "models/tokenizer.hpp"
#include "tests/test_paths.hpp"

namespace {

using gt::TextStream;

const gt::Tokenizer& tokenizer() {
  static const auto t = gt::Tokenizer::from_dir(gt::test::model_dir());
  return t;
}

// Pushes the tokens of `text` one by one; returns the pieces taken after each push and the end.
struct Fed {
  std::vector<std::string> pieces;
  std::string text;
  bool stopped = false;
};

Fed feed(const std::string& text, const std::vector<std::string>& stops) {
  TextStream s(tokenizer(), stops);
  Fed out;
  for (auto id : tokenizer().encode(text)) {
    const bool go_on = s.push(id);
    out.pieces.push_back(s.take());
    if (!go_on) break;
  }
  out.pieces.push_back(s.take(/*finished=*/true));
  out.text = s.text();
  out.stopped = s.stopped();
  return out;
}

std::string joined(const std::vector<std::string>& pieces) {
  std::string all;
  for (const auto& p : pieces) all += p;
  return all;
}

}  // namespace

TEST_CASE("text stream: without stop strings every token's text is handed out, in order") {
  const std::string text = " A dwelling is a place where one lives.";
  const auto f = feed(text, {});
  CHECK(f.text == text);
  CHECK(joined(f.pieces) == text);
  CHECK_FALSE(f.stopped);
}

TEST_CASE("text stream: a stop string ends the text before it, even across tokens") {
  const std::string text = " A dwelling is a place where one lives.";
  for (const std::string stop : {" place", "ace wh", "lives", ".", " A"}) {
    CAPTURE(stop);
    const auto f = feed(text, {"never there", stop});
    CHECK(f.stopped);
    CHECK(f.text == text.substr(0, text.find(stop)));
    CHECK(joined(f.pieces) == f.text);
  }
}

TEST_CASE("text stream: the possible start of a stop string is held back until it is not one") {
  TextStream s(tokenizer(), {" placebo"});
  std::string shown;
  bool held = false;
  for (auto id : tokenizer().encode(" a place to live")) {
    REQUIRE(s.push(id));
    shown += s.take();
    if (s.text() == " a place") {  // could still become " placebo": not shown yet
      CHECK(shown == " a");
      held = true;
    }
  }
  CHECK(held);
  // The text went on past " place": what was held back came out.
  CHECK(shown == " a place to live");
  CHECK(s.take(/*finished=*/true).empty());
}

TEST_CASE("text stream: a multi-byte character is handed out whole") {
  // Byte-level BPE splits these characters into byte tokens: a piece never ends inside one.
  const std::string text = " caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80!";
  const auto f = feed(text, {});
  CHECK(f.text == text);
  CHECK(joined(f.pieces) == text);
  for (const auto& p : f.pieces) {
    CAPTURE(p);
    CHECK(gt::whole_utf8_prefix(p) == p.size());
  }
}

TEST_CASE("text stream: whole_utf8_prefix cuts only an unfinished sequence at the end") {
  CHECK(gt::whole_utf8_prefix("") == 0);
  CHECK(gt::whole_utf8_prefix("ab") == 2);
  CHECK(gt::whole_utf8_prefix("a\xc3") == 1);              // 2-byte lead alone
  CHECK(gt::whole_utf8_prefix("a\xc3\xa9") == 3);          // complete
  CHECK(gt::whole_utf8_prefix("a\xe6\x97") == 1);          // 3-byte, one missing
  CHECK(gt::whole_utf8_prefix("a\xf0\x9f\x98") == 1);      // 4-byte, one missing
  CHECK(gt::whole_utf8_prefix("a\xf0\x9f\x98\x80") == 5);  // complete
  CHECK(gt::whole_utf8_prefix("a\x80\x80") == 3);          // stray continuations: as they are
  CHECK(gt::whole_utf8_prefix("a\xff") == 2);              // not UTF-8 at all: as it is
}

TEST_CASE("text stream: empty stop strings are ignored, and nothing follows a stop") {
  TextStream s(tokenizer(), {"", " is"});
  const auto ids = tokenizer().encode(" it is so");
  bool stopped = false;
  for (auto id : ids) {
    if (!s.push(id)) {
      stopped = true;
      break;
    }
  }
  REQUIRE(stopped);
  CHECK(s.text() == " it");
  CHECK_FALSE(s.push(ids.back()));
  CHECK(s.text() == " it");
}
