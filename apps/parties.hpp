// Builds each party's side of a run from its configuration: a client's
// adapters, optimizer and data shard; the server's full model; the emulator
// builder's recipes. Shared by `simulate` (all parties here) and `node`.
#pragma once

#include <memory>
#include <string>

#include "actors/client.hpp"
#include "actors/emulator_builder.hpp"
#include "actors/server.hpp"
#include "config/run_config.hpp"
#include "data/batch_source.hpp"
#include "strategies/adapter_upload.hpp"
#include "strategies/split_server.hpp"
#include "strategies/strategy_factory.hpp"

namespace gt::cli {

struct ClientSide {
  std::string name;
  DecoderLM model{nullptr};  // the client's copy; only the adapters are used and trained
  std::shared_ptr<ClientModel> trainer;
  std::shared_ptr<const NamedTensors> pretrained;  // adapters as loaded (deltas refer to them)
  std::shared_ptr<const BatchSource> train, valid;
  int64_t trainable_parameters = 0;
  std::string data_summary;
  const Segments& seg() const { return trainer->seg; }
};

// Client `index` of `count`: its own model copy and every count-th training example. Without
// `hold_backbone` (a client node: the server runs the backbone) the backbone's weights are
// neither read nor held.
ClientSide make_client_side(const RunConfig& cfg, int64_t index = 0, int64_t count = 1,
                            bool hold_backbone = true);
std::shared_ptr<SplitServer> make_server_side(const RunConfig& cfg, const std::string& name);
// The server's limits from [server]; no tap, no metrics.
ServerOptions server_options(const RunConfig& cfg);
// The builder's full model and recipes; public text only when a recipe distils.
BuilderParts make_builder_side(const RunConfig& cfg, const std::string& work_dir);

StrategySettings strategy_settings(const RunConfig& cfg);
// The client's privacy objective as configured. Its inverters and decoys are seeded by
// privacy.secret (a fresh draw from the OS, or training.seed), or by `seed` (an adaptive
// attacker's shadow uses one of its own).
PrivacyOptions privacy_options(const RunConfig& cfg);
PrivacyOptions privacy_options(const RunConfig& cfg, uint64_t seed);
ClientPlan client_plan(const RunConfig& cfg, const ClientSide& side, const std::string& work_dir);
// The settings that decide a run's numbers, "section.key = value" per line: a client
// checkpoint resumes only a run with the same ones.
std::string training_fingerprint(const RunConfig& cfg);
// The plan's phases with every phase's length in steps (epochs over the client's shard).
std::vector<PhaseOrder> phase_orders(const RunConfig& cfg, size_t train_examples);
// Where emulators are written and downloaded: emulator.work_dir, <out>/transfers, or a temp dir.
std::string transfer_dir(const RunConfig& cfg, const std::string& out);

// privacy.token_clusters > 0: the client's input adapter sees each token's cluster from now on.
void coarsen_client_inputs(const RunConfig& cfg, Segments& seg);

torch::ScalarType parse_dtype(const std::string& name);
// The model with the adapter structure and trainable flags every party agrees on (LoRA or
// full, seeded), on run.device; `model` receives the whole decoder (its backbone blocks hollow
// without hold_backbone).
Segments load_adapter_model(const RunConfig& cfg, DecoderLM& model, bool hold_backbone = true);
// [optimizer] over `params`; throws gt::Error when there are none.
std::shared_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerSection& o,
                                                        std::vector<torch::Tensor> params);
// Optimizer steps of the whole plan for one client.
int64_t planned_steps(const RunConfig& cfg, size_t train_examples);

}  // namespace gt::cli
