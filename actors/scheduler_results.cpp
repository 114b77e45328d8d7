// See scheduler.hpp: results.json of a run, from its clients' run JSONs.
#include <algorithm>
#include <map>
#include <tuple>

#include "actors/scheduler.hpp"

namespace gt {
namespace {
using json = nlohmann::json;
}  // namespace

json combine_results(const std::string& config_toml, const std::vector<json>& clients,
                     const std::vector<json>& switches, double wall_seconds) {
  json out;
  out["config"] = config_toml;
  out["clients"] = clients;
  out["switches"] = switches;
  // Per phase, summed over clients; the held-out loss after it averaged.
  json phases = json::array();
  const size_t n_phases = clients.empty() ? 0 : clients[0]["phases"].size();
  for (size_t p = 0; p < n_phases; ++p) {
    json agg = {{"index", p},
                {"strategy", clients[0]["phases"][p]["strategy"]},
                {"strategies", json::array()},
                {"steps", 0},
                {"step_bytes_up", 0},
                {"step_bytes_down", 0},
                {"other_bytes", 0},
                {"seconds", 0.0}};
    double loss_sum = 0;
    for (const auto& c : clients) {
      const auto& cp = c["phases"][p];
      for (const auto& s : cp["strategies"])
        if (std::find(agg["strategies"].begin(), agg["strategies"].end(), s) ==
            agg["strategies"].end())
          agg["strategies"].push_back(s);
      const int64_t steps = cp["last_step"].get<int64_t>() - cp["first_step"].get<int64_t>() + 1;
      agg["steps"] = agg["steps"].get<int64_t>() + std::max<int64_t>(0, steps);
      agg["step_bytes_up"] =
          agg["step_bytes_up"].get<int64_t>() + cp["step_bytes_up"].get<int64_t>();
      agg["step_bytes_down"] =
          agg["step_bytes_down"].get<int64_t>() + cp["step_bytes_down"].get<int64_t>();
      int64_t all = 0;
      for (const auto& b : cp["bytes"]) all += b["bytes"].get<int64_t>();
      agg["other_bytes"] = agg["other_bytes"].get<int64_t>() + all -
                           cp["step_bytes_up"].get<int64_t>() -
                           cp["step_bytes_down"].get<int64_t>();
      agg["seconds"] = std::max(agg["seconds"].get<double>(), cp["seconds"].get<double>());
      for (const auto& e : c["evals"])
        if (e["step"] == cp["last_step"]) {
          loss_sum += e["loss"].get<double>();
          break;
        }
    }
    agg["eval_loss"] = clients.empty() ? 0.0 : loss_sum / double(clients.size());
    phases.push_back(agg);
  }
  out["phases"] = phases;
  // Totals over clients.
  int64_t steps = 0, up = 0, down = 0, retried = 0;
  std::map<std::tuple<std::string, std::string, std::string>, std::pair<int64_t, int64_t>> all;
  double before = 0, after = 0;
  for (const auto& c : clients) {
    const auto& t = c["totals"];
    steps += t["steps"].get<int64_t>();
    up += t["step_bytes_up"].get<int64_t>();
    down += t["step_bytes_down"].get<int64_t>();
    retried += t.value("retried_step_bytes", int64_t(0));
    for (const auto& b : t["all_bytes"])
      all[{b["link"], b["direction"], b["kind"]}].first += b["bytes"].get<int64_t>();
    for (const auto& m : t["messages"])
      all[{m["link"], m["direction"], m["kind"]}].second += m["messages"].get<int64_t>();
    if (!c["evals"].empty()) {
      before += c["evals"].front()["loss"].get<double>();
      after += c["evals"].back()["loss"].get<double>();
    }
  }
  json all_bytes = json::array(), messages = json::array();
  for (const auto& [key, v] : all) {
    auto [link, dir, kind] = key;
    all_bytes.push_back({{"link", link}, {"direction", dir}, {"kind", kind}, {"bytes", v.first}});
    messages.push_back(
        {{"link", link}, {"direction", dir}, {"kind", kind}, {"messages", v.second}});
  }
  const double n = clients.empty() ? 1.0 : double(clients.size());
  out["totals"] = {{"clients", clients.size()},
                   {"steps", steps},
                   {"step_bytes_up", up},
                   {"step_bytes_down", down},
                   {"bytes_per_step", steps ? (up + down) / steps : 0},
                   {"retried_step_bytes", retried},
                   {"eval_loss_before", before / n},
                   {"eval_loss_after", after / n},
                   {"all_bytes", all_bytes},
                   {"messages", messages},
                   {"wall_seconds", wall_seconds}};
  return out;
}

}  // namespace gt
