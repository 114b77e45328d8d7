// See progress.hpp.
#include "common/progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace gt {

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)),
      total_(total > 0 ? total : 1),
      tty_(isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()) {}

void Progress::update(int64_t done, const std::string& status) {
  draw(done, status, false);
}

void Progress::finish(const std::string& status) {
  draw(total_, status, true);
}

void Progress::draw(int64_t done, const std::string& status, bool final) {
  const double frac = std::min(1.0, double(done) / double(total_));
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = secs > 0 ? done / secs : 0.0;
  if (tty_) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(frac * kWidth);
    std::string bar(filled, '=');
    if (filled < kWidth) bar += '>' + std::string(kWidth - filled - 1, ' ');
    std::fprintf(stderr, "\r%s [%s] %lld/%lld %.1f/s %s\033[K%s", label_.c_str(), bar.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total_), rate, status.c_str(),
                 final ? "\n" : "");
  } else {
    const int decile = static_cast<int>(frac * 10);
    if (decile == last_decile_ && !final) return;
    last_decile_ = decile;
    std::fprintf(stderr, "%s %lld/%lld (%.0f%%) %.1f/s %s\n", label_.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total_), frac * 100, rate,
                 status.c_str());
  }
  std::fflush(stderr);
}

}  // namespace gt
