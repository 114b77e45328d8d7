// Dummy embeddings optimised with Adam against the forward (a1) and backward (g2) evidence.
// The backward term differentiates a vector-Jacobian product through the output adapter
// (double backward), so its graph at the intercepted a2 is built once and reused every step.
#include "privacy/attacks/gradient_matching.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include "common/error.hpp"
#include "models/llama.hpp"
#include "models/opt.hpp"

namespace gt {
namespace {

using torch::indexing::Slice;

// The token-embedding table as fixed attacker data (V, E), float.
torch::Tensor token_table(const Segments& model) {
  return model.input->embed->token_embedding().detach().to(torch::kFloat);
}

// Mean squared distance of the embedding rows from their mean: the scale of the dummy space.
double embedding_spread(const torch::Tensor& table) {
  return (table - table.mean(0, true)).pow(2).sum(1).mean().item<double>();
}

// EmbeddingsImpl::forward from embedding vectors instead of ids (B, T, E) -> (B, T, C): the
// same projection and positions, so the dummy enters the input adapter as a real token would.
torch::Tensor embed_vectors(EmbeddingsImpl& embed, const torch::Tensor& vectors,
                            const torch::Tensor& attention_mask) {
  if (auto* opt = dynamic_cast<OptEmbeddingsImpl*>(&embed)) {
    auto x = opt->project_in ? opt->project_in(vectors) : vectors;
    auto mask = attention_mask.to(torch::kLong);
    auto positions = torch::cumsum(mask, 1) * mask - 1;  // as OptEmbeddingsImpl::forward
    return x + opt->embed_positions(positions + 2);      // OPT's position offset
  }
  if (dynamic_cast<LlamaEmbeddingsImpl*>(&embed)) return vectors;  // positions enter by RoPE
  throw Error("gradient_matching: unsupported embedding type (OPT and LLaMA only)");
}

// Squared distance to each token up to a per-row constant: |e_v|^2 - 2 d.e_v, (B, T, V).
torch::Tensor token_distances(const torch::Tensor& dummy, const torch::Tensor& table) {
  return table.pow(2).sum(1) - 2 * torch::matmul(dummy, table.t());
}

// The head row each soft label selects, in expectation: sum_v p_v W_v with
// p = softmax(-|d - e_v|^2 / tau) over the k tokens nearest to d (all when k = 0 or k >= V).
// `next` (B, T', E) -> (B, T', E'). The top-k cut leaves one matmul over the vocabulary per
// step, without gradient (cheaper for large vocabularies, weaker: see the options).
torch::Tensor soft_label_rows(const torch::Tensor& next, const torch::Tensor& table,
                              const torch::Tensor& head, double tau, int64_t k) {
  if (k <= 0 || k >= table.size(0))
    return torch::matmul(torch::softmax(-token_distances(next, table) / tau, -1), head);
  torch::Tensor idx;
  {
    torch::NoGradGuard no_grad;
    idx = std::get<1>(token_distances(next, table).topk(k, -1, /*largest=*/false));
  }
  auto shape = idx.sizes().vec();  // (B, T', k)
  auto rows = table.index_select(0, idx.flatten()).view({shape[0], shape[1], k, -1});
  auto dist = rows.pow(2).sum(-1) - 2 * (rows * next.unsqueeze(2)).sum(-1);
  auto p = torch::softmax(-dist / tau, -1).unsqueeze(-1);
  return (p * head.index_select(0, idx.flatten()).view({shape[0], shape[1], k, -1})).sum(2);
}

Reconstruction real_positions(const torch::Tensor& ids, const torch::Tensor& attention_mask) {
  auto ids_cpu = ids.to(torch::kCPU, torch::kLong).contiguous();
  auto mask_cpu = attention_mask.to(torch::kCPU, torch::kLong).contiguous();
  auto id = ids_cpu.accessor<int64_t, 2>();
  auto mask = mask_cpu.accessor<int64_t, 2>();
  Reconstruction out(ids.size(0));
  for (int64_t b = 0; b < ids.size(0); ++b)
    for (int64_t t = 0; t < ids.size(1); ++t)
      if (mask[b][t] != 0) out[b].push_back(id[b][t]);
  return out;
}

torch::Tensor mean_start(const torch::Tensor& table, const torch::Tensor& attention_mask,
                         double spread, uint64_t seed) {
  const auto B = attention_mask.size(0), T = attention_mask.size(1), E = table.size(1);
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(seed);
  // Small noise breaks the symmetry between positions that see the same context.
  auto noise = torch::randn({B, T, E}, gen, torch::kFloat) * (0.1 * std::sqrt(spread / E));
  return table.mean(0).view({1, 1, E}) + noise.to(table.device());
}

torch::Tensor initial_start(const torch::Tensor& table, const torch::Tensor& attention_mask,
                            const Reconstruction& initial) {
  const auto B = attention_mask.size(0), T = attention_mask.size(1);
  if (static_cast<int64_t>(initial.size()) != B)
    throw Error("gradient_matching: initial reconstruction has " + std::to_string(initial.size()) +
                " samples, the batch " + std::to_string(B));
  auto mask_cpu = attention_mask.to(torch::kCPU, torch::kLong).contiguous();
  auto mask = mask_cpu.accessor<int64_t, 2>();
  auto ids = torch::zeros({B, T}, torch::kLong);
  auto id = ids.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    size_t k = 0, real = 0;
    for (int64_t t = 0; t < T; ++t) {
      if (mask[b][t] == 0) continue;
      ++real;
      if (k < initial[b].size()) id[b][t] = initial[b][k++];
    }
    if (k != initial[b].size() || k != real)
      throw Error("gradient_matching: initial reconstruction of sample " + std::to_string(b) +
                  " has " + std::to_string(initial[b].size()) +
                  " tokens, not one per real position");
  }
  auto start = table.index_select(0, ids.flatten().to(table.device())).view({B, T, -1});
  auto pad = mask_cpu.eq(0).unsqueeze(-1).to(table.device());
  return torch::where(pad, table.mean(0).expand_as(start), start);
}

// Relative squared error of input_adapter(dummy) against the intercepted a1, real positions.
struct ForwardTerm {
  InputAdapter input;
  torch::ScalarType dtype;
  torch::Tensor mask, target;  // (B, T, 1) float, (B, T, C) float
  AttentionContext ctx;

  torch::Tensor loss(const torch::Tensor& dummy, const torch::Tensor& attention_mask) const {
    auto x = embed_vectors(*input.ptr()->embed, dummy.to(dtype), attention_mask);
    for (auto& block : input.ptr()->blocks) x = block->forward(x, ctx);
    auto diff = (x.to(torch::kFloat) - target) * mask;
    return diff.pow(2).sum() / (target * mask).pow(2).sum().clamp_min(1e-12);
  }
};

ForwardTerm forward_term(Segments& model, const Intercept& in, const AttentionContext& ctx) {
  auto mask = in.attention_mask.to(torch::kFloat).unsqueeze(-1);
  return {model.input, model.dtype, mask, in.a1.to(torch::kFloat), ctx};
}

// The head's (V, E) output matrix: logits = final_hidden(x) W^T for OPT and LLaMA.
torch::Tensor head_matrix(HeadImpl& head) {
  auto params = head.named_parameters(/*recurse=*/false);
  if (auto* w = params.find("lm_head")) return w->detach().to(torch::kFloat);
  throw Error("gradient_matching: the output head has no lm_head matrix");
}

// 1 - cosine(g2_hat, g2) per sample, where g2_hat = d CE(soft labels, logits) / d a2 at the
// intercepted a2. CE's gradient w.r.t. the logits at t is (softmax(z_t) - p_{t+1}) / N, and
// the head is linear, so w.r.t. the final hidden state it is (softmax(z_t) W - p_{t+1} W) / N:
// a vector-Jacobian product of the fixed graph h(a2) with a cotangent linear in the soft
// labels, which keeps the double backward off the (V, E) head.
struct BackwardTerm {
  torch::Tensor a2, hidden;    // a2 leaf, final hidden state h(a2) with its graph
  torch::Tensor head;          // W (V, E) float
  torch::Tensor predicted;     // softmax(z_t) W for t < T - 1, (B, T - 1, E), detached
  torch::Tensor label_mask;    // (B, T - 1, 1): position t + 1 is a real token
  torch::Tensor mask, target;  // (B, T, 1) float, g2 (B, T, C) float
  double count = 1;            // labelled tokens: causal_lm_loss takes their mean

  // label_rows: (B, T - 1, E), p_{t+1} W for t < T - 1 (soft_label_rows); weights
  // (B, T - 1, 1) in [0, 1]: the attacker's guess of which positions carry a loss.
  torch::Tensor loss(const torch::Tensor& label_rows, const torch::Tensor& weights) const {
    auto cot = (predicted - label_rows) * (label_mask * weights) / count;
    cot = torch::cat({cot, torch::zeros({cot.size(0), 1, cot.size(2)}, cot.options())}, 1);
    auto g = torch::autograd::grad({hidden}, {a2}, {cot.to(hidden.scalar_type())},
                                   /*retain_graph=*/true, /*create_graph=*/true)[0];
    auto guess = (g.to(torch::kFloat) * mask).flatten(1);
    auto truth = (target * mask).flatten(1);
    return (1 - torch::cosine_similarity(guess, truth, 1, 1e-12)).mean();
  }
};

BackwardTerm backward_term(Segments& model, const Intercept& in, const AttentionContext& ctx) {
  BackwardTerm term;
  auto& out = *model.output;
  term.a2 = in.a2.detach().to(model.dtype).requires_grad_(true);
  auto x = term.a2;
  for (auto& block : out.blocks) x = block->forward(x, ctx);
  term.hidden = out.head->final_hidden(x);
  term.head = head_matrix(*out.head);
  const auto T = in.attention_mask.size(1);
  {
    torch::NoGradGuard no_grad;
    auto h = term.hidden.index({Slice(), Slice(0, T - 1)}).to(torch::kFloat);
    term.predicted = torch::matmul(torch::softmax(torch::matmul(h, term.head.t()), -1), term.head);
  }
  auto m = in.attention_mask.to(torch::kFloat);
  term.label_mask = m.index({Slice(), Slice(1, T)}).unsqueeze(-1);
  term.count = std::max(1.0, term.label_mask.sum().item<double>());
  term.mask = m.unsqueeze(-1);
  term.target = in.g2.to(torch::kFloat);
  return term;
}

}  // namespace

GradientMatching::GradientMatching(Segments pretrained, GradientMatchingOptions options)
    : model_(std::move(pretrained)), options_(options) {
  const auto& o = options_;
  if (o.steps < 0 || o.lr <= 0 || o.forward_weight < 0 || o.backward_weight < 0 ||
      o.label_temperature <= 0 || o.label_candidates < 0 || o.label_mask_lr <= 0)
    throw Error(
        "gradient_matching: steps >= 0, lr > 0, term weights >= 0, label_temperature > 0, "
        "label_candidates >= 0 and label_mask_lr > 0 required");
}

bool GradientMatching::applicable(const Intercept& in) const {
  if (!in.attention_mask.defined()) return false;
  if (options_.forward_weight > 0 && !in.a1.defined()) return false;
  if (options_.backward_weight > 0 && !(in.a2.defined() && in.g2.defined())) return false;
  return options_.forward_weight > 0 || options_.backward_weight > 0;
}

Reconstruction GradientMatching::reconstruct(const Intercept& in) {
  const auto table = token_table(model_);
  return run(in, mean_start(table, in.attention_mask, embedding_spread(table), options_.seed));
}

Reconstruction GradientMatching::reconstruct_from(const Intercept& in,
                                                  const Reconstruction& initial) {
  return run(in, initial_start(token_table(model_), in.attention_mask, initial));
}

Reconstruction GradientMatching::run(const Intercept& in, torch::Tensor dummy) {
  if (!applicable(in))
    throw Error("gradient_matching: the intercept lacks what the enabled terms need");
  const auto table = token_table(model_);
  const double spread = embedding_spread(table);
  const double tau = options_.label_temperature * spread;
  const auto ctx = make_attention_context(model_.cfg, in.attention_mask, model_.dtype);
  const bool use_forward = options_.forward_weight > 0, use_backward = options_.backward_weight > 0;
  std::optional<ForwardTerm> fwd;
  std::optional<BackwardTerm> bwd;
  if (use_forward) fwd = forward_term(model_, in, ctx);
  if (use_backward) bwd = backward_term(model_, in, ctx);

  dummy = dummy.detach().clone().requires_grad_(true);
  // lr in units of the per-coordinate embedding spread, so one setting fits every model.
  const double lr = options_.lr * std::sqrt(spread / static_cast<double>(table.size(1)));
  torch::optim::Adam adam({dummy}, torch::optim::AdamOptions(lr));
  std::vector<torch::Tensor> vars{dummy};
  // Which positions carry a loss, as logits of weights; starts near "all of them".
  auto label_logits = torch::full({dummy.size(0), dummy.size(1) - 1, 1}, 2.0, dummy.options());
  label_logits.requires_grad_(bwd && options_.learn_label_mask);
  torch::optim::Adam label_adam({label_logits}, torch::optim::AdamOptions(options_.label_mask_lr));
  if (label_logits.requires_grad()) vars.push_back(label_logits);
  for (int64_t step = 0; step < options_.steps; ++step) {
    auto total = torch::zeros({}, dummy.options());
    if (fwd) total = total + options_.forward_weight * fwd->loss(dummy, in.attention_mask);
    if (bwd) {
      auto next = dummy.index({Slice(), Slice(1, torch::indexing::None)});
      auto rows = soft_label_rows(next, table, bwd->head, tau, options_.label_candidates);
      auto weights = label_logits.requires_grad() ? torch::sigmoid(label_logits)
                                                  : torch::ones_like(label_logits);
      total = total + options_.backward_weight * bwd->loss(rows, weights);
    }
    // Gradients for the attack's own variables only (assigned, so no zero_grad): the
    // attacker's model copy keeps no parameter gradients.
    auto grads = torch::autograd::grad({total}, vars, {}, /*retain_graph=*/true);
    for (size_t i = 0; i < vars.size(); ++i) vars[i].mutable_grad() = grads[i];
    adam.step();
    if (label_logits.requires_grad()) label_adam.step();
  }
  torch::NoGradGuard no_grad;
  return real_positions(token_distances(dummy, table).argmin(-1), in.attention_mask);
}

}  // namespace gt
