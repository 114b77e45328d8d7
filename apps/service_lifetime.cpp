// See service_lifetime.hpp.
#include "apps/service_lifetime.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

namespace gt::cli {
namespace {

std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) {
  g_stop = true;
}

}  // namespace

void write_port_file(const std::string& path, uint16_t port) {
  if (path.empty()) return;
  std::ofstream(path + ".tmp") << port << "\n";
  std::rename((path + ".tmp").c_str(), path.c_str());
}

void exit_if_shutdown_hangs(const std::string& who, double grace_seconds) {
  std::fflush(stdout);
  std::thread([who, grace_seconds] {
    std::this_thread::sleep_for(std::chrono::duration<double>(grace_seconds));
    std::fprintf(stderr, "%s: shutdown did not finish in %.0f s; exiting (work and outputs done)\n",
                 who.c_str(), grace_seconds);
    std::fflush(stderr);
    std::_Exit(0);
  }).detach();
}

void wait_for_signal() {
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

}  // namespace gt::cli
