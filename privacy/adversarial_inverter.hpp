// The attacker in the loop: the client trains its own token inverter on its own (a1, token)
// pairs, the same network the curious server's learned inversion uses (inversion_net.hpp),
// and its input adapter trains to defeat it. Stronger than a fixed statistic because it
// targets the attack class directly; checked afterwards against inverters fitted afresh
// (docs/privacy.md), never only against this one.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gt {

struct InversionNetImpl;

struct AdversaryOptions {
  double lr = 2e-3;          // Adam on the inverter
  int64_t context = 1;       // neighbouring rows fed in on each side, as the attack's
  int64_t max_tokens = 128;  // real tokens per step the head runs on (its cost is rows x V x C)
  uint64_t seed = 0;         // the inverter's initialisation and decoys (the client's secret)
  // > 0: the inverter trains on the first fit_steps batches only (a1 as the encoder starts,
  // i.e. the attacker's view of the pretrained adapter) and is then frozen; the encoder's term
  // applies from then on. The encoder then moves away from what such an inverter reads
  // without being pushed to remove the information itself. 0: it trains every step (the
  // attacker in the loop, against the encoder as it is).
  int64_t fit_steps = 0;
  // With a frozen inverter (fit_steps > 0): true = the encoder trains so that the inverter reads
  // a decoy for each token, the token a secret permutation of the vocabulary (from seed) maps it
  // to, instead of merely not reading it. A shadow of the privatization with another seed plants
  // other decoys: an inverter fitted on the shadow reads the client's decoys as other tokens.
  bool decoy = false;
};

struct AdversaryScore {
  double cross_entropy = 0;  // mean over the rows used
  double accuracy = 0;       // share of those rows whose argmax is the true token
};

class AdversarialInverter {
 public:
  // embedding (V, E): the pretrained token embedding, copied and frozen as the inverter's head
  // (a map into embedding space learns in few steps, as the attack's does); channels: the width
  // C of a1 (the model's hidden size). Throws gt::Error for lr <= 0, context < 0 or
  // max_tokens < 1.
  AdversarialInverter(const torch::Tensor& embedding, int64_t channels,
                      AdversaryOptions options = {});
  ~AdversarialInverter();

  // The encoder's term, to be minimised: minus the inverter's mean cross-entropy on the true
  // tokens ids (B, T) at real positions of a1 (B, T, C), each token's capped at log V (no credit
  // for being worse than a uniform guess, so the term is bounded); with decoy, plus its
  // cross-entropy on each token's decoy. Differentiable w.r.t. a1 only: the inverter's own
  // parameters get no gradient from it.
  torch::Tensor encoder_loss(const torch::Tensor& a1, const torch::Tensor& ids,
                             const torch::Tensor& mask);
  // One Adam step of the inverter on the detached a1: its best response to the encoder as it
  // is now. Returns its cross-entropy and accuracy on these rows before the step.
  AdversaryScore update(const torch::Tensor& a1, const torch::Tensor& ids,
                        const torch::Tensor& mask);
  // The decoy of each token id (same shape); defined whatever options.decoy says.
  torch::Tensor decoys(const torch::Tensor& ids) const;

  // Everything that makes a resumed run continue exactly, as bytes (LibTorch archives): the
  // inverter's weights, its optimizer's moments, the row cursor and the decoys (a secret the
  // seed of a resumed process no longer knows). restore throws gt::Error
  // for bytes that are not such a state of this shape.
  std::string save() const;
  void restore(const std::string& bytes);

 private:
  torch::Tensor rows(const torch::Tensor& mask);  // flat indices of the rows used this call
  torch::Tensor logits(const torch::Tensor& a1, const torch::Tensor& mask, const torch::Tensor& at);

  AdversaryOptions options_;
  std::shared_ptr<InversionNetImpl> net_;
  std::unique_ptr<torch::optim::Adam> optimizer_;
  torch::Tensor decoy_of_;  // (V) long: a permutation of the vocabulary from options_.seed
  int64_t cursor_ = 0;      // rotates the subsample so every position is used over the steps
  int64_t updates_ = 0;     // update calls so far
};

}  // namespace gt
