// See run_log.hpp.
#include "strategies/run_log.hpp"

#include <nlohmann/json.hpp>

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

}  // namespace

void RunLog::add_step(StepRecord record, const WireStats& stats) {
  for (const auto& [key, count] : stats.snapshot()) {
    const auto delta = count.bytes - seen_[key];
    const auto& kind = std::get<2>(key);
    const bool eval = kind.size() > 5 && kind.compare(kind.size() - 5, 5, ".eval") == 0;
    if (delta != 0 && !eval) record.bytes[key] = delta;  // evaluation traffic is not a step's cost
    seen_[key] = count.bytes;
  }
  steps_.push_back(std::move(record));
}

int64_t RunLog::step_bytes(const std::string& direction) const {
  int64_t n = 0;
  for (const auto& s : steps_)
    for (const auto& [key, b] : s.bytes)
      if (direction.empty() || std::get<1>(key) == direction) n += b;
  return n;
}

std::string RunLog::to_json(const std::string& config_toml, const WireStats& stats,
                            double wall_seconds) const {
  nlohmann::json j;
  j["config"] = config_toml;
  j["steps"] = nlohmann::json::array();
  for (const auto& s : steps_)
    j["steps"].push_back({{"step", s.step},
                          {"loss", s.loss},
                          {"dcor", s.dcor},
                          {"a1_quant_error", s.a1_quant_error},
                          {"seconds", s.seconds},
                          {"bytes", bytes_json(s.bytes)}});
  j["evals"] = nlohmann::json::array();
  for (const auto& e : evals_)
    j["evals"].push_back(
        {{"step", e.step}, {"loss", e.loss}, {"perplexity", e.perplexity}, {"tokens", e.tokens}});
  std::map<WireStats::Key, int64_t> all;
  nlohmann::json messages = nlohmann::json::array();
  for (const auto& [key, c] : stats.snapshot()) {
    all[key] = c.bytes;
    messages.push_back({{"link", std::get<0>(key)},
                        {"direction", std::get<1>(key)},
                        {"kind", std::get<2>(key)},
                        {"messages", c.messages}});
  }
  j["totals"] = {{"steps", steps_.size()},
                 {"step_bytes_up", step_bytes("up")},
                 {"step_bytes_down", step_bytes("down")},
                 {"bytes_per_step", steps_.empty() ? 0 : step_bytes() / int64_t(steps_.size())},
                 {"all_bytes", bytes_json(all)},
                 {"messages", messages},
                 {"wall_seconds", wall_seconds}};
  return j.dump(1);
}

}  // namespace gt
