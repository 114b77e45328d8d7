// See scheduler_checkpoint.hpp.
#include "actors/scheduler_checkpoint.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/atomic_file.hpp"
#include "common/error.hpp"
#include "strategies/client_checkpoint.hpp"

namespace gt {
namespace {

constexpr const char* kFormat = "gtune-scheduler-checkpoint-1";
using json = nlohmann::json;

json report_json(const StepReport& r) {
  return {
      {"client", r.client}, {"strategy", r.strategy}, {"phase", r.phase},          {"step", r.step},
      {"loss", r.loss},     {"bytes_up", r.bytes_up}, {"bytes_down", r.bytes_down}};
}

StepReport report_of(const json& j) {
  StepReport r;
  r.client = j.at("client");
  r.strategy = j.at("strategy");
  r.phase = j.at("phase");
  r.step = j.at("step");
  r.loss = j.at("loss");
  r.bytes_up = j.at("bytes_up");
  r.bytes_down = j.at("bytes_down");
  return r;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw error_at(path, "cannot read");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

SchedulerCheckpoint::SchedulerCheckpoint(const std::string& dir, std::string fingerprint)
    : path_(dir + "/scheduler.json"),
      average_path_(dir + "/scheduler.fedavg"),
      fingerprint_(std::move(fingerprint)) {}

void SchedulerCheckpoint::save(const SchedulerProgress& p, bool durable) const {
  // The average first: the JSON that names it is never on disk before it.
  if (p.average)
    write_file_atomically(
        average_path_,
        std::string_view(reinterpret_cast<const char*>(p.average->data()), p.average->size()),
        true);
  json phases = json::array(), clients = json::array(), status = json::object();
  for (const auto& o : p.phases) phases.push_back({o.strategy, o.steps});
  for (const auto& [name, weight] : p.clients) clients.push_back({name, weight});
  for (const auto& [name, r] : p.status) status[name] = report_json(r);
  const json j = {
      {"format", kFormat},
      {"fingerprint", fingerprint_},
      {"stage", p.stage},
      {"phase", p.phase},
      {"phases", phases},
      {"clients", clients},
      {"current", p.current},
      {"pending", p.pending},
      {"switches", p.switches},
      {"paused", p.paused},
      {"budget_spent", p.budget_spent},
      {"attack_alarmed", p.attack_alarmed},
      {"attack", {p.attack.attack, p.attack.strategy, p.attack.rouge_l}},
      {"status", status},
      {"steps_reported", p.steps_reported},
      {"wall_seconds", p.wall_seconds},
      {"results", p.results},
      {"average", p.average.has_value()},
  };
  write_file_atomically(path_, j.dump(1) + "\n", durable);
}

std::optional<SchedulerProgress> SchedulerCheckpoint::load() const {
  if (!std::filesystem::exists(path_)) return std::nullopt;
  const auto j = json::parse(read_file(path_), nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw error_at(path_, "not JSON");
  if (j.value("format", "") != kFormat)
    throw error_at(path_, "not a scheduler checkpoint (format '" + j.value("format", "") +
                              "', expected " + kFormat + ")");
  if (j.value("fingerprint", "") != fingerprint_)
    throw error_at(path_, "the checkpoint is of other settings (" +
                              settings_differences(fingerprint_, j.value("fingerprint", "")) +
                              "); delete it or point run.checkpoint_dir elsewhere to start afresh");
  SchedulerProgress p;
  try {
    p.stage = j.at("stage");
    if (p.stage != "phase" && p.stage != "fedavg" && p.stage != "finish")
      throw error_at(path_, "unknown stage '" + p.stage + "'");
    p.phase = j.at("phase");
    for (const auto& o : j.at("phases"))
      p.phases.push_back({int64_t(p.phases.size()), o.at(0), o.at(1)});
    if (p.phase >= p.phases.size() && p.stage != "finish")
      throw error_at(path_, "phase " + std::to_string(p.phase) + " of a plan of " +
                                std::to_string(p.phases.size()));
    for (const auto& c : j.at("clients")) p.clients.emplace_back(c.at(0), c.at(1));
    p.current = j.at("current");
    p.pending = j.at("pending").get<std::map<std::string, std::string>>();
    p.switches = j.at("switches").get<std::vector<json>>();
    p.paused = j.at("paused");
    p.budget_spent = j.at("budget_spent");
    p.attack_alarmed = j.at("attack_alarmed");
    const auto& a = j.at("attack");
    p.attack = {a.at(0), a.at(1), a.at(2)};
    for (const auto& [name, r] : j.at("status").items()) p.status[name] = report_of(r);
    p.steps_reported = j.at("steps_reported");
    p.wall_seconds = j.at("wall_seconds");
    p.results = j.at("results").get<std::map<std::string, std::string>>();
    if (j.at("average").get<bool>()) {
      const auto bytes = read_file(average_path_);
      p.average = std::vector<uint8_t>(bytes.begin(), bytes.end());
    }
  } catch (const json::exception& e) {
    throw error_at(path_, std::string("malformed: ") + e.what());
  }
  return p;
}

}  // namespace gt
