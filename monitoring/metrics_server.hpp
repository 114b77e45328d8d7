// Serves a Metrics registry over HTTP for Prometheus to scrape: GET /metrics answers
// prometheus-cpp's text serialization of the registry. (prometheus-cpp's own exposer runs on
// civetweb, whose worker threads fail to start inside a process that links LibTorch: "Cannot
// create threads"; our Boost.Beast server from control/ does the same job.)
#pragma once

#include <memory>
#include <string>

#include "control/http_server.hpp"
#include "monitoring/metrics.hpp"

namespace gt {

class MetricsServer {
 public:
  // `address` is HOST:PORT (IPv4 or localhost; port 0 = any free port). Throws gt::Error
  // naming the address when it is malformed or cannot be listened on.
  MetricsServer(const std::string& address, std::shared_ptr<Metrics> metrics);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const;
  std::string url() const;  // http://HOST:PORT/metrics

 private:
  std::string host_;
  std::shared_ptr<Metrics> metrics_;
  std::unique_ptr<HttpServer> http_;
};

inline constexpr const char* kDefaultMetricsAddress = "127.0.0.1:9464";

// "" and "0" mean no metrics endpoint.
inline bool metrics_enabled(const std::string& address) {
  return !address.empty() && address != "0";
}

}  // namespace gt
