// Byte-level BPE tokenizer: loads vocab.json / merges.txt / special tokens, pre-tokenizes with
// GPT-2's regex (PCRE2), merges by rank with a heap, and maps bytes back on decode.
#include "models/tokenizer.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <queue>
#include <sstream>
#include <unordered_map>

#include "common/error.hpp"

namespace gt {
namespace {

using json = nlohmann::json;

// GPT-2's pre-tokenizer split (HuggingFace ByteLevel with use_regex=true).
constexpr const char* kPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr int64_t kMaxId = int64_t{1} << 24;  // guards against absurd ids sizing the tables
constexpr size_t kCacheWordMax = 64;          // longer words rarely repeat
constexpr size_t kCacheEntries = 1 << 16;     // bounded memory; cleared when full

// UTF-8 of a code point below U+0800, all the byte alphabet needs.
std::string utf8(uint32_t cp) {
  if (cp < 0x80) return std::string(1, char(cp));
  return {char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others are moved
// to U+0100.. in byte order, so every byte is a visible non-space character.
std::array<uint32_t, 256> bytes_to_unicode() {
  std::array<uint32_t, 256> table{};
  uint32_t shifted = 0;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    table[b] = keep ? b : 256 + shifted++;
  }
  return table;
}

// Inverse of a vocab string in the byte alphabet; characters outside it pass through as UTF-8.
std::string token_bytes(const std::string& tok, const std::unordered_map<std::string, char>& inv) {
  std::string out;
  for (size_t i = 0, len = 1; i < tok.size(); i += len) {
    const auto c = static_cast<unsigned char>(tok[i]);
    len = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    const std::string ch = tok.substr(i, len);
    const auto it = inv.find(ch);
    out += it == inv.end() ? ch : std::string(1, it->second);
  }
  return out;
}

// The file's bytes; nullopt for a missing optional file.
std::optional<std::string> read_file(const std::string& path, bool required = false) {
  std::ifstream in(path, std::ios::binary);
  if (!in && required)
    throw error_at(path, "cannot open file (vocab.json and merges.txt are required)");
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The parsed file; nullopt for a missing optional file.
std::optional<json> read_json(const std::string& path, bool required = false) {
  const auto text = read_file(path, required);
  if (!text) return std::nullopt;
  try {
    return json::parse(*text);
  } catch (const json::exception& e) {
    throw error_at(path, std::string("invalid JSON: ") + e.what());
  }
}

// A special-token entry is either "<s>" or {"content": "<s>", ...}.
std::optional<std::string> token_string(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return std::nullopt;
}

uint64_t pair_key(int64_t a, int64_t b) {
  return (uint64_t(a) << 32) | uint64_t(b);
}

// A member of an optional JSON object file, or nullptr.
const json* member(const std::optional<json>& j, const std::string& key) {
  return j && j->is_object() && j->contains(key) ? &j->at(key) : nullptr;
}

}  // namespace

struct Tokenizer::Impl {
  std::string dir;
  std::unordered_map<std::string, int64_t> vocab;  // token string -> id, added tokens included
  std::vector<std::string> tokens;                 // id -> token string
  std::vector<std::string> bytes;                  // id -> the bytes it decodes to
  std::vector<char> used, special, reachable;      // per id; reachable: BPE can output it
  std::array<int64_t, 256> byte_id{};              // id of each single-byte token
  std::unordered_map<uint64_t, std::pair<int32_t, int64_t>> merges;  // (l, r) -> (rank, result)
  std::vector<std::pair<std::string, int64_t>> added;  // matched literally, longest first
  SpecialTokens roles;
  std::shared_ptr<pcre2_code> regex;
  mutable std::mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache;

  void set_token(int64_t id, const std::string& tok, const std::string& where) {
    if (id < 0 || id >= kMaxId)
      throw error_at(where, "token \"" + tok + "\" has id " + std::to_string(id) +
                                ", outside [0, " + std::to_string(kMaxId) + ")");
    if (size_t(id) >= tokens.size()) {
      tokens.resize(id + 1);
      for (auto* v : {&used, &special, &reachable}) v->resize(id + 1, 0);
    }
    vocab[tok] = id;
    tokens[id] = tok;
    used[id] = 1;
  }

  // Returns the byte alphabet's inverse (character -> byte) for decoding.
  std::unordered_map<std::string, char> load_vocab(const std::string& path) {
    const json v = *read_json(path, true);
    if (!v.is_object()) throw error_at(path, "expected a JSON object mapping token strings to ids");
    for (const auto& [tok, id] : v.items()) {
      if (!id.is_number_integer())
        throw error_at(path, "token \"" + tok + "\" has a non-integer id " + id.dump());
      const int64_t i = id.get<int64_t>();
      if (i >= 0 && size_t(i) < tokens.size() && used[i])
        throw error_at(path, "id " + std::to_string(i) + " is used by both \"" + tokens[i] +
                                 "\" and \"" + tok + "\"");
      set_token(i, tok, path);
    }
    const auto b2u = bytes_to_unicode();
    std::unordered_map<std::string, char> u2b;
    for (int b = 0; b < 256; ++b) {
      const std::string ch = utf8(b2u[b]);
      const auto it = vocab.find(ch);
      if (it == vocab.end())
        throw error_at(path, "no token \"" + ch + "\" for byte " + std::to_string(b) +
                                 "; not a byte-level BPE vocabulary");
      byte_id[b] = it->second;
      reachable[it->second] = 1;
      u2b[ch] = char(b);
    }
    return u2b;
  }

  void load_merges(const std::string& path, const std::string& text) {
    std::istringstream lines(text);
    std::string line;
    int32_t rank = 0;
    for (int lineno = 1; std::getline(lines, line); ++lineno) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty() || (lineno == 1 && line.rfind("#version", 0) == 0)) continue;
      const std::string where = path + ":" + std::to_string(lineno);
      const size_t sp = line.find(' ');
      if (sp == 0 || sp == std::string::npos || sp + 1 == line.size() ||
          line.find(' ', sp + 1) != std::string::npos)
        throw error_at(where, "expected two tokens separated by one space, got \"" + line + "\"");
      const std::string a = line.substr(0, sp), b = line.substr(sp + 1);
      for (const std::string& part : {a, b, a + b}) {
        if (!vocab.count(part))
          throw error_at(where, "merge \"" + line + "\": \"" + part + "\" is not in vocab.json");
      }
      const int64_t result = vocab.at(a + b);
      merges[pair_key(vocab.at(a), vocab.at(b))] = {rank++, result};  // last duplicate wins, as HF
      reachable[result] = 1;
    }
  }

  // tokenizer.json lists [{"id": 0, "content": "<s>", ...}]; tokenizer_config.json's
  // added_tokens_decoder is {"0": {"content": "<s>", ...}}. Either may extend the id range.
  void load_added(const std::string& where, const json& entries) {
    for (const auto& [key, a] : entries.items()) {
      const json id = entries.is_object()                 ? json::parse(key, nullptr, false)
                      : a.is_object() && a.contains("id") ? a["id"]
                                                          : json();
      const auto content = token_string(a);
      if (!content || !id.is_number_integer())
        throw error_at(where, "added token without content and integer id: " + a.dump());
      set_token(id.get<int64_t>(), *content, where);
      add_literal(*content, id.get<int64_t>(), a.is_object() && a.value("special", json()) == true);
    }
  }

  void add_literal(const std::string& content, int64_t id, bool is_special) {
    if (is_special) special[id] = 1;
    if (content.empty()) return;  // an empty string would match everywhere
    for (auto& [s, i] : added)
      if (s == content) return;
    added.emplace_back(content, id);
  }

  // Roles by source priority; a later source only fills roles still unset.
  void load_roles(const std::optional<json>& stm, const std::optional<json>& tcfg,
                  const std::optional<json>& cfg, const std::optional<json>& tok_json) {
    const std::pair<const char*, int64_t*> role_list[] = {
        {"bos", &roles.bos}, {"eos", &roles.eos}, {"pad", &roles.pad}, {"unk", &roles.unk}};
    for (auto [name, slot] : role_list) {
      const std::string key = std::string(name) + "_token";
      for (const auto* src : {&stm, &tcfg}) {
        const json* v = member(*src, key);
        const auto s = v ? token_string(*v) : std::nullopt;
        if (*slot >= 0 || !s) continue;
        if (!vocab.count(*s))
          throw error_at(
              dir + (src == &stm ? "/special_tokens_map.json" : "/tokenizer_config.json"),
              key + " \"" + *s + "\" is not in the vocabulary");
        *slot = vocab.at(*s);
      }
      const json* v = member(cfg, key + "_id");
      if (*slot >= 0 || !v) continue;
      const json& id = v->is_array() && !v->empty() ? v->at(0) : *v;  // several eos ids: the first
      if (!id.is_number_integer()) continue;
      *slot = id.get<int64_t>();
      if (*slot < 0 || size_t(*slot) >= tokens.size() || !used[*slot])
        throw error_at(dir + "/config.json",
                       key + "_id " + std::to_string(*slot) + " is not in the vocabulary");
    }
    const json::json_pointer unk_ptr("/model/unk_token");
    if (roles.unk < 0 && tok_json && tok_json->contains(unk_ptr)) {
      const auto s = token_string(tok_json->at(unk_ptr));
      if (s && vocab.count(*s)) roles.unk = vocab.at(*s);
    }
    for (auto [name, slot] : {std::pair{"<pad>", &roles.pad}, std::pair{"<unk>", &roles.unk}}) {
      for (auto& [s, id] : added)
        if (*slot < 0 && s == name) *slot = id;
    }
    // Special tokens that BPE can never produce are matched literally, like HF's added tokens.
    for (int64_t id : {roles.bos, roles.eos, roles.pad, roles.unk}) {
      if (id >= 0) add_literal(reachable[id] ? std::string() : tokens[id], id, true);
    }
  }

  // Rank-ordered BPE over one pre-tokenized word: a heap of candidate pairs on a linked list of
  // symbols (as HuggingFace's Rust Word::merge_all), O(n log n) for long words.
  void bpe(const char* word, size_t n, std::vector<int64_t>& out) const {
    if (n == 1) {
      out.push_back(byte_id[static_cast<unsigned char>(word[0])]);
      return;
    }
    const bool cacheable = n <= kCacheWordMax;
    std::string key;
    if (cacheable) {
      key.assign(word, n);
      std::lock_guard<std::mutex> lock(cache_mu);
      const auto it = cache.find(key);
      if (it != cache.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    struct Sym {
      int64_t id;  // -1 once merged into its left neighbour
      int prev, next;
    };
    std::vector<Sym> sym(n);
    for (size_t i = 0; i < n; ++i)
      sym[i] = {byte_id[static_cast<unsigned char>(word[i])], int(i) - 1,
                i + 1 < n ? int(i) + 1 : -1};
    using Cand = std::pair<int32_t, int>;  // (rank, left position): lowest rank, then leftmost
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    auto lookup = [&](int pos) -> const std::pair<int32_t, int64_t>* {
      if (pos < 0 || sym[pos].next < 0) return nullptr;
      const auto it = merges.find(pair_key(sym[pos].id, sym[sym[pos].next].id));
      return it == merges.end() ? nullptr : &it->second;
    };
    auto push = [&](int pos) {
      if (const auto* m = lookup(pos)) heap.push({m->first, pos});
    };
    for (size_t i = 0; i + 1 < n; ++i) push(int(i));
    while (!heap.empty()) {
      const auto [rank, pos] = heap.top();
      heap.pop();
      if (sym[pos].id < 0) continue;
      const auto* m = lookup(pos);
      if (!m || m->first != rank) continue;  // stale: a neighbour merged since it was queued
      Sym& left = sym[pos];
      Sym& right = sym[left.next];
      left.id = m->second;
      right.id = -1;
      left.next = right.next;
      if (left.next >= 0) sym[left.next].prev = pos;
      push(left.prev);
      push(pos);
    }
    const size_t first = out.size();
    for (int i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_mu);
      if (cache.size() >= kCacheEntries) cache.clear();
      cache.emplace(std::move(key), std::vector<int64_t>(out.begin() + first, out.end()));
    }
  }

  // Splits with the GPT-2 regex. The pattern is compiled with PCRE2_MATCH_INVALID_UTF, so
  // invalid UTF-8 is never part of a match: the bytes between matches form words of their own.
  void pretokenize(const char* text, size_t n, pcre2_match_data* md,
                   std::vector<int64_t>& out) const {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text);
    size_t pos = 0;
    while (pos < n) {
      const int rc = pcre2_match(regex.get(), subject, n, pos, 0, md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0)  // only resource limits are possible here; the pattern cannot fail on any input
        throw error_at("tokenizer (" + dir + ")",
                       "pre-tokenizer regex failed with PCRE2 error " + std::to_string(rc));
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      if (ov[0] > pos) bpe(text + pos, ov[0] - pos, out);
      bpe(text + ov[0], ov[1] - ov[0], out);
      pos = ov[1];  // every alternative consumes at least one character
    }
    if (pos < n) bpe(text + pos, n - pos, out);
  }

  void check_id(int64_t id) const {
    if (id < 0 || size_t(id) >= tokens.size() || !used[id])
      throw error_at("tokenizer (" + dir + ")", "token id " + std::to_string(id) +
                                                    " is not in the vocabulary (size " +
                                                    std::to_string(tokens.size()) + ")");
  }
};

Tokenizer Tokenizer::from_dir(const std::string& dir) {
  auto impl = std::make_shared<Impl>();
  Impl& t = *impl;
  t.dir = dir;
  const std::string vocab_path = dir + "/vocab.json", merges_path = dir + "/merges.txt";
  const auto u2b = t.load_vocab(vocab_path);
  t.load_merges(merges_path, *read_file(merges_path, true));
  const auto tok_json = read_json(dir + "/tokenizer.json");
  const auto tcfg = read_json(dir + "/tokenizer_config.json");
  if (const json* a = member(tok_json, "added_tokens"); a && a->is_array())
    t.load_added(dir + "/tokenizer.json", *a);
  if (const json* a = member(tcfg, "added_tokens_decoder"); a && a->is_object())
    t.load_added(dir + "/tokenizer_config.json", *a);
  t.load_roles(read_json(dir + "/special_tokens_map.json"), tcfg, read_json(dir + "/config.json"),
               tok_json);
  std::stable_sort(t.added.begin(), t.added.end(),
                   [](const auto& x, const auto& y) { return x.first.size() > y.first.size(); });

  // Precomputed decode strings; added tokens decode to their content as is.
  t.bytes.resize(t.tokens.size());
  for (size_t id = 0; id < t.tokens.size(); ++id) t.bytes[id] = token_bytes(t.tokens[id], u2b);
  for (const auto& [content, id] : t.added) t.bytes[id] = content;

  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED,
                    PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_off, nullptr);
  if (!code) throw error_at("tokenizer", "cannot compile the pre-tokenizer regex");
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional speed-up; the interpreter also works
  t.regex.reset(code, pcre2_code_free);

  Tokenizer tok;
  tok.impl_ = std::move(impl);
  return tok;
}

std::vector<int64_t> Tokenizer::encode(const std::string& text) const {
  const Impl& t = *impl_;
  std::vector<int64_t> out;
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create_from_pattern(t.regex.get(), nullptr), pcre2_match_data_free);
  if (!md) throw std::bad_alloc();
  // Next occurrence of each added token at or after `pos`, refreshed only once passed, so the
  // literal scan is linear in the text for each added token.
  std::vector<size_t> next(t.added.size());
  for (size_t i = 0; i < t.added.size(); ++i) next[i] = text.find(t.added[i].first);
  size_t pos = 0;
  for (;;) {
    size_t best = std::string::npos, which = 0;
    for (size_t i = 0; i < t.added.size(); ++i) {
      if (next[i] != std::string::npos && next[i] < pos) next[i] = text.find(t.added[i].first, pos);
      if (next[i] < best) best = next[i], which = i;  // strict: longest wins a tie (sorted)
    }
    const size_t end = best == std::string::npos ? text.size() : best;
    t.pretokenize(text.data() + pos, end - pos, md.get(), out);
    if (best == std::string::npos) break;
    out.push_back(t.added[which].second);
    pos = best + t.added[which].first.size();
  }
  return out;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  const Impl& t = *impl_;
  std::string out;
  for (int64_t id : ids) {
    t.check_id(id);
    if (!(skip_special && t.special[id])) out += t.bytes[id];
  }
  return out;
}

std::string Tokenizer::token(int64_t id) const {
  impl_->check_id(id);
  return impl_->tokens[id];
}

int64_t Tokenizer::token_id(const std::string& token) const {
  const auto it = impl_->vocab.find(token);
  return it == impl_->vocab.end() ? -1 : it->second;
}

int64_t Tokenizer::vocab_size() const {
  return int64_t(impl_->tokens.size());
}
const SpecialTokens& Tokenizer::special() const {
  return impl_->roles;
}
bool Tokenizer::is_special(int64_t id) const {
  return id >= 0 && size_t(id) < impl_->special.size() && impl_->special[id];
}
const std::string& Tokenizer::dir() const {
  return impl_->dir;
}

}  // namespace gt
