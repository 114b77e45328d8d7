// A one-line progress bar on stderr for long work: redrawn in place on a
// terminal, a plain line every ~10% otherwise (logs stay readable).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace gt {

class Progress {
 public:
  Progress(std::string label, int64_t total);
  // `done` units finished; `status` is appended (e.g. "loss 2.31").
  void update(int64_t done, const std::string& status = "");
  void finish(const std::string& status = "");

 private:
  void draw(int64_t done, const std::string& status, bool final);

  std::string label_;
  int64_t total_;
  bool tty_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace gt
