// See privacy_objective.hpp.
#include "privacy/privacy_objective.hpp"

#include "common/error.hpp"
#include "privacy/token_distance_correlation.hpp"

namespace gt {

PrivacyObjective::PrivacyObjective(const torch::Tensor& token_embedding, int64_t channels,
                                   PrivacyOptions options)
    : options_(options), embedding_(token_embedding.detach().to(torch::kFloat).clone()) {
  if (options_.dcor_weight < 0 || options_.adversary_weight < 0)
    throw Error("privacy objective: weights must be >= 0");
  if (options_.dcor_tokens < 4) throw Error("privacy objective: dcor_tokens must be >= 4");
  if (options_.adversary_weight > 0) {
    inverter_ = std::make_unique<AdversarialInverter>(embedding_, channels, options_.adversary);
    auto a2 = options_.adversary;
    a2.seed = a2.seed * 2 + 1;  // its own initialisation
    a2_inverter_ = std::make_unique<AdversarialInverter>(embedding_, channels, a2);
  }
}

torch::Tensor PrivacyObjective::tokens(const torch::Tensor& ids,
                                       const torch::Device& device) const {
  return embedding_.index_select(0, ids.flatten().to(embedding_.device()))
      .view({ids.size(0), ids.size(1), embedding_.size(1)})
      .to(device);
}

PrivacyTerms PrivacyObjective::terms(const torch::Tensor& a1, const torch::Tensor& ids,
                                     const torch::Tensor& mask) {
  PrivacyTerms t;
  t.penalty = torch::zeros({}, a1.options().dtype(torch::kFloat));
  if (options_.dcor_weight > 0) {
    const auto r =
        token_distance_correlation(tokens(ids, a1.device()), a1, mask, options_.dcor_tokens);
    t.dcor = r.item<double>();
    t.penalty = t.penalty + options_.dcor_weight * r.to(torch::kFloat);
  } else {
    t.dcor = score(a1, ids, mask);
  }
  if (inverter_) {
    t.inverter_accuracy = inverter_->update(a1, ids, mask).accuracy;
    t.penalty = t.penalty + options_.adversary_weight * inverter_->encoder_loss(a1, ids, mask);
  }
  return t;
}

PrivacyTerms PrivacyObjective::a2_terms(const torch::Tensor& a2, const torch::Tensor& ids,
                                        const torch::Tensor& mask) {
  PrivacyTerms t;
  t.penalty = torch::zeros({}, a2.options().dtype(torch::kFloat));
  if (!a2_inverter_) return t;
  t.inverter_accuracy = a2_inverter_->update(a2, ids, mask).accuracy;
  t.penalty = options_.adversary_weight * a2_inverter_->encoder_loss(a2, ids, mask);
  return t;
}

double PrivacyObjective::score(const torch::Tensor& a1, const torch::Tensor& ids,
                               const torch::Tensor& mask) const {
  torch::NoGradGuard no_grad;
  return token_distance_correlation(tokens(ids, a1.device()), a1.detach(), mask,
                                    options_.dcor_tokens)
      .item<double>();
}

std::string PrivacyObjective::save() const {
  if (!inverter_) return {};
  // Two archives, the first's length up front.
  const auto a1 = inverter_->save(), a2 = a2_inverter_->save();
  return std::to_string(a1.size()) + "\n" + a1 + a2;
}

void PrivacyObjective::restore(const std::string& bytes) {
  if (!inverter_) {
    if (!bytes.empty()) throw Error("privacy objective: a saved inverter, but none is configured");
    return;
  }
  if (bytes.empty()) throw Error("privacy objective: no saved inverter, but one is configured");
  auto eol = bytes.find('\n');
  size_t n = 0;
  try {
    n = std::stoul(bytes.substr(0, eol));
  } catch (const std::exception&) {
    eol = std::string::npos;
  }
  if (eol == std::string::npos || eol > 20 || n > bytes.size() - eol - 1)
    throw Error("privacy objective: not a saved state of its inverters");
  inverter_->restore(bytes.substr(eol + 1, n));
  a2_inverter_->restore(bytes.substr(eol + 1 + n));
}

}  // namespace gt
