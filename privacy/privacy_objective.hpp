// The client's privacy objective on a1, per token: what the input adapter trains against in the
// privatize phase and during Online, and the scores it reports every step.
//   penalty = dcor_weight * R*(E0[ids], a1)  +  adversary_weight * (- CE of the client's inverter)
// R* is the bias-corrected token-level distance correlation (token_distance_correlation.hpp)
// between a1 and the *pretrained* token embedding of each token (E0, a fixed copy: the token's
// identity in a geometry that does not move while the adapter trains); the inverter is the
// attacker in the loop (adversarial_inverter.hpp).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

#include "privacy/adversarial_inverter.hpp"

namespace gt {

// Bumped whenever what the objective trains changes (not its settings, which are keys): fits
// cached from an earlier recipe (an adaptive attacker's shadows) must not be reused.
inline constexpr int kPrivacyObjectiveRecipe = 2;  // 2: decoys on top of moving away

struct PrivacyOptions {
  double dcor_weight = 0;       // token-level U-statistic dCor; 0 = scored only
  double adversary_weight = 0;  // the inverter's (capped) cross-entropy; 0 = no inverter
  int64_t dcor_tokens = 512;    // real tokens per batch the dCor runs on (O(n^2))
  AdversaryOptions adversary;
};

struct PrivacyTerms {
  torch::Tensor penalty;          // 0-dim, differentiable w.r.t. a1; 0 when both weights are 0
  double dcor = 0;                // R* of this batch (a score at any weight)
  double inverter_accuracy = -1;  // the client's own inverter on this batch; -1 without one
};

class PrivacyObjective {
 public:
  // token_embedding (V, E): the pretrained token embedding (copied); channels: a1's width (the
  // model's hidden size). Throws gt::Error for a negative weight or dcor_tokens < 4.
  PrivacyObjective(const torch::Tensor& token_embedding, int64_t channels, PrivacyOptions options);

  // Whether the penalty trains anything (a weight > 0).
  bool active() const { return options_.dcor_weight > 0 || options_.adversary_weight > 0; }
  const PrivacyOptions& options() const { return options_; }

  // a1 (B, T, C) with its graph, ids and mask (B, T). Updates the inverter (one step on the
  // detached a1) before computing its term, so the encoder always plays the inverter's best
  // response so far.
  PrivacyTerms terms(const torch::Tensor& a1, const torch::Tensor& ids, const torch::Tensor& mask);
  // The adversarial term on a stand-in backbone's output a2 (privatize: the emulator's), with a
  // second inverter of its own: a2 crosses the wire too, and the backbone turns a private a1
  // back into something readable unless the adapter also learns to avoid that. Zero without an
  // inverter. Only the client's own stand-in may be used here: a gradient of this term sent to
  // the server as part of g2 would carry the very tokens it hides.
  PrivacyTerms a2_terms(const torch::Tensor& a2, const torch::Tensor& ids,
                        const torch::Tensor& mask);
  // The dCor score alone, without a graph or an inverter step (designs that do not train a1).
  double score(const torch::Tensor& a1, const torch::Tensor& ids, const torch::Tensor& mask) const;

  // The inverter's state as bytes for checkpoints ("" without an inverter).
  std::string save() const;
  void restore(const std::string& bytes);

 private:
  torch::Tensor tokens(const torch::Tensor& ids, const torch::Device& device) const;

  PrivacyOptions options_;
  torch::Tensor embedding_;  // (V, C) pretrained, frozen
  std::unique_ptr<AdversarialInverter> inverter_, a2_inverter_;
};

}  // namespace gt
