// See metrics_options.hpp.
#include "apps/metrics_options.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "common/error.hpp"

namespace gt::cli {

void MetricsOptions::add_to(CLI::App& cmd) {
  cmd.add_option("--metrics", address,
                 "Prometheus metrics endpoint HOST:PORT (port 0 = any free port); 0 = none")
      ->capture_default_str();
  cmd.add_option("--metrics-hold", hold_seconds,
                 "seconds to keep serving metrics after the run, for a last scrape")
      ->check(CLI::NonNegativeNumber);
}

std::unique_ptr<MetricsServer> MetricsOptions::serve(
    const std::shared_ptr<Metrics>& metrics) const {
  if (!metrics_enabled(address)) return nullptr;
  try {
    auto server = std::make_unique<MetricsServer>(address, metrics);
    std::printf("metrics   %s\n", server->url().c_str());
    std::fflush(stdout);
    return server;
  } catch (const Error& e) {
    if (address != kDefaultMetricsAddress) throw;
    spdlog::warn(
        "{}; running without a metrics endpoint (choose one with --metrics HOST:PORT, "
        "or --metrics 0)",
        e.what());
    return nullptr;
  }
}

void MetricsOptions::hold(const std::unique_ptr<MetricsServer>& server) const {
  if (!server || hold_seconds <= 0) return;
  std::printf("metrics   still served for %.0f s\n", hold_seconds);
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::duration<double>(hold_seconds));
}

}  // namespace gt::cli
