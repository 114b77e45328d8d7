// Builds each party's side of a run from its configuration: the client's
// adapters, optimizer and data; the server's backbone. Shared by `simulate`
// (all parties here) and `node` (one party per process).
#pragma once

#include <memory>
#include <string>

#include "config/run_config.hpp"
#include "data/batch_source.hpp"
#include "strategies/centralized.hpp"
#include "strategies/split_client.hpp"
#include "strategies/split_server.hpp"

namespace gt::cli {

struct ClientSide {
  DecoderLM model{nullptr};  // the client's copy; only the adapters are used and trained
  Segments seg;
  std::shared_ptr<torch::optim::Optimizer> optimizer;
  std::shared_ptr<const BatchSource> train, valid;
  SplitOptions options;
  int64_t trainable_parameters = 0;
  std::string data_summary;
};

ClientSide make_client_side(const RunConfig& cfg);
std::shared_ptr<SplitServer> make_server_side(const RunConfig& cfg, const std::string& name);
torch::ScalarType parse_dtype(const std::string& name);
// Optimizer steps the plan runs (training.steps, or epochs x batches per epoch).
int64_t planned_steps(const RunConfig& cfg, size_t train_examples);

}  // namespace gt::cli
