// See client_checkpoint.hpp.
#include "strategies/client_checkpoint.hpp"

#include <filesystem>
#include <sstream>

#include "common/error.hpp"
#include "models/safetensors.hpp"
#include "strategies/adapter_upload.hpp"

namespace gt {
namespace {

constexpr const char* kFormat = "gtune-client-checkpoint-1";

torch::Tensor bytes_tensor(const std::string& bytes) {
  auto t = torch::empty({int64_t(bytes.size())}, torch::kUInt8);
  std::memcpy(t.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  return t;
}

std::string tensor_bytes(const torch::Tensor& t) {
  auto c = t.contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), size_t(c.numel()));
}

}  // namespace

std::string settings_differences(const std::string& a, const std::string& b) {
  auto lines = [](const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  };
  const auto la = lines(a), lb = lines(b);
  std::string out;
  for (const auto& l : lb)
    if (std::find(la.begin(), la.end(), l) == la.end()) out += (out.empty() ? "" : "; ") + l;
  return out.empty() ? "the order of the settings" : out;
}

nlohmann::json wire_state(const WireStats& stats) {
  auto out = nlohmann::json::array();
  for (const auto& [key, c] : stats.snapshot())
    out.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), c.messages, c.bytes});
  return out;
}

void restore_wire(WireStats& stats, const nlohmann::json& state) {
  std::map<WireStats::Key, WireStats::Count> counts;
  for (const auto& e : state)
    counts[{e.at(0).get<std::string>(), e.at(1).get<std::string>(), e.at(2).get<std::string>()}] = {
        e.at(3).get<int64_t>(), e.at(4).get<int64_t>()};
  stats.restore(std::move(counts));
}

ClientCheckpoint::ClientCheckpoint(const std::string& dir, const std::string& client,
                                   std::string fingerprint)
    : path_((std::filesystem::path(dir) / (client + ".checkpoint.safetensors")).string()),
      fingerprint_(std::move(fingerprint)) {}

void ClientCheckpoint::save(const ClientProgress& p, const ClientModel& model,
                            const std::vector<torch::Tensor>& random_state) const {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& [name, value] : trainable_adapters(model.seg))
    tensors.emplace_back("adapter." + name, value.detach().to(torch::kCPU));
  std::ostringstream optimizer;
  torch::save(*model.optimizer, optimizer);
  tensors.emplace_back("optimizer", bytes_tensor(optimizer.str()));
  if (model.privacy)  // the client's own inverter: a resumed run plays the same game
    if (auto inverter = model.privacy->save(); !inverter.empty())
      tensors.emplace_back("privacy.inverter", bytes_tensor(inverter));
  for (size_t i = 0; i < random_state.size(); ++i)
    tensors.emplace_back("random." + std::to_string(i), random_state[i]);
  nlohmann::json progress = {{"step", p.step},
                             {"phase", p.phase},
                             {"phase_steps", p.phase_steps},
                             {"strategy", p.strategy},
                             {"epoch", p.epoch},
                             {"cursor", p.cursor},
                             {"evaluated_before", p.evaluated_before},
                             {"steps_since_upload", p.steps_since_upload},
                             {"phase_replies", p.phase_replies},
                             {"random_states", random_state.size()},
                             {"log", p.log},
                             {"wire", p.wire}};
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
  save_safetensors(
      path_, tensors,
      {{"format", kFormat}, {"fingerprint", fingerprint_}, {"progress", progress.dump()}});
}

std::optional<RestoredClient> ClientCheckpoint::load(ClientModel& model) const {
  if (!std::filesystem::exists(path_)) return std::nullopt;
  SafetensorsFile file(path_);
  const auto& meta = file.metadata();
  const auto get = [&](const char* key) {
    auto it = meta.find(key);
    if (it == meta.end())
      throw error_at(path_, std::string("not a client checkpoint (no ") + key + ")");
    return it->second;
  };
  if (get("format") != kFormat)
    throw error_at(path_, "checkpoint format '" + get("format") + "', expected " + kFormat);
  if (get("fingerprint") != fingerprint_)
    throw error_at(path_, "the checkpoint is of other settings (" +
                              settings_differences(fingerprint_, get("fingerprint")) +
                              "); delete it or point run.checkpoint_dir elsewhere to start afresh");
  RestoredClient r;
  try {
    const auto j = nlohmann::json::parse(get("progress"));
    auto& p = r.progress;
    p.step = j.at("step");
    p.phase = j.at("phase");
    p.phase_steps = j.at("phase_steps");
    p.strategy = j.at("strategy");
    p.epoch = j.at("epoch");
    p.cursor = j.at("cursor");
    p.evaluated_before = j.at("evaluated_before");
    p.steps_since_upload = j.at("steps_since_upload");
    p.phase_replies = j.at("phase_replies").get<std::vector<std::string>>();
    p.log = j.at("log");
    p.wire = j.at("wire");
    const size_t randoms = j.at("random_states");
    for (size_t i = 0; i < randoms; ++i)
      r.random_state.push_back(file.tensor("random." + std::to_string(i)));
  } catch (const nlohmann::json::exception& e) {
    throw error_at(path_, std::string("progress record: ") + e.what());
  }
  NamedTensors values;
  const auto params = trainable_adapters(model.seg);
  for (const auto& [name, param] : params) {
    auto value = file.tensor("adapter." + name);
    if (value.sizes() != param.sizes())
      throw error_at(path_, "adapter " + name + " has another shape than the model's");
    values[name] = value;
  }
  assign_adapters(params, values);
  try {
    std::istringstream optimizer(tensor_bytes(file.tensor("optimizer")));
    // Onto the adapters' device, whichever device wrote the checkpoint.
    torch::load(*model.optimizer, optimizer, model.seg.device());
  } catch (const c10::Error& e) {
    throw error_at(path_, std::string("optimizer state: ") + e.what_without_backtrace());
  }
  if (model.privacy) {
    const bool saved = file.contains("privacy.inverter");
    try {
      model.privacy->restore(saved ? tensor_bytes(file.tensor("privacy.inverter")) : "");
    } catch (const Error& e) {
      throw error_at(path_, e.what());
    }
  }
  return r;
}

}  // namespace gt
