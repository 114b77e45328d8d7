// Instruction examples from WordNet and JSONL, and their tokenization with prompt-masked labels.
#include "data/instructions.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "common/error.hpp"
#include "common/stable_hash.hpp"
#include "data/jsonl.hpp"
#include "data/wordnet.hpp"

namespace gt {
namespace {

// Offsets are unique per data file; satellites ('s') live in data.adj with the 'a' synsets.
std::string synset_id(char pos, const std::string& offset) {
  return std::string(1, pos == 's' ? 'a' : pos) + offset;
}

// A heuristic by spelling ("a union" is missed); good enough for a template.
std::string indefinite_article(const std::string& word) {
  const char c = word.empty() ? 'x' : static_cast<char>(std::tolower(word[0]));
  return std::string("aeiou").find(c) != std::string::npos ? "An" : "A";
}

}  // namespace

InstructionSplit wordnet_instructions(const std::string& dir, double valid_fraction,
                                      size_t max_train, size_t max_valid) {
  if (!(valid_fraction >= 0 && valid_fraction <= 1))
    throw Error("valid fraction must be in [0, 1], got " + std::to_string(valid_fraction));
  std::vector<Synset> synsets;
  for (const char* part : {"noun", "verb", "adj", "adv"})
    for (auto& s : read_wordnet(dir, part)) synsets.push_back(std::move(s));
  std::unordered_map<std::string, const Synset*> by_id;
  for (const auto& s : synsets) by_id.emplace(synset_id(s.pos, s.offset), &s);
  // The first word of the first pointer `symbol`'s target synset, or "" when there is none.
  auto related_word = [&](const Synset& s, const char* symbol) -> std::string {
    for (const auto& p : s.pointers) {
      if (p.symbol != symbol) continue;
      auto it = by_id.find(synset_id(p.pos, p.target));
      // WordNet antonyms are word-to-word; Synset keeps no word numbers, so we pair first words
      // (right for 99% of WordNet's adjective antonym pointers, which link word 1 to word 1).
      if (it != by_id.end() && !it->second->words.empty()) return it->second->words[0];
    }
    return "";
  };

  struct Keyed {
    uint64_t key;
    InstructionExample ex;
  };
  std::vector<Keyed> train, valid;
  for (const auto& s : synsets) {
    const auto def = gloss_definition(s.gloss);
    if (s.words.empty() || def.empty()) continue;
    const auto& word = s.words[0];
    std::vector<InstructionExample> choices = {
        {"Define the " + std::string(part_of_speech_name(s.pos)) + " \"" + word + "\":", " " + def},
        {"Which word means: " + def + "?", " " + word}};
    if (s.pos == 'n')
      if (auto hyper = related_word(s, "@"); !hyper.empty())
        choices.push_back({indefinite_article(word) + " " + word + " is a kind of", " " + hyper});
    if (s.pos == 'a' || s.pos == 's')
      if (auto anto = related_word(s, "!"); !anto.empty())
        choices.push_back({"The opposite of \"" + word + "\" is", " " + anto});
    // Same key as wordnet_definitions, so each synset is on the same side in every WordNet task.
    const auto key = stable_hash(s.offset + s.pos);
    const bool is_valid = double(key % 1000000) / 1e6 < valid_fraction;
    auto& ex = choices[stable_hash("template " + s.offset + s.pos) % choices.size()];
    (is_valid ? valid : train).push_back({stable_hash(std::to_string(key)), std::move(ex)});
  }

  // Sort by hash (content breaks ties) before removing duplicates, so which copy survives
  // never depends on file order; a valid example equal to a train one would leak, so it goes.
  std::unordered_set<std::string> seen;
  auto take = [&seen](std::vector<Keyed>& xs, size_t max) {
    std::sort(xs.begin(), xs.end(), [](const Keyed& a, const Keyed& b) {
      if (a.key != b.key) return a.key < b.key;
      if (a.ex.prompt != b.ex.prompt) return a.ex.prompt < b.ex.prompt;
      return a.ex.response < b.ex.response;
    });
    std::vector<InstructionExample> out;
    for (auto& x : xs)
      if (seen.insert(x.ex.prompt + '\0' + x.ex.response).second) out.push_back(std::move(x.ex));
    if (max > 0 && out.size() > max) out.resize(max);
    return out;
  };
  InstructionSplit split;
  split.train = take(train, max_train);
  split.valid = take(valid, max_valid);
  return split;
}

std::vector<InstructionExample> read_jsonl_instructions(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw error_at(path, "cannot open instruction file");
  std::vector<InstructionExample> out;
  std::string line;
  for (size_t lineno = 1; std::getline(in, line); ++lineno) {
    if (is_blank(line)) continue;
    auto bad = [&](const std::string& what) {
      return error_at(path + ":" + std::to_string(lineno), what);
    };
    const auto j = parse_jsonl_line(line, path + ":" + std::to_string(lineno));
    if (!j.is_object()) throw bad(std::string("not a JSON object (got ") + j.type_name() + ")");
    auto field = [&](const char* name, bool required) -> std::string {
      const auto it = j.find(name);
      if (it == j.end() || (!required && it->is_null())) {
        if (required) throw bad(std::string("missing field \"") + name + "\"");
        return "";
      }
      if (!it->is_string())
        throw bad(std::string("field \"") + name + "\" is not a string (got " + it->type_name() +
                  ")");
      auto value = it->get<std::string>();
      if (required && is_blank(value)) throw bad(std::string("field \"") + name + "\" is empty");
      return value;
    };
    const bool plain = j.contains("prompt") || j.contains("response");
    const bool alpaca = j.contains("instruction") || j.contains("input") || j.contains("output");
    if (plain && alpaca)
      throw bad("mixes the prompt/response and instruction/input/output schemas");
    if (plain) {
      auto prompt = field("prompt", true);
      out.push_back({prompt, field("response", true)});
    } else if (alpaca) {
      auto prompt = "### Instruction:\n" + field("instruction", true) + "\n\n";
      if (auto input = field("input", false); !is_blank(input))
        prompt += "### Input:\n" + input + "\n\n";
      out.push_back({prompt + "### Response:\n", field("output", true)});
    } else {
      throw bad("expected fields \"prompt\" and \"response\", or \"instruction\" and \"output\"");
    }
  }
  if (out.empty()) throw error_at(path, "no examples (the file is empty or has only blank lines)");
  return out;
}

InstructionDataset::InstructionDataset(const std::vector<InstructionExample>& examples,
                                       const Tokenizer& tokenizer, int64_t max_len) {
  if (max_len < 2)
    throw Error("max sequence length must be at least 2, got " + std::to_string(max_len));
  const auto& sp = tokenizer.special();
  pad_id_ = sp.pad >= 0 ? sp.pad : (sp.eos >= 0 ? sp.eos : 0);
  for (const auto& ex : examples) {
    std::vector<int64_t> ids;
    if (sp.bos >= 0) ids.push_back(sp.bos);
    const auto prompt = tokenizer.encode(ex.prompt);
    ids.insert(ids.end(), prompt.begin(), prompt.end());
    const size_t prompt_len = ids.size();
    // Separate encodings make the boundary exact: no BPE merge spans prompt and response.
    const auto response = tokenizer.encode(ex.response);
    ids.insert(ids.end(), response.begin(), response.end());
    if (sp.eos >= 0) ids.push_back(sp.eos);
    if (static_cast<int64_t>(ids.size()) > max_len) ids.resize(max_len);
    if (ids.size() <= prompt_len) {  // nothing left to learn from
      ++dropped_;
      continue;
    }
    sequences_.push_back(std::move(ids));
    prompt_lens_.push_back(prompt_len);
  }
}

int64_t InstructionDataset::num_response_tokens() const {
  int64_t n = 0;
  for (size_t i = 0; i < sequences_.size(); ++i)
    n += static_cast<int64_t>(sequences_[i].size() - prompt_lens_[i]);
  return n;
}

LmBatch InstructionDataset::batch(const std::vector<size_t>& indices) const {
  size_t T = 0;
  for (auto i : indices) T = std::max(T, sequences_.at(i).size());
  const auto B = static_cast<int64_t>(indices.size());
  const std::vector<int64_t> shape = {B, static_cast<int64_t>(T)};
  auto ids = torch::full(shape, pad_id_, torch::kLong);
  auto mask = torch::zeros(shape, torch::kLong);
  auto labels = torch::full(shape, -100, torch::kLong);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<int64_t, 2>();
  auto labels_a = labels.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& seq = sequences_[indices[b]];
    const auto prompt_len = prompt_lens_[indices[b]];
    for (size_t t = 0; t < seq.size(); ++t) {
      ids_a[b][t] = seq[t];
      mask_a[b][t] = 1;
      if (t >= prompt_len) labels_a[b][t] = seq[t];
    }
  }
  return {ids, mask, labels};
}

}  // namespace gt
