// See eavesdropper.hpp.
#include "privacy/attacks/eavesdropper.hpp"

namespace gt {
namespace {

constexpr size_t kMaxPending = 64;  // intercepts whose truth never came (eval batches) age out

// Attacks that know the defence (shadow_client.hpp) are reported apart from the others.
bool is_adaptive(const std::string& attack) {
  return attack.rfind("adaptive_", 0) == 0;
}

}  // namespace

Eavesdropper::Eavesdropper(std::vector<std::unique_ptr<Attack>> attacks, EavesdropPlan plan,
                           Tokenizer tokenizer)
    : attacks_(std::move(attacks)), plan_(plan), tokenizer_(std::move(tokenizer)) {}

void Eavesdropper::on_session(uint64_t session, const std::string& client,
                              const std::string& strategy) {
  sessions_[session] = {client, strategy};
}

void Eavesdropper::on_forward(uint64_t session, int64_t step, const torch::Tensor& attention_mask,
                              const torch::Tensor& a1, const torch::Tensor& a2) {
  if (!sessions_.count(session)) return;
  const auto& s = sessions_[session];
  const auto attacked = batches_[{s.client, s.strategy}];
  // Until the first step is scored every forward waits for its truth (evaluation batches,
  // which get none, age out), so the design's first training step is always attacked.
  if (attacked >= plan_.max_batches || (attacked > 0 && !wanted(step))) return;
  Pending p;
  p.session = session;
  p.step = step;
  p.intercept.attention_mask = attention_mask;
  p.intercept.a1 = a1;
  p.intercept.a2 = a2;
  pending_.push_back(std::move(p));
  if (pending_.size() > kMaxPending) pending_.erase(pending_.begin());
}

void Eavesdropper::on_backward(uint64_t session, int64_t step, const torch::Tensor& g2) {
  for (auto it = pending_.rbegin(); it != pending_.rend(); ++it)
    if (it->session == session && it->step == step && !it->intercept.g2.defined() &&
        it->intercept.a2.sizes() == g2.sizes()) {
      it->intercept.g2 = g2;
      return;
    }
}

void Eavesdropper::on_truth(const std::string& client, int64_t step, const torch::Tensor& input_ids,
                            const torch::Tensor& attention_mask) {
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    const auto& s = sessions_[it->session];
    if (s.client != client || it->step != step ||
        !it->intercept.attention_mask.equal(attention_mask))
      continue;
    const auto truth = true_tokens(input_ids, attention_mask);
    for (auto& attack : attacks_) {
      if (!attack->applicable(it->intercept)) continue;
      auto score = score_reconstruction(attack->name(), attack->reconstruct(it->intercept), truth,
                                        tokenizer_);
      for (auto* into :
           {&scores_[std::make_tuple(s.client, s.strategy, attack->name())],
            &step_scores_[std::make_tuple(s.client, s.strategy, step, attack->name())]})
        if (into->samples == 0)
          *into = score;
        else
          merge_scores(*into, score);
    }
    ++batches_[{s.client, s.strategy}];
    pending_.erase(it);
    return;
  }
}

nlohmann::json Eavesdropper::report() const {
  // Per step: every attack's means, and per strategy the step whose best attack is highest.
  auto steps = nlohmann::json::array();
  std::map<std::tuple<std::string, std::string, std::string>, double> worst_of_attack;
  // (adaptive?, client, strategy, step) -> that step's best attack of the group
  std::map<std::tuple<bool, std::string, std::string, int64_t>, std::pair<std::string, double>>
      step_best;
  for (const auto& [key, score] : step_scores_) {
    const auto& [client, strategy, step, attack] = key;
    steps.push_back({{"client", client},
                     {"strategy", strategy},
                     {"step", step},
                     {"attack", attack},
                     {"samples", score.samples},
                     {"rouge_l", score.rouge_l},
                     {"token_accuracy", score.token_accuracy}});
    auto& w = worst_of_attack[{client, strategy, attack}];
    w = std::max(w, score.rouge_l);
    auto& b = step_best[{is_adaptive(attack), client, strategy, step}];
    if (b.first.empty() || score.rouge_l > b.second) b = {attack, score.rouge_l};
  }
  auto worst_json = nlohmann::json::object(), worst_adaptive = nlohmann::json::object();
  for (const auto& [key, b] : step_best) {
    const auto& [adaptive, client, strategy, step] = key;
    auto& into = adaptive ? worst_adaptive : worst_json;
    if (!into.contains(strategy) || b.second > into[strategy]["rouge_l"].get<double>())
      into[strategy] = {
          {"client", client}, {"step", step}, {"attack", b.first}, {"rouge_l", b.second}};
  }
  auto rows = nlohmann::json::array();
  std::map<std::string, std::pair<std::string, double>> best;  // strategy -> (attack, rouge)
  for (const auto& [key, score] : scores_) {
    const auto& [client, strategy, attack] = key;
    const auto r = distribution(score.rouge_l_samples);
    const auto t = distribution(score.token_accuracy_samples);
    rows.push_back({{"client", client},
                    {"strategy", strategy},
                    {"attack", attack},
                    {"samples", score.samples},
                    {"rouge_l", score.rouge_l},
                    {"rouge_l_p10", r.p10},
                    {"rouge_l_p50", r.p50},
                    {"rouge_l_p90", r.p90},
                    {"rouge_l_worst_step", worst_of_attack[key]},
                    {"token_accuracy", score.token_accuracy},
                    {"token_accuracy_p50", t.p50}});
    auto& b = best[strategy];
    if (b.first.empty() || score.rouge_l > b.second) b = {attack, score.rouge_l};
  }
  auto best_json = nlohmann::json::object();
  for (const auto& [strategy, b] : best)
    best_json[strategy] = {{"attack", b.first}, {"rouge_l", b.second}};
  return {{"scores", rows},
          {"best", best_json},
          {"worst_step", worst_json},
          {"worst_step_adaptive", worst_adaptive},
          {"steps", steps}};
}

BestAttack Eavesdropper::best() const {
  BestAttack best;
  for (const auto& [key, score] : scores_)
    if (score.rouge_l > best.rouge_l) best = {std::get<2>(key), std::get<1>(key), score.rouge_l};
  return best;
}

}  // namespace gt
