// WordNet multiple-choice tasks: candidates per synset, hashed splits, hashed distractors.
#include "data/wordnet_tasks.hpp"

#include <algorithm>
#include <cctype>
#include <climits>
#include <fstream>
#include <functional>
#include <sstream>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "common/error.hpp"
#include "common/stable_hash.hpp"
#include "data/wordnet.hpp"

namespace gt {
namespace {

constexpr size_t kChoices = 4;
using WordSet = std::unordered_set<std::string>;

// Satellites ('s') share data.adj, and their offsets, with the head adjectives ('a').
char pos_class(char pos) {
  return pos == 's' ? 'a' : pos;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// As wordnet_instructions spells it, so the hypernym prompts are the same strings.
std::string indefinite_article(const std::string& word) {
  const char c = word.empty() ? 'x' : static_cast<char>(std::tolower(word[0]));
  return std::string("aeiou").find(c) != std::string::npos ? "An" : "A";
}

// Bytes >= 0x80 count as letters, so a UTF-8 word is never cut in the middle.
bool word_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || std::isalnum(u);
}

// Start offsets of `word` in `text` as a whole word; both already lowercase.
std::vector<size_t> whole_word_hits(const std::string& text, const std::string& word) {
  std::vector<size_t> hits;
  if (word.empty()) return hits;
  for (auto at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) {
    const bool left = at == 0 || !word_byte(text[at - 1]);
    const auto end = at + word.size();
    const bool right = end == text.size() || !word_byte(text[end]);
    if (left && right) hits.push_back(at);
  }
  return hits;
}

// All of WordNet in memory, with the look-ups the tasks need. Not copyable: the maps point
// into `synsets`.
struct Lexicon {
  std::vector<Synset> synsets;
  std::unordered_map<std::string, const Synset*> by_id;                // pos class + offset
  std::unordered_map<std::string, std::vector<const Synset*>> senses;  // pos class + lowercase word
  std::unordered_map<std::string, uint64_t> counts;  // lowercase lemma -> SemCor tag count

  explicit Lexicon(const std::string& dir) {
    for (const char* part : {"noun", "verb", "adj", "adv"})
      for (auto& s : read_wordnet(dir, part)) synsets.push_back(std::move(s));
    for (const auto& s : synsets) {
      by_id.emplace(pos_class(s.pos) + s.offset, &s);
      for (const auto& w : s.words) senses[pos_class(s.pos) + lower(w)].push_back(&s);
    }
    read_counts(dir + "/cntlist.rev");
  }
  Lexicon(const Lexicon&) = delete;
  Lexicon& operator=(const Lexicon&) = delete;

  // Lines "lemma%lex_sense sense_number tag_count"; the file is optional (frequency then
  // plays no part in choosing distractors).
  void read_counts(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    for (size_t lineno = 1; in && std::getline(in, line); ++lineno) {
      std::istringstream fields(line);
      std::string key;
      uint64_t sense = 0, count = 0;
      if (!(fields >> key >> sense >> count) || key.find('%') == std::string::npos)
        throw error_at(path + ":" + std::to_string(lineno), "malformed sense count line");
      auto lemma = key.substr(0, key.find('%'));
      std::replace(lemma.begin(), lemma.end(), '_', ' ');
      counts[lower(lemma)] += count;
    }
  }

  std::vector<const Synset*> targets(const Synset& s, const char* symbol) const {
    std::vector<const Synset*> out;
    for (const auto& p : s.pointers) {
      if (p.symbol != symbol) continue;
      auto it = by_id.find(pos_class(p.pos) + p.target);
      if (it != by_id.end() && !it->second->words.empty()) out.push_back(it->second);
    }
    return out;
  }

  const std::vector<const Synset*>& senses_of(char pos, const std::string& word) const {
    static const std::vector<const Synset*> none;
    auto it = senses.find(pos_class(pos) + lower(word));
    return it == senses.end() ? none : it->second;
  }

  // Direct antonyms; a satellite takes those of its head (WordNet's indirect antonyms).
  std::vector<const Synset*> opposites(const Synset& s) const {
    if (s.pos == 'a') return targets(s, "!");
    std::vector<const Synset*> out;
    if (s.pos == 's')
      for (const auto* head : targets(s, "&"))
        if (head->pos == 'a')
          for (const auto* o : targets(*head, "!")) out.push_back(o);
    return out;
  }

  // Direct parents: hypernyms (nouns, verbs) or a satellite's head adjective.
  std::vector<const Synset*> parents(const Synset& s) const {
    auto out = targets(s, "@");
    for (const auto* h : targets(s, "@i")) out.push_back(h);
    if (s.pos == 's')
      for (const auto* h : targets(s, "&")) out.push_back(h);
    return out;
  }

  // Same synset, parent and child, or siblings: close enough in meaning that a word of one
  // could pass for the other ("lick" for "knock", a vigorous blow).
  bool near(const Synset& a, const Synset& b) const {
    if (&a == &b) return true;
    const auto pa = parents(a), pb = parents(b);
    for (const auto* p : pa)
      if (p == &b || std::find(pb.begin(), pb.end(), p) != pb.end()) return true;
    return std::find(pb.begin(), pb.end(), &a) != pb.end();
  }

  // SemCor frequency class: 0 for unseen, else the bit width of the count.
  int frequency(const std::string& word) const {
    auto it = counts.find(lower(word));
    int bits = 0;
    for (uint64_t n = it == counts.end() ? 0 : it->second; n > 0; n >>= 1) ++bits;
    return bits;
  }
};

void add_words(WordSet& set, const Synset& s) {
  for (const auto& w : s.words) set.insert(lower(w));
}

// Candidate words for distractors, deduplicated case-insensitively and ordered by
// (capitalized, frequency class, length, word) so that "words like the answer" are a few
// contiguous ranges.
class Pool {
 public:
  Pool(const std::vector<std::string>& words, const Lexicon& lex) {
    std::vector<std::pair<std::string, std::string>> keyed;  // (lowercase, as written)
    for (const auto& w : words) keyed.emplace_back(lower(w), w);
    std::sort(keyed.begin(), keyed.end());
    for (auto& [low, w] : keyed)
      if (entries_.empty() || entries_.back().low != low)
        entries_.push_back({capitalized(w), lex.frequency(w), w.size(), w, low});
    std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
      return std::tie(a.cap, a.freq, a.len, a.word) < std::tie(b.cap, b.freq, b.len, b.word);
    });
  }

  // kChoices - 1 distinct words not in `excluded` (lowercase), drawn by hashing `key`: near the
  // answer first, relaxing length, then frequency, then capitalization. Empty if too few.
  std::vector<std::string> pick(const std::string& answer, const WordSet& excluded,
                                const std::function<bool(const std::string&)>& reject,
                                const std::string& key, const Lexicon& lex) const {
    const bool cap = capitalized(answer);
    const int f = lex.frequency(answer);
    const size_t len = answer.size(), slack = std::max<size_t>(2, answer.size() / 4);
    const size_t lo = len > slack ? len - slack : 0, hi = len + slack;
    std::vector<std::string> out;
    WordSet taken;
    for (int level = 0; level < 4 && out.size() + 1 < kChoices; ++level) {
      std::vector<Range> ranges;
      if (level <= 1)
        for (int g = f - 1; g <= f + 1; ++g)
          ranges.push_back(level == 0 ? range({cap, g, lo}, {cap, g, hi})
                                      : range({cap, g, 0}, {cap, g, SIZE_MAX}));
      else if (level == 2)
        ranges.push_back(range({cap, INT_MIN, 0}, {cap, INT_MAX, SIZE_MAX}));
      else
        ranges.push_back({0, entries_.size()});
      draw(ranges, level == 3 ? 512 : 32, key + "#" + std::to_string(level), excluded, reject,
           taken, out);
    }
    if (out.size() + 1 < kChoices) out.clear();
    return out;
  }

 private:
  struct Entry {
    bool cap;
    int freq;
    size_t len;
    std::string word, low;
  };
  using Range = std::pair<size_t, size_t>;  // [begin, end) into entries_
  using Key = std::tuple<bool, int, size_t>;

  static bool capitalized(const std::string& w) {
    return !w.empty() && std::isupper(static_cast<unsigned char>(w[0]));
  }
  static Key key_of(const Entry& e) { return {e.cap, e.freq, e.len}; }

  // Entries whose (cap, freq, len) lies in [from, to].
  Range range(const Key& from, const Key& to) const {
    auto b = std::lower_bound(entries_.begin(), entries_.end(), from,
                              [](const Entry& e, const Key& k) { return key_of(e) < k; });
    auto e = std::upper_bound(entries_.begin(), entries_.end(), to,
                              [](const Key& k, const Entry& e) { return k < key_of(e); });
    const auto begin = static_cast<size_t>(b - entries_.begin());
    return {begin, std::max(begin, static_cast<size_t>(e - entries_.begin()))};
  }

  void draw(const std::vector<Range>& ranges, int tries, const std::string& key,
            const WordSet& excluded, const std::function<bool(const std::string&)>& reject,
            WordSet& taken, std::vector<std::string>& out) const {
    size_t total = 0;
    for (const auto& r : ranges) total += r.second - r.first;
    for (int t = 0; t < tries && total > 0 && out.size() + 1 < kChoices; ++t) {
      size_t i = stable_hash(key + "#" + std::to_string(t)) % total;
      const Entry* e = nullptr;
      for (const auto& r : ranges) {
        if (i < r.second - r.first) {
          e = &entries_[r.first + i];
          break;
        }
        i -= r.second - r.first;
      }
      if (excluded.count(e->low) || taken.count(e->low) || reject(e->word)) continue;
      taken.insert(e->low);
      out.push_back(e->word);
    }
  }

  std::vector<Entry> entries_;
};

// One would-be item: the synset it comes from, its cue word, context and answer word.
struct Candidate {
  const Synset* synset;
  std::string cue, context, answer;
};

enum Side { kTrain = 0, kValid = 1, kTest = 2 };

Side side_of(const Synset& s) {
  const double u = wordnet_split_point(s.offset, s.pos);
  if (u < kMcTestFraction) return kTest;
  return u < kMcTestFraction + kMcValidFraction ? kValid : kTrain;
}

struct TaskRecipe {
  std::function<const Pool&(const Candidate&)> pool;
  std::function<WordSet(const Candidate&)> excluded;  // besides the synset's own words
  // Also reject words with a sense near the item's synset (Lexicon::near): for tasks that ask
  // for a meaning (definition, cloze), where such a word could be right too.
  bool avoid_near_senses = false;
};

McItem make_item(const std::string& name, const Candidate& c, std::vector<std::string> words) {
  const std::string id = c.synset->offset + c.synset->pos;
  const auto at = stable_hash("answer " + name + " " + id) % kChoices;
  words.insert(words.begin() + static_cast<std::ptrdiff_t>(at), c.answer);
  McItem item{c.context, {}, static_cast<int64_t>(at), id};
  for (const auto& w : words) item.choices.push_back(" " + w);
  return item;
}

// Splits by synset hash, orders by hash, drops held-out repeats of earlier sides, caps, and
// only then draws distractors (the costly part), for the items kept.
McTask assemble(const std::string& name, const std::vector<Candidate>& cands, size_t max,
                const TaskRecipe& recipe, const Lexicon& lex) {
  struct Keyed {
    uint64_t order;
    const Candidate* c;
  };
  std::vector<Keyed> sides[3];
  for (const auto& c : cands) {
    const auto key = stable_hash(c.synset->offset + c.synset->pos);
    sides[side_of(*c.synset)].push_back({stable_hash(std::to_string(key)), &c});
  }
  McTask task;
  task.name = name;
  std::vector<McItem>* outs[3] = {&task.train, &task.valid, &task.test};
  std::unordered_set<std::string> seen;
  for (int side : {kTrain, kValid, kTest}) {
    auto& xs = sides[side];
    std::sort(xs.begin(), xs.end(), [](const Keyed& a, const Keyed& b) {
      return std::tie(a.order, a.c->context, a.c->answer) <
             std::tie(b.order, b.c->context, b.c->answer);
    });
    for (const auto& x : xs) {
      // Marked seen even past the cap: a held-out item must not repeat any train item.
      if (!seen.insert(x.c->context + '\0' + x.c->answer).second) continue;
      if (max > 0 && outs[side]->size() >= max) continue;
      auto excluded = recipe.excluded(*x.c);
      add_words(excluded, *x.c->synset);
      excluded.insert(lower(x.c->answer));
      const auto& synset = *x.c->synset;
      const auto near = [&](const std::string& word) {
        if (!recipe.avoid_near_senses) return false;
        const auto& senses = lex.senses_of(synset.pos, word);
        return std::any_of(senses.begin(), senses.end(),
                           [&](const Synset* s) { return lex.near(synset, *s); });
      };
      const std::string key = name + " " + synset.offset + synset.pos;
      auto words = recipe.pool(*x.c).pick(x.c->answer, excluded, near, key, lex);
      if (!words.empty()) outs[side]->push_back(make_item(name, *x.c, std::move(words)));
    }
  }
  return task;
}

// Pools of each part of speech; `all_words` takes every lemma, else only first lemmas.
std::unordered_map<char, Pool> pos_pools(const Lexicon& lex, bool all_words) {
  std::unordered_map<char, std::vector<std::string>> words;
  for (const auto& s : lex.synsets)
    for (size_t i = 0; i < (all_words ? s.words.size() : std::min<size_t>(1, s.words.size())); ++i)
      words[pos_class(s.pos)].push_back(s.words[i]);
  std::unordered_map<char, Pool> pools;
  for (auto& [pos, ws] : words) pools.emplace(pos, Pool(ws, lex));
  return pools;
}

McTask definition_to_word(const Lexicon& lex, size_t max) {
  std::vector<Candidate> cands;
  for (const auto& s : lex.synsets) {
    const auto def = gloss_definition(s.gloss);
    if (s.words.empty() || def.empty()) continue;
    // A definition that names its own word gives the answer away.
    if (!whole_word_hits(lower(def), lower(s.words[0])).empty()) continue;
    cands.push_back({&s, s.words[0], "Which word means: " + def + "?\nAnswer:", s.words[0]});
  }
  const auto pools = pos_pools(lex, false);
  TaskRecipe recipe{
      [&](const Candidate& c) -> const Pool& { return pools.at(pos_class(c.synset->pos)); },
      [](const Candidate&) { return WordSet{}; }, true};
  return assemble("definition_to_word", cands, max, recipe, lex);
}

// Every hypernym (regular or instance, at any depth) of every noun sense of `word`.
WordSet all_hypernym_words(const Lexicon& lex, const std::string& word) {
  WordSet out;
  std::unordered_set<const Synset*> visited;
  std::vector<const Synset*> todo = lex.senses_of('n', word);
  while (!todo.empty()) {
    const auto* s = todo.back();
    todo.pop_back();
    if (!visited.insert(s).second) continue;
    add_words(out, *s);
    for (const char* sym : {"@", "@i"})
      for (const auto* h : lex.targets(*s, sym)) todo.push_back(h);
  }
  return out;
}

McTask word_to_hypernym(const Lexicon& lex, size_t max) {
  std::vector<Candidate> cands;
  std::vector<std::string> categories;  // first lemmas of hypernym synsets
  for (const auto& s : lex.synsets) {
    if (s.pos != 'n' || s.words.empty()) continue;
    const auto hypers = lex.targets(s, "@");
    for (const auto* h : hypers) categories.push_back(h->words[0]);
    if (hypers.empty() || lower(hypers[0]->words[0]) == lower(s.words[0])) continue;
    const auto& word = s.words[0];
    cands.push_back(
        {&s, word, indefinite_article(word) + " " + word + " is a kind of", hypers[0]->words[0]});
  }
  const Pool pool(categories, lex);
  TaskRecipe recipe{[&](const Candidate&) -> const Pool& { return pool; },
                    [&](const Candidate& c) { return all_hypernym_words(lex, c.cue); }};
  return assemble("word_to_hypernym", cands, max, recipe, lex);
}

// Every antonym of every adjective sense of `word`, with the antonyms' satellites.
WordSet all_opposite_words(const Lexicon& lex, const std::string& word) {
  WordSet out;
  for (const auto* sense : lex.senses_of('a', word))
    for (const auto* o : lex.opposites(*sense)) {
      add_words(out, *o);
      for (const auto* sat : lex.targets(*o, "&")) add_words(out, *sat);
    }
  return out;
}

McTask adjective_antonym(const Lexicon& lex, size_t max) {
  std::vector<Candidate> cands;
  std::vector<std::string> heads;  // head adjectives that have an antonym
  for (const auto& s : lex.synsets) {
    if ((s.pos != 'a' && s.pos != 's') || s.words.empty()) continue;
    if (s.pos == 'a' && !lex.targets(s, "!").empty()) heads.push_back(s.words[0]);
    const auto opp = lex.opposites(s);
    // Antonyms are word-to-word and Synset keeps no word numbers, so first words are paired,
    // as wordnet_instructions does (right for 99% of WordNet's adjective antonym pointers).
    if (opp.empty() || lower(opp[0]->words[0]) == lower(s.words[0])) continue;
    const auto& word = s.words[0];
    cands.push_back({&s, word, "The opposite of \"" + word + "\" is", opp[0]->words[0]});
  }
  const Pool pool(heads, lex);
  TaskRecipe recipe{[&](const Candidate&) -> const Pool& { return pool; },
                    [&](const Candidate& c) { return all_opposite_words(lex, c.cue); }};
  return assemble("adjective_antonym", cands, max, recipe, lex);
}

// The quoted example sentences of a gloss, after its definition.
std::vector<std::string> gloss_examples(const std::string& gloss) {
  std::vector<std::string> out;
  size_t at = gloss_definition(gloss).size();
  while (true) {
    const auto open = gloss.find('"', at);
    if (open == std::string::npos) break;
    const auto close = gloss.find('"', open + 1);
    if (close == std::string::npos) break;
    out.push_back(gloss.substr(open + 1, close - open - 1));
    at = close + 1;
  }
  return out;
}

// `sentence` with each whole-word `word` (any case) as "___"; "" when it does not occur or when
// too little is left around the blank.
std::string blank_out(const std::string& sentence, const std::string& word) {
  const auto low = lower(word);
  auto hits = whole_word_hits(lower(sentence), low);
  if (hits.empty()) return "";
  std::string out = sentence;
  for (auto it = hits.rbegin(); it != hits.rend(); ++it) out.replace(*it, word.size(), "___");
  std::istringstream words(out);
  std::string w;
  int n = 0;
  while (words >> w) ++n;
  return n >= 3 ? out : "";
}

McTask example_cloze(const Lexicon& lex, size_t max) {
  std::vector<Candidate> cands;
  for (const auto& s : lex.synsets) {
    const auto examples = gloss_examples(s.gloss);
    bool found = false;
    for (size_t w = 0; w < s.words.size() && !found; ++w)
      for (const auto& ex : examples) {
        auto text = blank_out(ex, s.words[w]);
        if (text.empty()) continue;
        text += "\nThe missing word is";
        // The answer must not show through, inside a longer word ("miss" in "missing") or so.
        if (lower(text).find(lower(s.words[w])) != std::string::npos) continue;
        cands.push_back({&s, s.words[w], text, s.words[w]});
        found = true;
        break;
      }
  }
  const auto pools = pos_pools(lex, true);
  TaskRecipe recipe{
      [&](const Candidate& c) -> const Pool& { return pools.at(pos_class(c.synset->pos)); },
      [](const Candidate&) { return WordSet{}; }, true};
  return assemble("example_cloze", cands, max, recipe, lex);
}

using Builder = McTask (*)(const Lexicon&, size_t);

const std::vector<std::pair<std::string, Builder>>& builders() {
  static const std::vector<std::pair<std::string, Builder>> all = {
      {"definition_to_word", definition_to_word},
      {"word_to_hypernym", word_to_hypernym},
      {"adjective_antonym", adjective_antonym},
      {"example_cloze", example_cloze}};
  return all;
}

}  // namespace

double wordnet_split_point(const std::string& offset, char pos) {
  // The same key and comparison as wordnet_instructions / wordnet_definitions.
  return double(stable_hash(offset + pos) % 1000000) / 1e6;
}

const std::vector<std::string>& wordnet_mc_task_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& b : builders()) out.push_back(b.first);
    return out;
  }();
  return names;
}

std::vector<McTask> wordnet_mc_tasks(const std::string& wordnet_dir, size_t max_per_split) {
  const Lexicon lex(wordnet_dir);
  std::vector<McTask> out;
  for (const auto& b : builders()) out.push_back(b.second(lex, max_per_split));
  return out;
}

McTask wordnet_mc_task(const std::string& name, const std::string& wordnet_dir,
                       size_t max_per_split) {
  for (const auto& b : builders())
    if (b.first == name) {
      const Lexicon lex(wordnet_dir);
      return b.second(lex, max_per_split);
    }
  std::string known;
  for (const auto& n : wordnet_mc_task_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("unknown WordNet task \"" + name + "\" (known: " + known + ")");
}

}  // namespace gt
