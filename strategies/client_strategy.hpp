// The one small interface every client-side design implements (split, online,
// gradfree, offsite, offline), after Flower's Strategy: a step is a short
// conversation with the server in tensors, and the strategy says what to send
// next or that the step is done. Encoding, sessions and actors live elsewhere
// (client_channel.hpp), so a strategy is plain tensor code, testable alone.
#pragma once

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "data/batch_source.hpp"
#include "models/segments.hpp"
#include "privacy/privacy_objective.hpp"
#include "privacy/quantization.hpp"

namespace gt {

// What a client trains, shared by the strategies of every phase: adapters and
// one optimizer, so adapters and optimizer state carry over between phases.
struct ClientModel {
  Segments seg;
  std::shared_ptr<torch::optim::Optimizer> optimizer;
  double grad_clip = 0;  // max global L2 norm of the applied gradients; 0 = off
  // The privacy objective on a1 (privatize and online train against it; every design that sends
  // a1 reports its score). Kept here so the client's inverter carries over between phases.
  std::shared_ptr<PrivacyObjective> privacy;
};

struct StepOutcome {
  double loss = 0;                // task loss (mean token cross-entropy)
  double dcor = 0;                // token-level distance correlation R* of a1 (0 when not scored)
  double inverter_accuracy = -1;  // the client's own inverter on a1 (-1: none)
  double a1_quant_error = 0;      // max |a1 - what the server receives|
  int64_t tokens = 0;             // predicted tokens in the batch
};

// To the server: a1 (and the mask); keep_graph = a gradient for it will follow.
struct ActivationsUp {
  torch::Tensor a1, attention_mask;
  bool keep_graph = true;
  QuantScheme scheme = QuantScheme::none;  // set by WireQuantization
};
// To the server: g2 = dLoss/da2.
struct GradientsUp {
  torch::Tensor g2;
  QuantScheme scheme = QuantScheme::none;
};
using ClientAction = std::variant<ActivationsUp, GradientsUp, StepOutcome>;

// A training batch and the dataset indices of its rows (for per-sample caches).
struct StepInput {
  LmBatch batch;
  std::vector<size_t> samples;
};

// What the server must know to serve this strategy's session.
struct SessionTerms {
  bool backward = true;  // the client sends gradients
  QuantScheme a2 = QuantScheme::none, g1 = QuantScheme::none;
};

class ClientStrategy {
 public:
  virtual ~ClientStrategy() = default;
  virtual std::string name() const = 0;
  virtual SessionTerms terms() const { return {}; }
  // Whether adapters go to the server when this strategy's phase ends (offline designs).
  virtual bool uploads_adapters() const { return false; }

  virtual ClientAction begin_step(const StepInput& in) = 0;
  // The server's a2 / g1 for the step in flight. Throws gt::Error when unexpected.
  virtual ClientAction on_activations(const torch::Tensor& a2);
  virtual ClientAction on_gradients(const torch::Tensor& g1);

  // Pipelined steps (strategy.micro_batches): with micro_batches() > 1 the channel sends the
  // a1 of begin_step in that many row chunks (at most one per row), hands each chunk's a2 here
  // in row order (rows [first_row, first_row + a2.size(0)) of the batch), sends back the g2
  // this returns at once, and passes the joined g1 chunks to on_gradients. The step's update
  // is the unpipelined one's, up to float summation order.
  virtual int64_t micro_batches() const { return 1; }
  virtual ClientAction on_micro_activations(const torch::Tensor& a2, int64_t first_row);

  // Evaluation through the wire: a1 of a held-out batch (no graph), then its summed
  // loss and counted tokens from the server's a2.
  virtual ActivationsUp eval_up(const LmBatch& batch) = 0;
  virtual std::pair<double, int64_t> eval_loss(const LmBatch& batch, const torch::Tensor& a2) = 0;
  // Strategies that keep every activation home (privatize) evaluate on the client alone:
  // local_eval_loss gives a held-out batch's summed loss and counted tokens, nothing is sent.
  virtual bool evaluates_locally() const { return false; }
  virtual std::pair<double, int64_t> local_eval_loss(const LmBatch& batch);
  // The states of its random generators (noise on a1): checkpoints and retried steps restore
  // them, so a resumed or retried step draws the same numbers. None by default.
  virtual std::vector<torch::Tensor> random_state() const { return {}; }
  virtual void set_random_state(std::vector<torch::Tensor> /*state*/) {}
};

// Sets every gradient the optimizer sees to undefined (PyTorch's set_to_none):
// a parameter that gets no gradient this step is then skipped by the optimizer,
// where a zeroed one would still move under Adam's momentum and weight decay.
void clear_gradients(torch::optim::Optimizer& optimizer);
// Clips the global L2 norm of every gradient the optimizer will apply.
void clip_gradients(torch::optim::Optimizer& optimizer, double max_norm);
// A loss's sum and counted tokens, as evaluation reports them.
std::pair<double, int64_t> summed_lm_loss(const LmLoss& loss);
// Tokens a batch predicts (labels other than -100 after the first position).
int64_t predicted_tokens(const LmBatch& batch);

}  // namespace gt
