// The Prometheus metrics registry: names, labels and values as a scrape shows them, and the
// endpoint that serves them.
#include <doctest/doctest.h>

#include <string>

#include "common/error.hpp"
#include "control/http_client.hpp"
#include "monitoring/metrics.hpp"
#include "monitoring/metrics_server.hpp"
#include "protocols/codec.hpp"

using doctest::Contains;

namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("metrics: wire counters follow WireStats through its observer") {
  auto metrics = std::make_shared<gt::Metrics>();
  gt::WireStats stats;
  stats.set_observer([&](const gt::WireStats::Key& k, int64_t bytes) {
    metrics->add_wire(std::get<0>(k), std::get<1>(k), std::get<2>(k), "online", bytes);
  });
  stats.add("c-server", "up", "activations_up", 1000);
  stats.add("c-server", "up", "activations_up", 24);
  stats.add("c-server", "down", "gradients_down", 7);
  const auto text = metrics->text();
  CHECK(has_line(text,
                 "gtune_wire_bytes_total{direction=\"up\",kind=\"activations_up\","
                 "link=\"c-server\",strategy=\"online\"} 1024"));
  CHECK(has_line(text,
                 "gtune_wire_messages_total{direction=\"up\",kind=\"activations_up\","
                 "link=\"c-server\",strategy=\"online\"} 2"));
  CHECK(has_line(text,
                 "gtune_wire_bytes_total{direction=\"down\",kind=\"gradients_down\","
                 "link=\"c-server\",strategy=\"online\"} 7"));
  CHECK(stats.total_bytes() == 1031);  // counting itself is unchanged
}

TEST_CASE("metrics: steps, strategy info, attacks and transfers") {
  gt::Metrics m;
  m.set_strategy("c0", "offline");
  m.add_step("c0", "offline", 4.5, 0.2, 0.0);
  m.set_strategy("c0", "online");
  m.add_step("c0", "online", 3.25, 0.3, 0.01);
  m.set_attack_score("c0", "online", "learned_inversion_a1", 0.75);
  m.set_transfer("c0", "offline", 512, 2048);
  const auto text = m.text();
  CHECK(has_line(text, "gtune_strategy_info{client=\"c0\",strategy=\"online\"} 1"));
  CHECK(has_line(text, "gtune_strategy_info{client=\"c0\",strategy=\"offline\"} 0"));
  CHECK(has_line(text, "gtune_steps_total{client=\"c0\",strategy=\"online\"} 1"));
  CHECK(has_line(text, "gtune_step_loss{client=\"c0\",strategy=\"online\"} 3.25"));
  CHECK(has_line(text, "gtune_step_seconds_count{client=\"c0\",strategy=\"online\"} 1"));
  CHECK(has_line(text, "gtune_quantization_error{client=\"c0\",tensor=\"a1\"} 0.01"));
  CHECK(has_line(text,
                 "gtune_attack_rougel{attack=\"learned_inversion_a1\",client=\"c0\","
                 "strategy=\"online\"} 0.75"));
  CHECK(has_line(text, "gtune_emulator_transfer_bytes{client=\"c0\",strategy=\"offline\"} 512"));
  CHECK(has_line(text, "gtune_emulator_size_bytes{client=\"c0\",strategy=\"offline\"} 2048"));
}

TEST_CASE("metrics server: GET /metrics serves the registry, bad addresses are errors") {
  auto metrics = std::make_shared<gt::Metrics>();
  metrics->add_step("c0", "split", 1.5, 0.1, 0);
  gt::MetricsServer server("127.0.0.1:0", metrics);
  CHECK(server.port() > 0);
  CHECK(server.url() == "http://127.0.0.1:" + std::to_string(server.port()) + "/metrics");
  const auto port = uint16_t(server.port());
  const auto page =
      gt::http_call("127.0.0.1", port, "GET", "/metrics", "", std::chrono::seconds(5));
  CHECK(page.status == 200);
  CHECK(page.content_type.rfind("text/plain; version=0.0.4", 0) == 0);
  CHECK(has_line(page.text, "gtune_step_loss{client=\"c0\",strategy=\"split\"} 1.5"));
  CHECK(page.text == metrics->text());
  CHECK(gt::http_call("127.0.0.1", port, "GET", "/other", "", std::chrono::seconds(5)).status ==
        404);
  CHECK_THROWS_WITH_AS(gt::MetricsServer("nonsense", metrics), Contains("metrics address"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(gt::MetricsServer("127.0.0.1:" + std::to_string(server.port()), metrics),
                       Contains("metrics: cannot listen"), gt::Error);
}
