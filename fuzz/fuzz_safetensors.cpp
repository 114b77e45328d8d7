// libFuzzer target: arbitrary bytes as a safetensors file (models/safetensors.hpp).
// The reader opens, maps and validates a file by path, so each input is written
// to an in-memory file (memfd) and opened through /proc/self/fd. The contract:
// the constructor either succeeds or throws gt::Error, and every tensor of a file
// it accepts reads back with exactly the bytes its entry spans. Any other
// exception, a crash, a sanitizer report or a large allocation is a finding.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/error.hpp"
#include "models/safetensors.hpp"

namespace {

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_safetensors: %s\n", what.c_str());
  std::abort();
}

// One in-memory file, rewritten for every input.
struct MemFile {
  int fd = -1;
  std::string path;
  MemFile() {
    fd = ::memfd_create("fuzz.safetensors", MFD_CLOEXEC);
    if (fd < 0) finding("memfd_create failed");
    path = "/proc/self/fd/" + std::to_string(fd);
  }
  void write(const uint8_t* data, size_t size) {
    if (::ftruncate(fd, 0) != 0) finding("ftruncate failed");
    size_t done = 0;
    while (done < size) {
      const ssize_t w = ::pwrite(fd, data + done, size - done, static_cast<off_t>(done));
      if (w <= 0) finding("pwrite failed");
      done += static_cast<size_t>(w);
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static MemFile file;
  file.write(data, size);
  try {
    gt::SafetensorsFile st(file.path);
    for (const auto& name : st.names()) {
      const gt::TensorEntry& e = st.entry(name);
      try {
        const torch::Tensor t = st.tensor(name);
        if (static_cast<uint64_t>(t.numel()) * t.element_size() != e.end - e.begin)
          finding("tensor '" + name + "' reads back a size its entry does not span");
        if (t.sizes().vec() != e.shape) finding("tensor '" + name + "' has the wrong shape");
      } catch (const gt::Error&) {
        // e.g. a BOOL byte that is not 0 or 1: a clean rejection
      }
    }
    (void)st.metadata();
  } catch (const gt::Error&) {
  }
  return 0;
}
