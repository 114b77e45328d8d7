// See atomic_file.hpp.
#include "common/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "common/error.hpp"

namespace gt {

void write_file_atomically(const std::string& path, std::string_view content, bool durable) {
  const auto parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) throw error_at(parent.string(), "cannot create the directory: " + ec.message());
  const auto tmp = path + ".tmp";
  const auto fail = [&](const char* what) {
    const std::string reason = std::strerror(errno);
    std::remove(tmp.c_str());
    return error_at(path, std::string(what) + ": " + reason);
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw fail("cannot write");
  for (size_t done = 0; done < content.size();) {
    const auto n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      throw fail("cannot write");
    }
    done += size_t(n);
  }
  if (durable && ::fsync(fd) != 0) {
    ::close(fd);
    throw fail("cannot flush to disk");
  }
  if (::close(fd) != 0) throw fail("cannot write");
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw fail("cannot replace");
}

}  // namespace gt
