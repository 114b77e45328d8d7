// Passages of GCIDE, the Collaborative International Dictionary of English (Debian
// `dict-gcide`, a dictd database): the public text a model owner's attacker trains its
// inversion models on by default. It is independent of the clients' WordNet-derived data
// (though GCIDE folds in some WordNet 1.5 glosses), and it is what opt-mini-gcide was
// pretrained on, as a model owner's own corpus would be.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace gt {

inline constexpr const char* kGcideDictPath = "/usr/share/dictd/gcide.dict.dz";

// Reads the dictd file (dictzip = gzip; plain text works too). Each paragraph (lines up to a
// blank line) becomes one passage with its markup removed: pronunciations (\Ab*an"don\),
// bracketed sources and etymologies ([1913 Webster], [L. ad + ...]), cross-reference braces,
// and "--Author" citations; whitespace is collapsed. The database header and licence
// paragraphs are skipped, as are passages shorter than 20 or longer than 300 characters.
// At most max_passages (0 = all), picked by a stable hash of the text, in file order.
// Throws gt::Error naming the file when it cannot be read or yields no passage.
std::vector<std::string> gcide_passages(const std::string& path, size_t max_passages);

}  // namespace gt
