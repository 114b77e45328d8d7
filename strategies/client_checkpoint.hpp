// A client's resumable state in one file, so that a client killed mid-run and
// started again continues with no step lost or repeated: adapters, optimizer
// state, random generators, data position, where it is in the plan, and its
// log and byte counts so far. Written atomically (temp file + rename).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "protocols/codec.hpp"
#include "strategies/client_strategy.hpp"

namespace gt {

// Where a client is in its run, besides its tensors.
struct ClientProgress {
  int64_t step = 0;               // optimizer steps done
  int64_t phase = 0;              // the phase in progress (= phases finished)
  int64_t phase_steps = 0;        // steps done in it
  std::string strategy;           // installed ("" = none yet)
  int64_t epoch = 0, cursor = 0;  // data order: epoch_order(n, seed, epoch), next position
  bool evaluated_before = false, steps_since_upload = false;
  std::vector<std::string> phase_replies;  // what each finished phase replied
  nlohmann::json log, wire;                // RunLog::state(), wire byte counts
};

struct RestoredClient {
  ClientProgress progress;
  std::vector<torch::Tensor> random_state;  // of the installed strategy
};

// Wire byte counts as JSON and back (ClientProgress::wire).
nlohmann::json wire_state(const WireStats& stats);
void restore_wire(WireStats& stats, const nlohmann::json& state);

// The lines of settings `found` that are not in `expected` ("key = value; ..."), for the
// error that refuses a checkpoint of other settings.
std::string settings_differences(const std::string& expected, const std::string& found);

class ClientCheckpoint {
 public:
  // <dir>/<client>.checkpoint.safetensors; `fingerprint` names the run's training settings
  // (one "key = value" per line): a checkpoint of other settings is refused.
  ClientCheckpoint(const std::string& dir, const std::string& client, std::string fingerprint);
  const std::string& path() const { return path_; }

  void save(const ClientProgress& progress, const ClientModel& model,
            const std::vector<torch::Tensor>& random_state) const;
  // Restores adapters and optimizer state into `model`; nullopt when there is no checkpoint.
  // Throws gt::Error naming the file when it is unreadable or of other settings.
  std::optional<RestoredClient> load(ClientModel& model) const;

 private:
  std::string path_, fingerprint_;
};

}  // namespace gt
