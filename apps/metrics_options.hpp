// --metrics and --metrics-hold, shared by every command that runs parties (simulate, node).
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "monitoring/metrics.hpp"
#include "monitoring/metrics_server.hpp"

namespace gt::cli {

struct MetricsOptions {
  std::string address = kDefaultMetricsAddress;
  double hold_seconds = 0;  // the endpoint stays up this long after the run

  void add_to(CLI::App& cmd);
  // Serves `metrics` and prints the scrape URL; null when disabled. An explicit address must
  // work (gt::Error otherwise); the default one, when taken (another run), only costs a warning.
  std::unique_ptr<MetricsServer> serve(const std::shared_ptr<Metrics>& metrics) const;
  // After the run: keeps `server` up for hold_seconds, so a scraper gets the final numbers.
  void hold(const std::unique_ptr<MetricsServer>& server) const;
};

}  // namespace gt::cli
