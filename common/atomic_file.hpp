// Files written whole or not at all: a reader (or a process restarted after kill -9) finds
// the old content or the new one, never half of either.
#pragma once

#include <string>
#include <string_view>

namespace gt {

// Writes `content` to `path` through `<path>.tmp` and a rename; creates the parent directory.
// With `durable` the data reaches the disk (fsync) before the rename, so a power loss keeps
// it too. Throws gt::Error naming the path and the system's reason.
void write_file_atomically(const std::string& path, std::string_view content, bool durable = false);

}  // namespace gt
