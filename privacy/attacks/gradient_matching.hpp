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

struct GradientMatchingOptions {
  int64_t steps = 150;
  double lr = 0.05;                // Adam on the dummy embeddings (token-embedding units)
  double forward_weight = 1.0;     // 0 = backward term only (a1 not needed)
  double backward_weight = 1.0;    // 0 = forward term only (a2, g2 not needed)
  double label_temperature = 0.1;  // soft-label sharpness, as a fraction of the embedding spread
  uint64_t seed = 0;               // noise on the mean-embedding start
};

// Soft labels: the label of position t is the dummy token at t itself (causal LM, labels =
// inputs), as a distribution softmax(-|d_t - e_v|^2 / tau) over the vocabulary, so the
// backward term moves the same dummy embeddings as the forward term. Hard labels (argmax of the
// dummy tokens) would give the backward term no gradient. The attacker assumes the LM objective
// on every real token but the first; on instruction data the prompt tokens carry no loss, which
// weakens (not breaks) the backward term there.
class GradientMatching : public Attack {
 public:
  // `pretrained`: the attacker's copy of the pretrained model, cut where the client cuts. Only
  // read (no parameter is changed and no parameter gradient is kept).
  explicit GradientMatching(Segments pretrained, GradientMatchingOptions options = {});

  std::string name() const override { return "gradient_matching"; }
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
