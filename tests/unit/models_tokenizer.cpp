// Unit tests for the byte-level BPE tokenizer: reference encodings from HuggingFace's JS
// tokenizer, round trips, special tokens, malformed checkpoint files.
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "common/error.hpp"
#include "models/tokenizer.hpp"
#include "tests/temp_dir.hpp"
#include "tests/test_paths.hpp"

namespace fs = std::filesystem;
using gt::Tokenizer;

namespace {

struct Case {
  std::string text;
  std::vector<int64_t> ids;
};

std::vector<Case> fixture_cases() {
  const std::string path = gt::test::fixture("tokenizer/opt-mini-gcide.json");
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "missing fixture " << path);
  std::vector<Case> cases;
  for (const auto& c : nlohmann::json::parse(in))
    cases.push_back({c.at("text").get<std::string>(), c.at("ids").get<std::vector<int64_t>>()});
  return cases;
}

const Tokenizer& model_tokenizer() {
  static const Tokenizer tok = Tokenizer::from_dir(gt::test::model_dir());
  return tok;
}

using gt::test::TempDir;

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) return s += char(cp), s;
  if (cp < 0x800) return s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F)), s;
  if (cp < 0x10000) {
    s += char(0xE0 | (cp >> 12));
  } else {
    s += char(0xF0 | (cp >> 18));
    s += char(0x80 | ((cp >> 12) & 0x3F));
  }
  s += char(0x80 | ((cp >> 6) & 0x3F));
  s += char(0x80 | (cp & 0x3F));
  return s;
}

// A tiny byte-level checkpoint: <s>=0, </s>=1, the 256 byte tokens (GPT-2's bytes_to_unicode,
// written out independently here), then `extra` tokens; merges.txt is `merges`.
void write_tiny(const TempDir& dir, const std::vector<std::string>& extra,
                const std::string& merges) {
  nlohmann::json vocab = {{"<s>", 0}, {"</s>", 1}};
  int next = 2, shifted = 0;
  for (int b = 0; b < 256; ++b) {
    const bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    vocab[utf8(keep ? b : 256 + shifted++)] = next++;
  }
  for (const auto& t : extra) vocab[t] = next++;
  dir.write("vocab.json", vocab.dump());
  dir.write("merges.txt", merges);
}

void check_throws(const std::string& dir, const char* needle) {
  CHECK_THROWS_WITH_AS(Tokenizer::from_dir(dir), doctest::Contains(needle), gt::Error);
}

}  // namespace

TEST_CASE("tokenizer: fixture texts encode to the HuggingFace reference ids") {
  const auto cases = fixture_cases();
  CHECK(cases.size() >= 40);
  for (const auto& c : cases) {
    INFO("text: " << nlohmann::json(c.text).dump());
    CHECK(model_tokenizer().encode(c.text) == c.ids);
  }
}

TEST_CASE("tokenizer: decode inverts encode on the fixture texts") {
  for (const auto& c : fixture_cases()) {
    INFO("text: " << nlohmann::json(c.text).dump());
    // Special tokens inside the text are kept only when not skipped.
    CHECK(model_tokenizer().decode(c.ids, false) == c.text);
    CHECK(model_tokenizer().decode(model_tokenizer().encode(c.text), false) == c.text);
  }
  CHECK(model_tokenizer().decode({0, 352, 414, 312, 887, 2}) == "start and end");
}

TEST_CASE("tokenizer: decode inverts encode on random valid UTF-8 and on raw bytes") {
  const Tokenizer& tok = model_tokenizer();
  std::mt19937 rng(1234);
  // Code points drawn from ASCII (mostly), whitespace, Latin-1, Cyrillic, CJK, emoji, specials.
  const std::vector<std::pair<uint32_t, uint32_t>> ranges = {
      {0x20, 0x7E},       {0x20, 0x7E},     {0x20, 0x7E},       {0x09, 0x0D},
      {0x00, 0x1F},       {0xA0, 0xFF},     {0x400, 0x4FF},     {0x4E00, 0x4FFF},
      {0x1F300, 0x1F6FF}, {0xE000, 0xE0FF}, {0x10000, 0x10FFFF}};
  for (int n = 0; n < 300; ++n) {
    std::string text;
    const int len = int(rng() % 40);
    for (int i = 0; i < len; ++i) {
      if (rng() % 25 == 0) {
        text += (rng() % 2) ? "</s>" : "<pad>";
        continue;
      }
      const auto [lo, hi] = ranges[rng() % ranges.size()];
      text += utf8(lo + rng() % (hi - lo + 1));
    }
    INFO("text: " << nlohmann::json(text).dump());
    CHECK(tok.decode(tok.encode(text), false) == text);
  }
  // Not valid UTF-8: never crashes, and the bytes still come back (documented behaviour).
  for (int n = 0; n < 300; ++n) {
    std::string bytes(rng() % 30, '\0');
    for (char& c : bytes) c = char(rng() % 256);
    CHECK(tok.decode(tok.encode(bytes), false) == bytes);
  }
  const std::string bad = "ab\xff\xfe cd\xc3 \xe2\x82";
  CHECK(tok.decode(tok.encode(bad)) == bad);
}

TEST_CASE("tokenizer: special ids and vocabulary of the embedded checkpoint") {
  const Tokenizer& tok = model_tokenizer();
  CHECK(tok.vocab_size() == 8192);
  CHECK(tok.special().bos == 2);  // config.json bos_token_id
  CHECK(tok.special().eos == 2);
  CHECK(tok.special().pad == 1);
  CHECK(tok.special().unk == 3);  // the "<unk>" added token
  CHECK(tok.token(0) == "<s>");
  CHECK(tok.token(3) == "<unk>");
  CHECK(tok.token(224) == "\xc4\xa0");  // "Ġ", the byte-level space
  CHECK(tok.token_id("<pad>") == 1);
  CHECK(tok.token_id("no such token") == -1);
  for (int64_t id : {0, 1, 2, 3}) CHECK(tok.is_special(id));
  CHECK_FALSE(tok.is_special(4));
  CHECK(tok.encode("").empty());
  CHECK(tok.decode({}).empty());
  CHECK(tok.decode({1, 1, 68, 2}) == "a");
  CHECK(tok.decode({1, 1, 68, 2}, false) == "<pad><pad>a</s>");
}

TEST_CASE("tokenizer: BPE merges by rank on a tiny vocabulary") {
  TempDir dir;
  // ids: byte b is 2 + b (a=99, b=100, c=101); "ab"=258, "abc"=259, "aa"=260, "Ġab"=261.
  write_tiny(dir,
             {"ab", "abc", "aa",
              "\xc4\xa0"
              "ab"},
             "#version: 0.2\na b\nab c\na a\n\xc4\xa0 ab\n");
  const Tokenizer tok = Tokenizer::from_dir(dir.str());
  CHECK(tok.vocab_size() == 262);
  CHECK(tok.encode("abc") == std::vector<int64_t>{259});
  CHECK(tok.encode("aaa") == std::vector<int64_t>{260, 99});  // leftmost pair first
  CHECK(tok.encode("abab ab") == std::vector<int64_t>{258, 258, 261});
  // No tokenizer.json, maps or config: no roles, so "<s>" is ordinary text.
  CHECK(tok.special().bos == -1);
  CHECK(tok.encode("<s>") == std::vector<int64_t>{2 + '<', 2 + 's', 2 + '>'});
}

TEST_CASE("tokenizer: special ids from special_tokens_map.json, tokenizer_config.json") {
  TempDir dir;
  write_tiny(dir, {"<|endoftext|>", "<unk>", "<extra>"}, "");
  dir.write("config.json",
            R"({"bos_token_id": 1, "eos_token_id": [258, 1], "pad_token_id": null})");
  SUBCASE("config.json ids; unmergeable special tokens are matched literally") {
    const Tokenizer tok = Tokenizer::from_dir(dir.str());
    CHECK(tok.special().bos == 1);
    CHECK(tok.special().eos == 258);
    CHECK(tok.special().pad == -1);
    CHECK(tok.encode("x<|endoftext|>") == std::vector<int64_t>{122, 258});
    CHECK(tok.decode({122, 258}) == "x");
  }
  SUBCASE("the maps win over config.json") {
    dir.write("special_tokens_map.json",
              R"({"bos_token": "<s>", "unk_token": {"content": "<unk>", "special": true}})");
    dir.write("tokenizer_config.json",
              R"({"bos_token": "</s>", "pad_token": "<|endoftext|>",
                  "added_tokens_decoder": {"260": {"content": "<extra>", "special": true}}})");
    const Tokenizer tok = Tokenizer::from_dir(dir.str());
    CHECK(tok.special().bos == 0);
    CHECK(tok.special().eos == 258);
    CHECK(tok.special().pad == 258);
    CHECK(tok.special().unk == 259);
    CHECK(tok.is_special(260));
    CHECK(tok.encode("a<extra>") == std::vector<int64_t>{99, 260});
  }
  SUBCASE("a special token that is not in the vocabulary") {
    dir.write("special_tokens_map.json", R"({"eos_token": "<nope>"})");
    check_throws(dir.str(), "special_tokens_map.json: eos_token \"<nope>\" is not in the");
  }
}

TEST_CASE("tokenizer: long words and whitespace runs encode quickly") {
  const Tokenizer& tok = model_tokenizer();
  std::string word, spaces(200000, ' '), text;
  for (int i = 0; i < 100000; ++i) word += "abcdefghij"[i % 10];
  for (int i = 0; i < 20000; ++i) text += "The word list, 12 entries; ";
  const auto start = std::chrono::steady_clock::now();
  for (const std::string* s : {&word, &spaces, &text}) {
    const auto ids = tok.encode(*s + "x");
    CHECK(tok.decode(ids) == *s + "x");
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(secs < 10.0);  // quadratic behaviour would take minutes (sanitizer builds are slow too)
}

TEST_CASE("tokenizer: concurrent encode from several threads agrees") {
  const auto cases = fixture_cases();
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int rep = 0; rep < 20; ++rep)
        for (const auto& c : cases)
          if (model_tokenizer().encode(c.text) != c.ids) ++mismatches;
    });
  for (auto& th : threads) th.join();
  CHECK(mismatches == 0);
}

TEST_CASE("tokenizer: malformed checkpoint files are reported with the file and problem") {
  TempDir dir;
  SUBCASE("missing vocab.json") {
    dir.write("merges.txt", "");
    check_throws(dir.str(), "vocab.json: cannot open file");
  }
  SUBCASE("missing merges.txt") {
    write_tiny(dir, {}, "");
    fs::remove(dir.path / "merges.txt");
    check_throws(dir.str(), "merges.txt: cannot open file");
  }
  SUBCASE("invalid JSON") {
    dir.write("vocab.json", "{\"a\": 1,");
    dir.write("merges.txt", "");
    check_throws(dir.str(), "vocab.json: invalid JSON");
  }
  SUBCASE("vocab.json that is not an object of ids") {
    dir.write("merges.txt", "");
    dir.write("vocab.json", "[1, 2]");
    check_throws(dir.str(), "vocab.json: expected a JSON object");
    dir.write("vocab.json", R"({"a": "one"})");
    check_throws(dir.str(), "vocab.json: token \"a\" has a non-integer id");
    dir.write("vocab.json", R"({"a": 0, "b": 0})");
    check_throws(dir.str(), "vocab.json: id 0 is used by both");
    dir.write("vocab.json", R"({"a": 0})");
    check_throws(dir.str(), "not a byte-level BPE vocabulary");
  }
  SUBCASE("a merges line that is not two tokens") {
    write_tiny(dir, {"ab"}, "#version: 0.2\na b\na b c\n");
    check_throws(dir.str(), "merges.txt:3: expected two tokens separated by one space");
    write_tiny(dir, {"ab"}, "ab\n");
    check_throws(dir.str(), "merges.txt:1: expected two tokens");
  }
  SUBCASE("a merge part not in the vocabulary") {
    write_tiny(dir, {"ab"}, "a b\nzz b\n");
    check_throws(dir.str(), "merges.txt:2: merge \"zz b\": \"zz\" is not in vocab.json");
  }
  SUBCASE("a merge result not in the vocabulary") {
    write_tiny(dir, {"ab"}, "a b\nb c\n");
    check_throws(dir.str(), "merges.txt:2: merge \"b c\": \"bc\" is not in vocab.json");
  }
  SUBCASE("invalid tokenizer.json") {
    write_tiny(dir, {}, "");
    dir.write("tokenizer.json", "{oops");
    check_throws(dir.str(), "tokenizer.json: invalid JSON");
  }
  SUBCASE("a token id out of range in decode") {
    const Tokenizer& tok = model_tokenizer();
    CHECK_THROWS_WITH_AS(tok.decode({5, 8192}), doctest::Contains("token id 8192 is not in the"),
                         gt::Error);
    CHECK_THROWS_WITH_AS(tok.decode({-1}), doctest::Contains("token id -1"), gt::Error);
    CHECK_THROWS_WITH_AS(tok.token(100000), doctest::Contains("token id 100000"), gt::Error);
  }
}
