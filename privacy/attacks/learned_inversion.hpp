// Learning-based inversion: the attacker (the model owner) passes public text through its
// *pretrained* model up to the tapped point and trains a small per-position network from the
// hidden rows to the tokens, then applies it to what it intercepts from the client. The
// client's fine-tuning moves its adapters away from the pretrained ones; how much that (and
// quantization, dCor, depth) costs the attacker is what the score shows.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/progress.hpp"
#include "data/batch_source.hpp"
#include "models/segments.hpp"
#include "privacy/attacks/attack.hpp"
#include "privacy/quantization.hpp"

namespace gt {

// Which intercepted tensor an attack reads.
enum class Tap : uint8_t { a1, a2, g2 };
const char* to_string(Tap tap);          // "a1" | "a2" | "g2"
Tap parse_tap(const std::string& name);  // throws gt::Error naming the allowed values

// What a curious server would intercept if a client ran `seg` on `batch`: a1 (through `wire`
// quantization, as it crosses), a2 = backbone(a1) and g2 = dLoss/da2 of the mean causal-LM loss
// on batch.labels (through `wire`); tensors past `deepest` stay undefined. No parameter's
// gradient is touched. Used to train inversions on public text and to simulate a client.
Intercept simulate_intercept(const Segments& seg, const LmBatch& batch, Tap deepest = Tap::g2,
                             QuantScheme wire = QuantScheme::none);

struct LearnedInversionOptions {
  Tap tap = Tap::a1;
  int64_t steps = 300;
  int64_t batch = 16;   // texts per step
  double lr = 2e-3;     // Adam
  uint64_t seed = 0;    // initialisation and sample order
  int64_t hidden = 0;   // MLP width; 0 = the width of the model's token embedding
  int64_t context = 1;  // neighbouring positions fed in on each side (0 = the row alone)
  // The attacker can mimic the wire: its training rows pass through the same quantization.
  QuantScheme wire = QuantScheme::none;
  // Predict only tokens seen in the public text: a much smaller head, and an unseen token
  // could not be learned anyway.
  bool restrict_vocabulary = true;
  // Rows of each training batch whose tokens (after the first) are drawn uniformly from the
  // whole vocabulary: the model owner knows every token, not only those of its public text
  // (GCIDE has no newline and no underscore, so without them those tokens were never read
  // back). When > 0 the head covers the whole vocabulary. Capped at the batch size.
  int64_t random_rows = 4;
  // The last layer is the pretrained token embedding (rows of the predicted vocabulary), frozen,
  // with a trained bias: the net learns a map into embedding space, which needs far fewer steps
  // than a random head. Needs hidden == embedding width; otherwise the head is random, trained.
  bool embedding_head = true;
  // The attack's name in reports; "" = learned_inversion_<tap>. An inverter fitted through an
  // adaptive attacker's shadow adapters is the same attack under another name.
  std::string name;
};

// Per row: unit RMS, LayerNorm; a window of 2 * context + 1 rows -> Linear -> GELU -> logits.
struct InversionNetImpl;

class LearnedInversion : public Attack {
 public:
  // Throws gt::Error for steps < 1, batch < 1, lr <= 0, hidden < 0, context < 0 or
  // random_rows < 0.
  explicit LearnedInversion(LearnedInversionOptions options = {});

  std::string name() const override;                    // "learned_inversion_<tap>"
  bool applicable(const Intercept& in) const override;  // the tapped tensor and the mask
  // Throws gt::Error before fit.
  Reconstruction reconstruct(const Intercept& in) override;

  // Trains on `public_text` (batches of it through `pretrained`, which stays frozen): cross-
  // entropy on real positions. Refits from scratch when called again. Returns the mean
  // training loss of the last (up to) 10 steps. Throws gt::Error for empty public text.
  double fit(const Segments& pretrained, const BatchSource& public_text,
             Progress* progress = nullptr);
  // The same through several models in turn (step i through models[i % n]; all cut alike): an
  // adaptive attacker's shadows with different seeds, so that the inverter learns what they
  // share rather than one shadow's secrets. Throws gt::Error for no model.
  double fit(const std::vector<Segments>& models, const BatchSource& public_text,
             Progress* progress = nullptr);

  bool fitted() const { return net_ != nullptr; }

  // A fitted model as a file (LibTorch archive: the net's parameters and the vocabulary), so
  // the same fit serves many runs. save throws gt::Error before fit or when the file cannot be
  // written. load restores a model saved with the same options for the same `pretrained`
  // shapes; it throws gt::Error naming the file when it is unreadable or does not match.
  void save(const std::string& path) const;
  void load(const Segments& pretrained, const std::string& path);
  const LearnedInversionOptions& options() const { return options_; }
  // The ids the head predicts (sorted); all of the model's when not restricted.
  const torch::Tensor& vocabulary() const { return vocabulary_; }

 private:
  LearnedInversionOptions options_;
  std::shared_ptr<InversionNetImpl> net_;
  torch::Tensor vocabulary_;  // (V') int64: class -> token id
};

}  // namespace gt
