// The offline designs (`offsite` = Offsite-Tuning as published, `offline` =
// ours): the adapters train around an emulator of the backbone on the client,
// with no traffic per step. When the phase ends the adapters go to the server
// (adapter_upload.hpp), which plugs them into the full model.
#pragma once

#include "strategies/adapter_strategy.hpp"

namespace gt {

class OfflineClient : public AdapterStrategy {
 public:
  // `emulator` replaces the backbone on the client (models/emulator.hpp).
  OfflineClient(std::shared_ptr<ClientModel> model, Backbone emulator, std::string name);

  std::string name() const override { return name_; }
  SessionTerms terms() const override { return {false, QuantScheme::none, QuantScheme::none}; }
  bool uploads_adapters() const override { return true; }
  ClientAction begin_step(const StepInput& in) override;

  // Summed loss and counted tokens of input -> emulator -> output (no wire):
  // what the client can measure on its own.
  std::pair<double, int64_t> local_eval_loss(const LmBatch& batch);

 private:
  Backbone emulator_;
  std::string name_;
};

}  // namespace gt
