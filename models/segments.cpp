// Cutting a DecoderLM into input adapter, backbone and output adapter.
#include "models/segments.hpp"

#include <set>

#include "common/error.hpp"

namespace gt {
namespace {

template <typename Part>
std::vector<const PartImpl*> as_parts(const std::vector<std::shared_ptr<Part>>& xs) {
  std::vector<const PartImpl*> out;
  for (auto& x : xs) out.push_back(x.get());
  return out;
}

}  // namespace

void check_split_points(const ModelConfig& cfg, SplitPoints s) {
  const auto L = cfg.num_layers;
  if (s.n_in < 0 || s.n_out < 0 || s.n_in + s.n_out >= L)
    throw Error(
        "split points n_in=" + std::to_string(s.n_in) + ", n_out=" + std::to_string(s.n_out) +
        " out of range: the model has " + std::to_string(L) +
        " layers and the backbone needs at least one (0 <= n_in, 0 <= n_out, n_in + n_out < " +
        std::to_string(L) + ")");
}

InputAdapterImpl::InputAdapterImpl(std::shared_ptr<EmbeddingsImpl> e,
                                   std::vector<std::shared_ptr<BlockImpl>> bs)
    : embed(std::move(e)), blocks(std::move(bs)) {
  register_module("embed", embed);
  for (size_t i = 0; i < blocks.size(); ++i)
    register_module("block" + std::to_string(i), blocks[i]);
}

torch::Tensor InputAdapterImpl::forward(const torch::Tensor& input_ids,
                                        const torch::Tensor& attention_mask,
                                        const AttentionContext& ctx) {
  if (input_map.defined() && input_map.device() != input_ids.device())
    input_map = input_map.to(input_ids.device());
  auto x = embed->forward(input_map.defined() ? input_map.index({input_ids}) : input_ids,
                          attention_mask);
  return run_blocks(blocks, x, ctx, packed);
}

std::vector<const PartImpl*> InputAdapterImpl::parts() const {
  auto out = as_parts(blocks);
  out.insert(out.begin(), embed.get());
  return out;
}

BackboneImpl::BackboneImpl(std::vector<std::shared_ptr<BlockImpl>> bs) : blocks(std::move(bs)) {
  for (size_t i = 0; i < blocks.size(); ++i)
    register_module("block" + std::to_string(i), blocks[i]);
}

torch::Tensor BackboneImpl::forward(const torch::Tensor& a1, const AttentionContext& ctx) {
  if (!blocks.empty() && is_hollow(*blocks.front()))
    throw Error(
        "backbone: this party holds no backbone weights (a client node: the server runs "
        "the backbone)");
  return run_blocks(blocks, a1, ctx, packed);
}

std::vector<const PartImpl*> BackboneImpl::parts() const {
  return as_parts(blocks);
}

OutputAdapterImpl::OutputAdapterImpl(std::vector<std::shared_ptr<BlockImpl>> bs,
                                     std::shared_ptr<HeadImpl> h)
    : blocks(std::move(bs)), head(std::move(h)) {
  for (size_t i = 0; i < blocks.size(); ++i)
    register_module("block" + std::to_string(i), blocks[i]);
  register_module("head", head);
}

torch::Tensor OutputAdapterImpl::forward(const torch::Tensor& a2, const AttentionContext& ctx) {
  return head->forward(hidden(a2, ctx));
}

torch::Tensor OutputAdapterImpl::hidden(const torch::Tensor& a2, const AttentionContext& ctx) {
  return run_blocks(blocks, a2, ctx, packed);
}

LmLoss OutputAdapterImpl::lm_loss(const torch::Tensor& a2, const AttentionContext& ctx,
                                  const torch::Tensor& labels) {
  const auto x = hidden(a2, ctx);
  if (!label_only_logits) {
    const auto logits = head->forward(x);  // (B, T, V)
    const auto next = labels.slice(1, 1).reshape({-1}).to(logits.device());
    auto sum = torch::nn::functional::cross_entropy(
        logits.slice(1, 0, -1).reshape({-1, logits.size(-1)}).to(torch::kFloat), next,
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kSum));
    return {sum, next.ne(-100).sum().item<int64_t>()};
  }
  const auto rows = labelled_rows(x, labels);
  const auto n = rows.targets.size(0);
  return {linear_cross_entropy_sum(head->final_hidden(rows.hidden), head->output_embedding(),
                                   rows.targets),
          n};
}

torch::Tensor OutputAdapterImpl::label_log_probs(const torch::Tensor& a2,
                                                 const AttentionContext& ctx,
                                                 const torch::Tensor& labels) {
  torch::NoGradGuard no_grad;
  const auto x = hidden(a2, ctx);
  const auto next = labels.slice(1, 1).to(x.device());  // (B, T-1)
  const auto keep = next.ne(-100);
  auto out = torch::zeros(next.sizes(), x.options().dtype(torch::kFloat));
  if (!label_only_logits) {
    const auto logits = head->forward(x).slice(1, 0, -1).to(torch::kFloat);  // (B, T-1, V)
    const auto lp =
        logits.gather(2, next.clamp_min(0).unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1);
    return lp.masked_fill(keep.logical_not(), 0.0);
  }
  const auto rows = labelled_rows(x, labels);
  out.index_put_({keep}, linear_target_log_probs(head->final_hidden(rows.hidden),
                                                 head->output_embedding(), rows.targets));
  return out;
}

std::vector<const PartImpl*> OutputAdapterImpl::parts() const {
  auto out = as_parts(blocks);
  out.push_back(head.get());
  return out;
}

Segments split_model(const DecoderLM& model, SplitPoints s) {
  check_split_points(model->cfg, s);
  const auto& b = model->blocks;
  const auto L = static_cast<int64_t>(b.size());
  Segments seg;
  seg.cfg = model->cfg;
  seg.split = s;
  seg.dtype = model->dtype;
  seg.input = InputAdapter(model->embed,
                           std::vector<std::shared_ptr<BlockImpl>>(b.begin(), b.begin() + s.n_in));
  seg.backbone = Backbone(
      std::vector<std::shared_ptr<BlockImpl>>(b.begin() + s.n_in, b.begin() + (L - s.n_out)));
  seg.output = OutputAdapter(
      std::vector<std::shared_ptr<BlockImpl>>(b.begin() + (L - s.n_out), b.end()), model->head);
  return seg;
}

void set_compute_options(Segments& seg, bool packed_batches, bool label_only_logits) {
  if (!seg.input.is_empty()) seg.input->packed = packed_batches;
  if (!seg.backbone.is_empty()) seg.backbone->packed = packed_batches;
  if (!seg.output.is_empty()) {
    seg.output->packed = packed_batches;
    seg.output->label_only_logits = label_only_logits;
  }
}

torch::Device Segments::device() const {
  if (!input.is_empty() && input->embed) return input->embed->token_embedding().device();
  if (!backbone.is_empty())
    for (const auto& p : backbone->parameters()) return p.device();
  return torch::Device(torch::kCPU);
}

void to_device(Segments& seg, const torch::Device& device) {
  // Module::to moves each parameter with set_data: a weight tied to another module (the LM
  // head to the token embedding) is the same tensor and moves once.
  if (!seg.input.is_empty()) seg.input->to(device);
  if (!seg.backbone.is_empty()) seg.backbone->to(device);
  if (!seg.output.is_empty()) seg.output->to(device);
}

std::vector<torch::Tensor> unique_parameters(const std::vector<const torch::nn::Module*>& modules,
                                             bool trainable_only) {
  std::vector<torch::Tensor> out;
  std::set<const void*> seen;
  for (const auto* m : modules)
    for (const auto& p : m->parameters()) {
      if (trainable_only && !p.requires_grad()) continue;
      if (seen.insert(p.unsafeGetTensorImpl()).second) out.push_back(p);
    }
  return out;
}

}  // namespace gt
