// See metrics.hpp.
#include "monitoring/metrics.hpp"

#include <prometheus/text_serializer.h>

namespace gt {
namespace {

prometheus::Histogram::BucketBoundaries step_buckets() {
  return {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}

prometheus::Histogram::BucketBoundaries rate_buckets() {
  return {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
}

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      wire_bytes_(prometheus::BuildCounter()
                      .Name("gtune_wire_bytes_total")
                      .Help("Bytes of encoded protocol messages, as on the wire")
                      .Register(*registry_)),
      wire_messages_(prometheus::BuildCounter()
                         .Name("gtune_wire_messages_total")
                         .Help("Protocol messages")
                         .Register(*registry_)),
      step_loss_(prometheus::BuildGauge()
                     .Name("gtune_step_loss")
                     .Help("Training loss of the client's last step")
                     .Register(*registry_)),
      steps_(prometheus::BuildCounter()
                 .Name("gtune_steps_total")
                 .Help("Optimizer steps")
                 .Register(*registry_)),
      step_seconds_(prometheus::BuildHistogram()
                        .Name("gtune_step_seconds")
                        .Help("Wall time of a training step")
                        .Register(*registry_)),
      quant_error_(prometheus::BuildGauge()
                       .Name("gtune_quantization_error")
                       .Help("Largest absolute error of the last a1 sent (0 when not quantized)")
                       .Register(*registry_)),
      attack_rouge_(prometheus::BuildGauge()
                        .Name("gtune_attack_rougel")
                        .Help("Mean ROUGE-L F1 of an attack's reconstructions so far")
                        .Register(*registry_)),
      strategy_info_(prometheus::BuildGauge()
                         .Name("gtune_strategy_info")
                         .Help("1 for the strategy a client runs now, 0 for earlier ones")
                         .Register(*registry_)),
      transfer_done_(prometheus::BuildGauge()
                         .Name("gtune_emulator_transfer_bytes")
                         .Help("Emulator bytes a client has received (resumed bytes included)")
                         .Register(*registry_)),
      transfer_total_(prometheus::BuildGauge()
                          .Name("gtune_emulator_size_bytes")
                          .Help("Size of the emulator file a client downloads")
                          .Register(*registry_)),
      refused_(prometheus::BuildCounter()
                   .Name("gtune_refused_total")
                   .Help("Messages and sessions the server refused, by kind and reason")
                   .Register(*registry_)),
      sessions_(prometheus::BuildGauge()
                    .Name("gtune_sessions")
                    .Help("Sessions the server has open")
                    .Register(*registry_)),
      generation_cache_bytes_(prometheus::BuildGauge()
                                  .Name("gtune_generation_cache_bytes")
                                  .Help("KV-cache bytes the server holds for open generations "
                                        "(bounded by server.max_cache_mb)")
                                  .Register(*registry_)),
      generations_(prometheus::BuildGauge()
                       .Name("gtune_generations")
                       .Help("Generations the server has open")
                       .Register(*registry_)),
      generation_positions_(prometheus::BuildCounter()
                                .Name("gtune_generation_positions_total")
                                .Help("Positions (prompt tokens and new tokens) the server's "
                                      "backbone ran for generations")
                                .Register(*registry_)),
      session_timeouts_(prometheus::BuildCounter()
                            .Name("gtune_session_timeouts_total")
                            .Help("Sessions the server dropped after server.session_timeout idle")
                            .Register(*registry_)),
      completions_(prometheus::BuildCounter()
                       .Name("gtune_completions_total")
                       .Help("Completions gtune serve answered, by finish reason")
                       .Register(*registry_)),
      completion_tokens_(prometheus::BuildCounter()
                             .Name("gtune_completion_tokens_total")
                             .Help("Tokens gtune serve generated")
                             .Register(*registry_)),
      first_token_seconds_(prometheus::BuildHistogram()
                               .Name("gtune_time_to_first_token_seconds")
                               .Help("Seconds from a completion's start to its first token")
                               .Register(*registry_)),
      tokens_per_second_(prometheus::BuildHistogram()
                             .Name("gtune_completion_tokens_per_second")
                             .Help("A completion's tokens per second after its first")
                             .Register(*registry_)),
      wire_bytes_per_token_(
          prometheus::BuildHistogram()
              .Name("gtune_completion_wire_bytes_per_token")
              .Help("A split completion's generation bytes (both ways, prompt included) per token")
              .Register(*registry_)),
      plugged_bytes_(prometheus::BuildGauge()
                         .Name("gtune_plugged_adapters_bytes")
                         .Help("Plugged adapters (offline designs) the server holds in memory")
                         .Register(*registry_)),
      plugged_evictions_(prometheus::BuildGauge()
                             .Name("gtune_plugged_adapters_evictions")
                             .Help("Plugged adapters moved out of memory (read back from disk)")
                             .Register(*registry_)),
      reconnects_(prometheus::BuildCounter()
                      .Name("gtune_reconnects_total")
                      .Help("Times a client reached its server again after losing it")
                      .Register(*registry_)),
      resumed_from_(prometheus::BuildGauge()
                        .Name("gtune_resumed_from_step")
                        .Help("The step a client resumed from a checkpoint at (0 = fresh run)")
                        .Register(*registry_)) {}

void Metrics::add_refused(const std::string& kind, const std::string& reason) {
  refused_.Add({{"kind", kind}, {"reason", reason}}).Increment();
}

void Metrics::set_sessions(int64_t open) {
  sessions_.Add({}).Set(double(open));
}

void Metrics::set_generation_cache(int64_t bytes, int64_t generations) {
  generation_cache_bytes_.Add({}).Set(double(bytes));
  generations_.Add({}).Set(double(generations));
}

void Metrics::add_generation_positions(int64_t positions) {
  generation_positions_.Add({}).Increment(double(positions));
}

void Metrics::add_session_timeout() {
  session_timeouts_.Add({}).Increment();
}

void Metrics::add_completion(const std::string& finish_reason, int64_t tokens,
                             double seconds_to_first_token, double tokens_per_second) {
  completions_.Add({{"finish_reason", finish_reason}}).Increment();
  completion_tokens_.Add({}).Increment(double(tokens));
  first_token_seconds_.Add({}, step_buckets()).Observe(seconds_to_first_token);
  if (tokens > 1) tokens_per_second_.Add({}, rate_buckets()).Observe(tokens_per_second);
}

void Metrics::set_plugged_adapters(int64_t bytes_in_memory, int64_t evictions) {
  plugged_bytes_.Add({}).Set(double(bytes_in_memory));
  plugged_evictions_.Add({}).Set(double(evictions));
}

void Metrics::add_completion_wire_bytes_per_token(double bytes) {
  wire_bytes_per_token_
      .Add({}, prometheus::Histogram::BucketBoundaries{1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5,
                                                       1e6})
      .Observe(bytes);
}

void Metrics::add_reconnect(const std::string& client) {
  reconnects_.Add({{"client", client}}).Increment();
}

void Metrics::set_resumed_from(const std::string& client, int64_t step) {
  resumed_from_.Add({{"client", client}}).Set(double(step));
}

void Metrics::add_wire(const std::string& link, const std::string& direction,
                       const std::string& kind, const std::string& strategy, int64_t bytes) {
  const prometheus::Labels labels{
      {"link", link}, {"direction", direction}, {"kind", kind}, {"strategy", strategy}};
  wire_bytes_.Add(labels).Increment(double(bytes));
  wire_messages_.Add(labels).Increment();
}

void Metrics::add_step(const std::string& client, const std::string& strategy, double loss,
                       double seconds, double quant_error) {
  const prometheus::Labels labels{{"client", client}, {"strategy", strategy}};
  step_loss_.Add(labels).Set(loss);
  steps_.Add(labels).Increment();
  step_seconds_.Add(labels, step_buckets()).Observe(seconds);
  quant_error_.Add({{"client", client}, {"tensor", "a1"}}).Set(quant_error);
}

void Metrics::set_strategy(const std::string& client, const std::string& strategy) {
  std::lock_guard<std::mutex> lock(mutex_);
  strategies_seen_.insert({client, strategy});
  for (const auto& [c, s] : strategies_seen_)
    if (c == client) strategy_info_.Add({{"client", c}, {"strategy", s}}).Set(s == strategy);
}

void Metrics::set_attack_score(const std::string& client, const std::string& strategy,
                               const std::string& attack, double rouge_l) {
  attack_rouge_.Add({{"client", client}, {"strategy", strategy}, {"attack", attack}}).Set(rouge_l);
}

void Metrics::set_transfer(const std::string& client, const std::string& strategy, int64_t done,
                           int64_t total) {
  const prometheus::Labels labels{{"client", client}, {"strategy", strategy}};
  transfer_done_.Add(labels).Set(double(done));
  transfer_total_.Add(labels).Set(double(total));
}

std::string Metrics::text() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace gt
