// Loss-difference membership scores and their ROC summaries.
#include "privacy/attacks/membership.hpp"

#include <algorithm>
#include <utility>

#include "common/error.hpp"

namespace gt {
namespace {

// (B,) mean NLL of each sample's labelled next tokens; 0 where a sample has none.
torch::Tensor batch_losses(const Segments& model, const LmBatch& cpu_batch) {
  const auto b = to_device(cpu_batch, model.device());
  auto ctx = make_attention_context(model.cfg, b.attention_mask, model.dtype);
  auto a1 = model.input.ptr()->forward(b.input_ids, b.attention_mask, ctx);
  auto a2 = model.backbone.ptr()->forward(a1, ctx);
  auto log_probs = model.output.ptr()->label_log_probs(a2, ctx, b.labels);  // (B, T-1)
  auto counted = b.labels.slice(1, 1).ne(-100).to(log_probs.device(), torch::kFloat).sum(1);
  return -log_probs.sum(1) / counted.clamp_min(1);
}

// Pairs (score, is_member), highest score first.
std::vector<std::pair<double, bool>> ranked(const std::vector<double>& members,
                                            const std::vector<double>& non_members) {
  std::vector<std::pair<double, bool>> all;
  for (double s : members) all.emplace_back(s, true);
  for (double s : non_members) all.emplace_back(s, false);
  std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.first > b.first; });
  return all;
}

}  // namespace

std::vector<double> per_sample_loss(const Segments& model, const BatchSource& data, int64_t batch) {
  if (batch < 1) throw Error("per_sample_loss: batch must be at least 1");
  torch::NoGradGuard no_grad;
  std::vector<double> out;
  out.reserve(data.size());
  for (size_t start = 0; start < data.size(); start += static_cast<size_t>(batch)) {
    std::vector<size_t> idx;
    for (size_t i = start; i < std::min(data.size(), start + static_cast<size_t>(batch)); ++i)
      idx.push_back(i);
    auto losses = batch_losses(model, data.batch(idx)).to(torch::kCPU, torch::kDouble);
    for (int64_t i = 0; i < losses.size(0); ++i) out.push_back(losses[i].item<double>());
  }
  return out;
}

double roc_auc(const std::vector<double>& members, const std::vector<double>& non_members) {
  if (members.empty() || non_members.empty()) return 0.5;
  // Mann-Whitney U of the members: average ranks (1 = lowest) over tied groups.
  auto all = ranked(members, non_members);
  std::reverse(all.begin(), all.end());
  double rank_sum = 0;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    size_t in_group = 0;
    while (j < all.size() && all[j].first == all[i].first) in_group += all[j++].second;
    rank_sum += static_cast<double>(in_group) * (static_cast<double>(i + 1 + j) / 2.0);
    i = j;
  }
  const double m = static_cast<double>(members.size()), n = static_cast<double>(non_members.size());
  return (rank_sum - m * (m + 1) / 2) / (m * n);
}

double max_advantage(const std::vector<double>& members, const std::vector<double>& non_members) {
  if (members.empty() || non_members.empty()) return 0;
  // Sweep thresholds down through the distinct scores; ties move together.
  const auto all = ranked(members, non_members);
  double tp = 0, fp = 0, best = 0;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    while (j < all.size() && all[j].first == all[i].first) (all[j++].second ? tp : fp) += 1;
    best = std::max(best, tp / static_cast<double>(members.size()) -
                              fp / static_cast<double>(non_members.size()));
    i = j;
  }
  return best;
}

MembershipResult membership_inference(const Segments& pretrained, const Segments& tuned,
                                      const BatchSource& members, const BatchSource& non_members,
                                      int64_t batch) {
  auto scores = [&](const BatchSource& data) {
    auto ref = per_sample_loss(pretrained, data, batch);
    auto own = per_sample_loss(tuned, data, batch);
    for (size_t i = 0; i < ref.size(); ++i) ref[i] -= own[i];
    return ref;
  };
  const auto in = scores(members), out = scores(non_members);
  MembershipResult r;
  r.auc = roc_auc(in, out);
  r.advantage = max_advantage(in, out);
  r.members = in.size();
  r.non_members = out.size();
  return r;
}

}  // namespace gt
