// WordNet data-file parsing; format in wndb(5WN):
// offset lex_filenum ss_type w_cnt(hex) {word lex_id(hex)} p_cnt {symbol offset pos src/tgt}
// [frames] | gloss
#include "data/wordnet.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/error.hpp"

namespace gt {

std::vector<Synset> read_wordnet(const std::string& dir, const std::string& part) {
  const std::string path = dir + "/data." + part;
  std::ifstream in(path);
  if (!in) throw error_at(path, "cannot open WordNet data file (install Debian's wordnet-base)");
  std::vector<Synset> out;
  std::string line;
  for (size_t lineno = 1; std::getline(in, line); ++lineno) {
    if (line.empty() || line[0] == ' ') continue;  // license header lines start with two spaces
    auto bar = line.find(" | ");
    std::istringstream fields(line.substr(0, bar));
    auto bad = [&](const std::string& what) {
      return error_at(path + ":" + std::to_string(lineno), what);
    };
    Synset s;
    std::string lex_filenum, ss_type, w_cnt_hex;
    if (!(fields >> s.offset >> lex_filenum >> ss_type >> w_cnt_hex) || ss_type.size() != 1)
      throw bad("malformed synset header");
    s.pos = ss_type[0];
    const auto w_cnt = std::stoul(w_cnt_hex, nullptr, 16);
    for (unsigned long i = 0; i < w_cnt; ++i) {
      std::string word, lex_id;
      if (!(fields >> word >> lex_id)) throw bad("fewer words than w_cnt says");
      // Adjectives may carry a syntactic marker such as "(a)" or "(p)".
      if (auto paren = word.find('('); paren != std::string::npos) word.erase(paren);
      std::replace(word.begin(), word.end(), '_', ' ');
      s.words.push_back(word);
    }
    unsigned long p_cnt = 0;
    if (!(fields >> p_cnt)) throw bad("missing pointer count");
    for (unsigned long i = 0; i < p_cnt; ++i) {
      WordnetPointer p;
      std::string pos, source_target;
      if (!(fields >> p.symbol >> p.target >> pos >> source_target) || pos.size() != 1)
        throw bad("fewer pointers than p_cnt says");
      p.pos = pos[0];
      s.pointers.push_back(p);
    }
    if (bar != std::string::npos) {
      s.gloss = line.substr(bar + 3);
      while (!s.gloss.empty() && s.gloss.back() == ' ') s.gloss.pop_back();
    }
    out.push_back(std::move(s));
  }
  if (out.empty()) throw error_at(path, "no synsets found");
  return out;
}

const char* part_of_speech_name(char pos) {
  switch (pos) {
    case 'n':
      return "noun";
    case 'v':
      return "verb";
    case 'r':
      return "adverb";
    default:
      return "adjective";
  }
}

std::string gloss_definition(const std::string& gloss) {
  // Examples follow as '; "..."', sometimes glued on without the space; some
  // adjective and adverb glosses start with spaces.
  auto def = gloss.substr(0, std::min(gloss.find("; \""), gloss.find(";\"")));
  const auto first = def.find_first_not_of(" ;");
  const auto last = def.find_last_not_of(" ;");
  return first == std::string::npos ? "" : def.substr(first, last - first + 1);
}

}  // namespace gt
