// The client's half of split learning (the `split` baseline and the `online`
// design): input adapter -> a1 up; a2 down -> output adapter -> loss; g2 up;
// g1 down -> input adapter backward (+ distance-correlation penalty) -> step.
// Plain class: the client actor only moves its messages.
#pragma once

#include <memory>

#include "data/lm_dataset.hpp"
#include "models/segments.hpp"
#include "privacy/quantization.hpp"
#include "protocols/messages.hpp"

namespace gt {

struct SplitOptions {
  QuantScheme a1 = QuantScheme::none, a2 = QuantScheme::none;  // activations up / down
  QuantScheme g2 = QuantScheme::none, g1 = QuantScheme::none;  // gradients up / down
  double dcor_lambda = 0.0;  // weight of dCor(input embeddings, a1) in the loss
  double grad_clip = 0.0;    // max global L2 norm of the adapters' gradients; 0 = off
};

// Clips the global L2 norm of every gradient the optimizer will apply.
void clip_adapter_gradients(torch::optim::Optimizer& optimizer, double max_norm);

struct StepOutcome {
  double loss = 0;            // task loss (mean token cross-entropy)
  double dcor = 0;            // distance correlation of this batch (0 when lambda = 0)
  double a1_quant_error = 0;  // max |a1 - what the server receives|
  int64_t tokens = 0;         // predicted tokens in the batch
};

class SplitClient {
 public:
  // `seg` is shared with the client's model; `optimizer` covers the adapters' trainable parameters.
  SplitClient(Segments seg, std::shared_ptr<torch::optim::Optimizer> optimizer,
              SplitOptions options);

  // Opens a session: our model and cut, and how the server should send a2 and g1.
  SessionHello hello(const std::string& client_name, const std::string& strategy) const;
  // Phase 1: a1 for the server. `train` = false makes an evaluation request (no graph kept).
  ForwardRequest start_step(const LmBatch& batch, bool train = true);
  // Phase 2: the server's a2 -> loss -> g2 for the server.
  BackwardRequest on_forward_reply(const ForwardReply& reply);
  // Phase 3: the server's g1 -> input adapter backward, optimizer step.
  StepOutcome on_backward_reply(const BackwardReply& reply);
  // Evaluation: loss sum over counted tokens for the server's a2 of an eval request.
  std::pair<double, int64_t> eval_loss(const ForwardReply& reply);

  void set_session(uint64_t session) { session_ = session; }
  uint64_t session() const { return session_; }
  const Segments& segments() const { return seg_; }
  const SplitOptions& options() const { return options_; }
  int64_t steps_done() const { return step_; }

 private:
  Header header() const { return Header{kProtocolVersion, session_, step_}; }

  Segments seg_;
  std::shared_ptr<torch::optim::Optimizer> optimizer_;
  SplitOptions options_;
  uint64_t session_ = 0;
  int64_t step_ = 0;
  // In flight between phases.
  LmBatch batch_;
  AttentionContext ctx_;
  torch::Tensor embeddings_, a1_, dcor_;
  StepOutcome outcome_;
};

}  // namespace gt
