// See run_log.hpp.
#include "strategies/run_log.hpp"

namespace gt {
namespace {

nlohmann::json bytes_json(const std::map<WireStats::Key, int64_t>& bytes) {
  auto out = nlohmann::json::array();
  for (const auto& [key, n] : bytes)
    out.push_back({{"link", std::get<0>(key)},
                   {"direction", std::get<1>(key)},
                   {"kind", std::get<2>(key)},
                   {"bytes", n}});
  return out;
}

std::map<WireStats::Key, int64_t> cumulative(const WireStats& stats) {
  std::map<WireStats::Key, int64_t> out;
  for (const auto& [key, c] : stats.snapshot()) out[key] = c.bytes;
  return out;
}

// Byte maps as [[link, direction, kind, bytes], ...]: keys are tuples, not strings.
nlohmann::json keyed_state(const std::map<WireStats::Key, int64_t>& bytes) {
  auto out = nlohmann::json::array();
  for (const auto& [key, n] : bytes)
    out.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), n});
  return out;
}

std::map<WireStats::Key, int64_t> keyed_from(const nlohmann::json& j) {
  std::map<WireStats::Key, int64_t> out;
  for (const auto& e : j)
    out[{e.at(0).get<std::string>(), e.at(1).get<std::string>(), e.at(2).get<std::string>()}] =
        e.at(3).get<int64_t>();
  return out;
}

}  // namespace

bool is_step_kind(const std::string& kind) {
  return kind == "activations_up" || kind == "activations_down" || kind == "gradients_up" ||
         kind == "gradients_down" || kind == "raw_data_up";
}

void RunLog::begin_phase(int64_t index, const std::string& strategy, const WireStats& stats) {
  PhaseRecord p;
  p.index = index;
  p.strategy = strategy;
  p.strategies = {strategy};
  p.first_step = steps_.empty() ? 1 : steps_.back().step + 1;
  phases_.push_back(p);
  phase_start_ = cumulative(stats);
}

void RunLog::note_strategy(const std::string& strategy) {
  if (!phases_.empty() && phases_.back().strategies.back() != strategy)
    phases_.back().strategies.push_back(strategy);
}

PhaseRecord& RunLog::end_phase(const WireStats& stats, double seconds) {
  auto& p = phases_.back();
  p.last_step = steps_.empty() ? 0 : steps_.back().step;
  p.seconds = seconds;
  for (const auto& [key, n] : cumulative(stats))
    if (n != phase_start_[key]) p.bytes[key] = n - phase_start_[key];
  return p;
}

void RunLog::add_step(StepRecord record, const WireStats& stats) {
  for (const auto& [key, count] : stats.snapshot()) {
    const auto delta = count.bytes - seen_[key];
    if (delta != 0 && is_step_kind(std::get<2>(key))) record.bytes[key] = delta;
    seen_[key] = count.bytes;
  }
  steps_.push_back(std::move(record));
}

void RunLog::note_retry(const WireStats& stats) {
  for (const auto& [key, count] : stats.snapshot()) {
    if (!is_step_kind(std::get<2>(key))) continue;
    if (const auto delta = count.bytes - seen_[key]; delta != 0) retried_[key] += delta;
    seen_[key] = count.bytes;
  }
}

int64_t RunLog::step_bytes(const std::string& direction) const {
  int64_t n = 0;
  for (const auto& s : steps_)
    for (const auto& [key, b] : s.bytes)
      if (direction.empty() || std::get<1>(key) == direction) n += b;
  return n;
}

nlohmann::json RunLog::to_json(const WireStats& stats, double wall_seconds) const {
  nlohmann::json j;
  j["steps"] = nlohmann::json::array();
  for (const auto& s : steps_)
    j["steps"].push_back({{"step", s.step},
                          {"strategy", s.strategy},
                          {"loss", s.loss},
                          {"dcor", s.dcor},
                          {"inverter_accuracy", s.inverter_accuracy},
                          {"a1_quant_error", s.a1_quant_error},
                          {"seconds", s.seconds},
                          {"bytes", bytes_json(s.bytes)}});
  j["evals"] = nlohmann::json::array();
  for (const auto& e : evals_)
    j["evals"].push_back(
        {{"step", e.step}, {"loss", e.loss}, {"perplexity", e.perplexity}, {"tokens", e.tokens}});
  j["phases"] = nlohmann::json::array();
  for (const auto& p : phases_) {
    int64_t up = 0, down = 0;
    for (const auto& s : steps_)
      if (s.step >= p.first_step && s.step <= p.last_step)
        for (const auto& [key, b] : s.bytes) (std::get<1>(key) == "up" ? up : down) += b;
    j["phases"].push_back({{"index", p.index},
                           {"strategy", p.strategy},
                           {"strategies", p.strategies},
                           {"first_step", p.first_step},
                           {"last_step", p.last_step},
                           {"step_bytes_up", up},
                           {"step_bytes_down", down},
                           {"seconds", p.seconds},
                           {"bytes", bytes_json(p.bytes)}});
  }
  std::map<WireStats::Key, int64_t> all;
  nlohmann::json messages = nlohmann::json::array();
  for (const auto& [key, c] : stats.snapshot()) {
    all[key] = c.bytes;
    messages.push_back({{"link", std::get<0>(key)},
                        {"direction", std::get<1>(key)},
                        {"kind", std::get<2>(key)},
                        {"messages", c.messages}});
  }
  int64_t retried = 0;
  for (const auto& [key, b] : retried_) retried += b;
  j["totals"] = {{"steps", steps_.size()},
                 {"retried_step_bytes", retried},
                 {"retried_bytes", bytes_json(retried_)},
                 {"step_bytes_up", step_bytes("up")},
                 {"step_bytes_down", step_bytes("down")},
                 {"bytes_per_step", steps_.empty() ? 0 : step_bytes() / int64_t(steps_.size())},
                 {"all_bytes", bytes_json(all)},
                 {"messages", messages},
                 {"wall_seconds", wall_seconds}};
  return j;
}

nlohmann::json RunLog::state() const {
  nlohmann::json j;
  j["steps"] = nlohmann::json::array();
  for (const auto& s : steps_)
    j["steps"].push_back({s.step, s.strategy, s.loss, s.dcor, s.a1_quant_error, s.seconds,
                          keyed_state(s.bytes), s.inverter_accuracy});
  j["evals"] = nlohmann::json::array();
  for (const auto& e : evals_) j["evals"].push_back({e.step, e.loss, e.perplexity, e.tokens});
  j["phases"] = nlohmann::json::array();
  for (const auto& p : phases_)
    j["phases"].push_back({p.index, p.strategy, p.strategies, p.first_step, p.last_step, p.seconds,
                           keyed_state(p.bytes)});
  j["phase_start"] = keyed_state(phase_start_);
  j["seen"] = keyed_state(seen_);
  j["retried"] = keyed_state(retried_);
  return j;
}

RunLog RunLog::from_state(const nlohmann::json& j) {
  RunLog log;
  for (const auto& s : j.at("steps"))
    log.steps_.push_back({s.at(0).get<int64_t>(), s.at(1).get<std::string>(), s.at(2).get<double>(),
                          s.at(3).get<double>(), s.at(4).get<double>(), s.at(5).get<double>(),
                          keyed_from(s.at(6)), s.size() > 7 ? s.at(7).get<double>() : -1.0});
  for (const auto& e : j.at("evals"))
    log.evals_.push_back({e.at(0).get<int64_t>(), e.at(1).get<double>(), e.at(2).get<double>(),
                          e.at(3).get<int64_t>()});
  for (const auto& p : j.at("phases"))
    log.phases_.push_back({p.at(0).get<int64_t>(), p.at(1).get<std::string>(),
                           p.at(2).get<std::vector<std::string>>(), p.at(3).get<int64_t>(),
                           p.at(4).get<int64_t>(), p.at(5).get<double>(), keyed_from(p.at(6))});
  log.phase_start_ = keyed_from(j.at("phase_start"));
  log.seen_ = keyed_from(j.at("seen"));
  if (j.contains("retried")) log.retried_ = keyed_from(j.at("retried"));
  return log;
}

}  // namespace gt
