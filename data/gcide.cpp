// See gcide.hpp.
#include "data/gcide.hpp"

#include <zlib.h>

#include <memory>

#include "common/error.hpp"
#include "common/stable_hash.hpp"

namespace gt {
namespace {

// Removes every span from `open` to the next `close` (inclusive); an unclosed span is kept.
std::string without_spans(const std::string& s, char open, char close) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == open) {
      const auto end = s.find(close, i + 1);
      if (end != std::string::npos) {
        i = end;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

std::string clean(std::string p) {
  p = without_spans(p, '\\', '\\');  // pronunciation
  p = without_spans(p, '[', ']');    // sources, etymologies
  if (const auto cite = p.find(" --"); cite != std::string::npos) p.resize(cite);
  std::string out;
  for (char c : p) {
    if (c == '{' || c == '}') continue;
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

bool boilerplate(const std::string& p) {
  for (const char* marker : {"00-database", "GCIDE", "GNU", "Free Software", "* * *", "Begin file",
                             "End of file", "WARRANTY", "License", "ftp://"})
    if (p.find(marker) != std::string::npos) return true;
  return false;
}

}  // namespace

std::vector<std::string> gcide_passages(const std::string& path, size_t max_passages) {
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file(gzopen(path.c_str(), "rb"), gzclose);
  if (!file)
    throw error_at(path,
                   "cannot read GCIDE (install Debian's dict-gcide, or set "
                   "attacker.public_data to a text file)");
  std::vector<std::string> all;
  std::string paragraph;
  auto flush = [&] {
    if (!paragraph.empty() && !boilerplate(paragraph)) {
      // swap, not push_back(std::move(text)): gcc 12 at -O3 warns falsely (-Warray-bounds) on
      // the inlined move of a string whose size it has narrowed.
      auto text = clean(paragraph);
      if (text.size() >= 20 && text.size() <= 300) all.emplace_back().swap(text);
    }
    paragraph.clear();
  };
  char buf[8192];
  while (gzgets(file.get(), buf, sizeof buf)) {
    std::string line(buf);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) {
      flush();
    } else {
      paragraph += (paragraph.empty() ? "" : " ") + line;
    }
  }
  int err = Z_OK;
  gzerror(file.get(), &err);
  if (err != Z_OK && err != Z_STREAM_END) throw error_at(path, "corrupt GCIDE file");
  flush();
  if (all.empty()) throw error_at(path, "no GCIDE passage found");
  if (max_passages == 0 || all.size() <= max_passages) return all;
  // Keep a hash-chosen share, then trim to the cap: independent of file order details.
  std::vector<std::string> kept;
  const double share = double(max_passages) / double(all.size()) * 1.1;
  for (auto& p : all)
    if (double(stable_hash(p) % 1000000) / 1e6 < share && kept.size() < max_passages)
      kept.push_back(std::move(p));
  return kept;
}

}  // namespace gt
