// Membership inference on adapters an Offline/offsite client returns: the server holds the
// pretrained model, the tuned adapters and candidate texts. A candidate's score is its loss
// under the pretrained model minus its loss under the tuned one (the reference-model / loss-
// ratio attack of Carlini et al. 2021 and Mireshghallah et al. 2022): fine-tuning lowers the
// loss of the texts it saw more than that of similar texts it did not, and the reference
// model cancels how hard a text is on its own.
#pragma once

#include <cstdint>
#include <vector>

#include "data/batch_source.hpp"
#include "models/segments.hpp"

namespace gt {

struct MembershipResult {
  double auc = 0;        // P(score of a member > score of a non-member), ties half
  double advantage = 0;  // max over thresholds of TPR - FPR
  size_t members = 0, non_members = 0;
};

// Per sample: mean next-token NLL over its labelled tokens (labels != -100, as causal_lm_loss),
// through input adapter -> backbone -> output adapter. Samples without a labelled token get 0.
std::vector<double> per_sample_loss(const Segments& model, const BatchSource& data,
                                    int64_t batch = 16);

// `pretrained` and `tuned` share the backbone's structure (they may share its modules);
// `tuned` holds the client's adapters. Scores every member and non-member; no gradients.
MembershipResult membership_inference(const Segments& pretrained, const Segments& tuned,
                                      const BatchSource& members, const BatchSource& non_members,
                                      int64_t batch = 16);

// AUC by the Mann-Whitney rank statistic (higher score = member), ties counted half; 0.5 when
// either side is empty.
double roc_auc(const std::vector<double>& member_scores,
               const std::vector<double>& non_member_scores);
// max over thresholds s of P(member score >= s) - P(non-member score >= s), at least 0.
double max_advantage(const std::vector<double>& member_scores,
                     const std::vector<double>& non_member_scores);

}  // namespace gt
