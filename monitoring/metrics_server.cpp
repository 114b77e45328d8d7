// See metrics_server.hpp.
#include "monitoring/metrics_server.hpp"

#include "common/error.hpp"
#include "control/address.hpp"

namespace gt {

MetricsServer::MetricsServer(const std::string& address, std::shared_ptr<Metrics> metrics)
    : metrics_(std::move(metrics)) {
  const auto hp = parse_host_port(address, "metrics address");
  host_ = hp.host;
  auto handler = [m = metrics_](const HttpRequest& req) {
    HttpAnswer a;
    if (req.method != "GET" || (req.target != "/metrics" && req.target.rfind("/metrics?", 0))) {
      a.status = 404;
      a.body = {{"error", "only GET /metrics is served here"}};
      return a;
    }
    a.content_type = "text/plain; version=0.0.4; charset=utf-8";
    a.text = m->text();
    return a;
  };
  try {
    http_ = std::make_unique<HttpServer>(hp.host, hp.port, handler);
  } catch (const Error& e) {
    throw Error(std::string("metrics: ") + e.what());
  }
}

MetricsServer::~MetricsServer() = default;

int MetricsServer::port() const {
  return http_->port();
}

std::string MetricsServer::url() const {
  return "http://" + host_ + ":" + std::to_string(port()) + "/metrics";
}

}  // namespace gt
