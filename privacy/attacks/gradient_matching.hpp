// Gradient matching (BiSR-style: Chen et al. 2024, "Unveiling the vulnerability of private
// fine-tuning in split-based frameworks for LLMs: a bidirectionally enhanced attack"): a
// curious server that saw a1 (forward) and g2 (backward) optimises dummy input embeddings so
// that, through its own copy of the *pretrained* adapters,
//   forward term:  input_adapter(dummy) matches a1            (relative squared error), and
//   backward term: d LM-loss / d a2 through the output adapter, evaluated at the intercepted
//                  a2 with labels taken from the dummy, matches g2  (1 - cosine, per sample).
// The client's adapters drift from the pretrained ones while it fine-tunes; the attack keeps
// the pretrained ones, as a real server would (it never sees the tuned adapters).
#pragma once

#include <cstdint>
#include <string>

#include "models/segments.hpp"
#include "privacy/attacks/attack.hpp"

namespace gt {

// Defaults measured on the embedded model (8 x 24 WordNet tokens, n_in = 1): see the tests.
struct GradientMatchingOptions {
  int64_t steps = 100;
  double lr = 0.1;                 // Adam on the dummy, in per-coordinate embedding spreads
  double forward_weight = 1.0;     // 0 = backward term only (a1 not needed)
  double backward_weight = 1.0;    // 0 = forward term only (a2, g2 not needed)
  double label_temperature = 0.1;  // soft-label tau, as a fraction of the embedding spread
  // Soft labels over the k nearest tokens only (0 = whole vocabulary). Cheaper for large
  // vocabularies but much weaker: from the mean-embedding start the far tokens carry the signal.
  int64_t label_candidates = 0;
  bool learn_label_mask = true;  // also learn which positions carry a loss (instruction data)
  double label_mask_lr = 0.1;    // Adam on the logits of those per-position weights
  uint64_t seed = 0;             // noise on the mean-embedding start
};

// Labels: the client trains a causal LM whose labels are its inputs, so the label of position
// t is the dummy token at t itself, as the soft distribution softmax(-|d_t - e_v|^2 / tau)
// over the vocabulary; the backward term then moves the same dummy embeddings as the forward
// term. (Hard labels, the argmax of the dummy tokens, would give it no gradient.) Instruction
// data takes no loss on the prompt; per-position weights in [0, 1] on the label terms, learned
// with the dummy, let the attack find the labelled positions instead of assuming all.
// The first token is never a label, so the backward term alone cannot recover it.
class GradientMatching : public Attack {
 public:
  // `pretrained`: the attacker's copy of the pretrained model, cut where the client cuts. Only
  // read (no parameter is changed and no parameter gradient is kept).
  explicit GradientMatching(Segments pretrained, GradientMatchingOptions options = {});

  // "gradient_matching"; "gradient_matching_g2" with the backward term alone,
  // "gradient_matching_a1" with the forward term alone.
  std::string name() const override {
    if (options_.forward_weight == 0) return "gradient_matching_g2";
    return options_.backward_weight == 0 ? "gradient_matching_a1" : "gradient_matching";
  }

  // Needs the mask, plus a1 for the forward term and a2 and g2 for the backward term.
  bool applicable(const Intercept& in) const override;
  Reconstruction reconstruct(const Intercept& in) override;
  // Starts from `initial`'s token embeddings (e.g. another attack's guess; one id per real
  // position, as a Reconstruction) instead of the mean embedding.
  Reconstruction reconstruct_from(const Intercept& in, const Reconstruction& initial);

  const GradientMatchingOptions& options() const { return options_; }

 private:
  Reconstruction run(const Intercept& in, torch::Tensor dummy);

  Segments model_;
  GradientMatchingOptions options_;
};

}  // namespace gt
