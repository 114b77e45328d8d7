// The attacker's bookkeeping, as a plain class: it collects what the server
// intercepts per session and step (a1 and the mask, the a2 it computed, g2
// where gradients cross), and when the truth of a step is known (simulation
// or a client's own audit) runs every applicable attack on the matching
// intercept and scores the reconstructions. The attacker actor only feeds it.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/tokenizer.hpp"
#include "privacy/attacks/attack.hpp"
#include "privacy/attacks/scoring.hpp"

namespace gt {

// The best-scoring attack so far, and on which strategy.
struct BestAttack {
  std::string attack, strategy;
  double rouge_l = 0;
};

struct EavesdropPlan {
  // Attack training steps 0, every, 2*every, ... of each client, and always the first step of
  // each (client, strategy): the first messages a design sends are attacked whatever its step.
  int64_t every = 10;
  int64_t max_batches = 8;  // per client and strategy; attacks are costly
};

class Eavesdropper {
 public:
  Eavesdropper(std::vector<std::unique_ptr<Attack>> attacks, EavesdropPlan plan,
               Tokenizer tokenizer);

  void on_session(uint64_t session, const std::string& client, const std::string& strategy);
  // A forward request the server served (a1 as received, dequantized) and the a2 it computed.
  void on_forward(uint64_t session, int64_t step, const torch::Tensor& attention_mask,
                  const torch::Tensor& a1, const torch::Tensor& a2);
  void on_backward(uint64_t session, int64_t step, const torch::Tensor& g2);
  // The true tokens of a client's training step: attacks the intercept with the same mask.
  void on_truth(const std::string& client, int64_t step, const torch::Tensor& input_ids,
                const torch::Tensor& attention_mask);

  // Per (client, strategy, attack): samples, ROUGE-L F1 and token accuracy (mean and
  // percentiles) and the worst attacked step's mean ROUGE-L; per attacked step the same means
  // ("steps"); per strategy the best attack over all steps ("best") and the worst step
  // ("worst_step": the attacked step, over clients, where the best attack's mean ROUGE-L F1 of
  // that step is highest; attacks named adaptive_* apart, in "worst_step_adaptive").
  nlohmann::json report() const;
  // The attack with the best mean ROUGE-L F1 so far, and on which strategy (for
  // a live policy); rouge_l 0 when nothing was scored.
  BestAttack best() const;

 private:
  struct Session {
    std::string client, strategy;
  };
  struct Pending {
    uint64_t session = 0;
    int64_t step = 0;
    Intercept intercept;
  };
  bool wanted(int64_t step) const { return plan_.every > 0 && step % plan_.every == 0; }

  std::vector<std::unique_ptr<Attack>> attacks_;
  EavesdropPlan plan_;
  Tokenizer tokenizer_;
  std::map<uint64_t, Session> sessions_;
  std::vector<Pending> pending_;  // intercepts waiting for their truth (a few steps at most)
  std::map<std::pair<std::string, std::string>, int64_t>
      batches_;  // (client, strategy) -> attacked
  std::map<std::tuple<std::string, std::string, std::string>, AttackScore> scores_;
  // (client, strategy, step, attack) -> that step's scores
  std::map<std::tuple<std::string, std::string, int64_t, std::string>, AttackScore> step_scores_;
};

}  // namespace gt
