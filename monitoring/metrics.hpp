// The Prometheus metrics of a run (docs/metrics.md lists them): wire bytes and messages by
// link/direction/kind/strategy, step loss, steps, step seconds, quantization error, attack
// ROUGE-L, the current strategy, emulator transfer progress. One registry per process; the
// parties record into it, an exposer serves it (monitoring/metrics_server.hpp).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>

namespace gt {

class Metrics {
 public:
  Metrics();

  // One message on the wire, as the codec counted it (WireStats).
  void add_wire(const std::string& link, const std::string& direction, const std::string& kind,
                const std::string& strategy, int64_t bytes);
  // One optimizer step of a client; quant_error: largest abs error of its a1 on the wire.
  void add_step(const std::string& client, const std::string& strategy, double loss, double seconds,
                double quant_error);
  // The client's strategy now: 1 on it, 0 on the ones it ran before.
  void set_strategy(const std::string& client, const std::string& strategy);
  void set_attack_score(const std::string& client, const std::string& strategy,
                        const std::string& attack, double rouge_l);
  void set_transfer(const std::string& client, const std::string& strategy, int64_t done,
                    int64_t total);
  // Server: a message or session it refused, by reason ("version", "full", "too_large",
  // "not_owner", "invalid"); sessions open now; sessions dropped after the idle timeout.
  void add_refused(const std::string& kind, const std::string& reason);
  void set_sessions(int64_t open);
  // The server's generations (issue 18): KV-cache bytes of every open one, and positions run.
  void set_generation_cache(int64_t bytes, int64_t generations);
  void add_generation_positions(int64_t positions);
  void add_session_timeout();
  // gtune serve: one completion done ("stop", "length" or "cancelled": the reader went away),
  // its new tokens, seconds to its first token and its tokens per second after that.
  void add_completion(const std::string& finish_reason, int64_t tokens,
                      double seconds_to_first_token, double tokens_per_second);
  // Plugged adapters the server holds in memory, and how many it has evicted to disk so far.
  void set_plugged_adapters(int64_t bytes_in_memory, int64_t evictions);
  // A split completion's generation messages (both ways, the prompt's included) per new token.
  void add_completion_wire_bytes_per_token(double bytes);
  // Client: a reconnection to a lost server; a run resumed from a checkpoint at `step`.
  void add_reconnect(const std::string& client);
  void set_resumed_from(const std::string& client, int64_t step);

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  // The text exposition format, as a scrape returns it.
  std::string text() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& wire_bytes_;
  prometheus::Family<prometheus::Counter>& wire_messages_;
  prometheus::Family<prometheus::Gauge>& step_loss_;
  prometheus::Family<prometheus::Counter>& steps_;
  prometheus::Family<prometheus::Histogram>& step_seconds_;
  prometheus::Family<prometheus::Gauge>& quant_error_;
  prometheus::Family<prometheus::Gauge>& attack_rouge_;
  prometheus::Family<prometheus::Gauge>& strategy_info_;
  prometheus::Family<prometheus::Gauge>& transfer_done_;
  prometheus::Family<prometheus::Gauge>& transfer_total_;
  prometheus::Family<prometheus::Counter>& refused_;
  prometheus::Family<prometheus::Gauge>& sessions_;
  prometheus::Family<prometheus::Gauge>& generation_cache_bytes_;
  prometheus::Family<prometheus::Gauge>& generations_;
  prometheus::Family<prometheus::Counter>& generation_positions_;
  prometheus::Family<prometheus::Counter>& session_timeouts_;
  prometheus::Family<prometheus::Counter>& completions_;
  prometheus::Family<prometheus::Counter>& completion_tokens_;
  prometheus::Family<prometheus::Histogram>& first_token_seconds_;
  prometheus::Family<prometheus::Histogram>& tokens_per_second_;
  prometheus::Family<prometheus::Histogram>& wire_bytes_per_token_;
  prometheus::Family<prometheus::Gauge>& plugged_bytes_;
  prometheus::Family<prometheus::Gauge>& plugged_evictions_;
  prometheus::Family<prometheus::Counter>& reconnects_;
  prometheus::Family<prometheus::Gauge>& resumed_from_;
  mutable std::mutex mutex_;  // strategy_info's label sets
  std::set<std::pair<std::string, std::string>> strategies_seen_;
};

}  // namespace gt
