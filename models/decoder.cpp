// DecoderLM assembly, loading and the causal LM loss.
#include "models/decoder.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <malloc.h>

#include <set>

#include "common/error.hpp"
#include "models/checkpoint.hpp"
#include "models/llama.hpp"
#include "models/opt.hpp"
#include "models/safetensors.hpp"

namespace gt {

namespace {

void let_go_of_weights(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.parameters()) p.set_data(torch::empty({0}, p.options()));
    // glibc keeps freed tensors of this size in its heap (its mmap threshold grows with the first
    // free), and a model's worth of hollow blocks would stay resident: hand them back now.
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace

bool is_hollow(const torch::nn::Module& m) {
  const auto params = m.parameters();
  return !params.empty() && params.front().numel() == 0;
}

DecoderLMImpl::DecoderLMImpl(const ModelConfig& c, BlockRange hollow) : cfg(c) {
  const bool opt = cfg.family == Family::opt;
  std::shared_ptr<EmbeddingsImpl> e;
  if (opt)
    e = std::make_shared<OptEmbeddingsImpl>(cfg);
  else
    e = std::make_shared<LlamaEmbeddingsImpl>(cfg);
  embed = register_module("embed", e);
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    std::shared_ptr<BlockImpl> b;
    if (opt)
      b = std::make_shared<OptBlockImpl>(cfg, i);
    else
      b = std::make_shared<LlamaBlockImpl>(cfg, i);
    if (hollow.contains(i)) let_go_of_weights(*b);
    blocks.push_back(register_module("block" + std::to_string(i), b));
  }
  if (opt)
    head = register_module("head", std::make_shared<OptHeadImpl>(cfg, e->token_embedding()));
  else
    head = register_module("head", std::make_shared<LlamaHeadImpl>(cfg, e->token_embedding()));
}

AttentionContext DecoderLMImpl::context(const torch::Tensor& attention_mask) const {
  return make_attention_context(cfg, attention_mask, dtype);
}

torch::Tensor DecoderLMImpl::forward(const torch::Tensor& input_ids,
                                     const torch::Tensor& attention_mask) {
  auto ctx = context(attention_mask);
  auto x = embed->forward(input_ids, attention_mask);
  for (auto& block : blocks) x = block->forward(x, ctx);
  return head->forward(x);
}

std::vector<torch::Tensor> DecoderLMImpl::hidden_states(const torch::Tensor& input_ids,
                                                        const torch::Tensor& attention_mask) {
  auto ctx = context(attention_mask);
  std::vector<torch::Tensor> out{embed->forward(input_ids, attention_mask)};
  for (auto& block : blocks) out.push_back(block->forward(out.back(), ctx));
  out.back() = head->final_hidden(out.back());
  return out;
}

std::vector<const PartImpl*> all_parts(const DecoderLMImpl& model) {
  std::vector<const PartImpl*> parts{model.embed.get()};
  for (auto& b : model.blocks) parts.push_back(b.get());
  parts.push_back(model.head.get());
  return parts;
}

std::vector<std::pair<std::string, torch::Tensor>> hf_named_parameters(
    const std::vector<const PartImpl*>& parts) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  std::set<const void*> seen;
  for (const auto* part : parts)
    for (const auto& p : part->named_parameters()) {
      auto name = part->hf_name(p.key());
      if (name.empty() || !seen.insert(p.value().unsafeGetTensorImpl()).second) continue;
      out.emplace_back(std::move(name), p.value());
    }
  return out;
}

DecoderLM make_decoder(const ModelConfig& cfg, uint64_t seed, BlockRange hollow) {
  torch::manual_seed(seed);
  DecoderLM model(cfg, hollow);
  torch::NoGradGuard no_grad;
  // Each tensor from a generator of its own (seed, position; a tied one once): the same values
  // whichever blocks are hollow, so a client's copy and a server's agree (and
  // bench/peer_split_step.py's random OPT, which draws alike).
  uint64_t position = 0;
  std::set<const void*> seen;
  for (auto& p : model->named_parameters()) {
    const auto& name = p.key();
    auto t = p.value();
    if (!seen.insert(t.unsafeGetTensorImpl()).second) continue;
    auto gen = at::detail::createCPUGenerator(seed * 1000003 + position++);
    if (t.numel() == 0) continue;  // a hollow block's
    if (t.dim() >= 2)
      t.normal_(0.0, 0.02, gen);
    else if (name.find("norm") != std::string::npos && name.size() > 7 &&
             name.compare(name.size() - 7, 7, ".weight") == 0)
      t.fill_(1.0);  // norm scales; norm biases (OPT's LayerNorm) start at 0 like other biases
    else
      t.zero_();
  }
  return model;
}

DecoderLM load_decoder(const std::string& dir, torch::ScalarType dtype, BlockRange hollow) {
  auto cfg = load_model_config(dir);
  CheckpointReader ckpt(dir);
  DecoderLM model(cfg, hollow);
  model->dtype = dtype;
  torch::NoGradGuard no_grad;
  for (auto& [name, param] : hf_named_parameters(all_parts(*model))) {
    if (param.numel() == 0) continue;  // a hollow block's
    // Some OPT checkpoints (e.g. facebook/opt-*) name tensors without the "model." prefix.
    auto stored = name;
    if (!ckpt.contains(stored) && stored.rfind("model.", 0) == 0 && ckpt.contains(stored.substr(6)))
      stored = stored.substr(6);
    auto value = ckpt.load(stored, param.sizes().vec(), dtype);
    param.set_data(value);
  }
  return model;
}

void save_decoder_weights(const std::string& path, const DecoderLMImpl& model) {
  auto named = hf_named_parameters(all_parts(model));
  for (auto& entry : named) entry.second = entry.second.detach();
  save_safetensors(path, named, {{"format", "pt"}});
}

torch::Tensor causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels) {
  const auto V = logits.size(-1);
  auto shifted_logits = logits.slice(1, 0, -1).reshape({-1, V}).to(torch::kFloat);  // (B*(T-1), V)
  auto shifted_labels = labels.slice(1, 1).reshape({-1});                           // (B*(T-1))
  return torch::nn::functional::cross_entropy(
      shifted_logits, shifted_labels,
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
}

torch::Tensor labels_from_mask(const torch::Tensor& input_ids,
                               const torch::Tensor& attention_mask) {
  return input_ids.masked_fill(attention_mask.eq(0), -100);
}

}  // namespace gt
