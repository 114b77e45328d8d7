// See adversarial_inverter.hpp.
#include "privacy/adversarial_inverter.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <sstream>
#include <string>

#include "common/error.hpp"
#include "privacy/inversion_net.hpp"

namespace gt {

AdversarialInverter::AdversarialInverter(const torch::Tensor& embedding, int64_t channels,
                                         AdversaryOptions options)
    : options_(options) {
  if (!(options_.lr > 0)) throw Error("adversarial inverter: lr must be > 0");
  if (options_.context < 0) throw Error("adversarial inverter: context must be >= 0");
  if (options_.max_tokens < 1) throw Error("adversarial inverter: max_tokens must be >= 1");
  if (!embedding.defined() || embedding.dim() != 2)
    throw Error("adversarial inverter: the token embedding must be (V, C)");
  const auto E = embedding.detach();
  if (channels < 1) throw Error("adversarial inverter: channels must be >= 1");
  const auto V = E.size(0);
  net_ = std::make_shared<InversionNetImpl>(channels, options_.context, E.size(1), V);
  initialise_inversion_net(*net_, options_.seed);
  net_->to(E.device());
  use_embedding_head(*net_, E, torch::arange(V, torch::kLong));
  optimizer_ = std::make_unique<torch::optim::Adam>(trainable_parameters(*net_),
                                                    torch::optim::AdamOptions(options_.lr));
  // From the seed alone, never from torch's global RNG. Distinct from the inverter's own
  // initialisation stream.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options_.seed ^ 0x9e3779b97f4a7c15ULL);
  decoy_of_ = torch::randperm(V, gen, torch::kLong).to(E.device());
}

AdversarialInverter::~AdversarialInverter() = default;

torch::Tensor AdversarialInverter::rows(const torch::Tensor& mask) {
  const auto real = mask.ne(0).flatten().nonzero().squeeze(1);
  const auto n = real.size(0);
  if (n <= options_.max_tokens) return real;
  // An even spread of max_tokens rows, shifted by a cursor that moves each call.
  const auto k = options_.max_tokens;
  const auto pick =
      (torch::floor(torch::arange(k, torch::kDouble) * (double(n) / double(k))).to(torch::kLong) +
       cursor_++) %
      n;
  return real.index_select(0, pick.to(real.device()));
}

torch::Tensor AdversarialInverter::logits(const torch::Tensor& a1, const torch::Tensor& mask,
                                          const torch::Tensor& at) {
  const auto h = net_->features(a1.to(torch::kFloat), mask.to(a1.device()));
  return net_->fc2(h.flatten(0, 1).index_select(0, at));
}

torch::Tensor AdversarialInverter::encoder_loss(const torch::Tensor& a1, const torch::Tensor& ids,
                                                const torch::Tensor& mask) {
  if (options_.fit_steps > 0 && updates_ <= options_.fit_steps)  // still fitting
    return torch::zeros({}, a1.options().dtype(torch::kFloat));
  const auto at = rows(mask.to(a1.device()));
  if (at.numel() == 0) return torch::zeros({}, a1.options().dtype(torch::kFloat));
  // The inverter is held fixed here: its weights take no part in the encoder's graph.
  std::vector<torch::Tensor> held;
  for (auto& p : trainable_parameters(*net_)) held.push_back(p), p.requires_grad_(false);
  const auto out = logits(a1, mask, at);
  for (auto& p : held) p.requires_grad_(true);
  const auto target = ids.to(a1.device()).flatten().index_select(0, at);
  const auto ce = torch::nn::functional::cross_entropy(
      out, target, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  const auto away = -ce.clamp_max(std::log(double(out.size(1)))).mean();
  // Decoys on top of moving away: the decoy alone is met by small moves that fool this
  // inverter only (an inverter fitted afresh through the pretrained adapter still read 0.42).
  if (options_.decoy && options_.fit_steps > 0)
    return away + torch::nn::functional::cross_entropy(out, decoys(target));
  return away;
}

torch::Tensor AdversarialInverter::decoys(const torch::Tensor& ids) const {
  const auto flat = ids.to(decoy_of_.device()).flatten();
  if (flat.numel() > 0 &&
      (flat.min().item<int64_t>() < 0 || flat.max().item<int64_t>() >= decoy_of_.size(0)))
    throw Error("adversarial inverter: a token id outside the vocabulary");
  return decoy_of_.index_select(0, flat).view(ids.sizes()).to(ids.device());
}

AdversaryScore AdversarialInverter::update(const torch::Tensor& a1_in, const torch::Tensor& ids,
                                           const torch::Tensor& mask) {
  const auto a1 = a1_in.detach();
  const auto at = rows(mask.to(a1.device()));
  AdversaryScore score;
  if (at.numel() == 0) return score;
  const bool learns = options_.fit_steps == 0 || updates_ < options_.fit_steps;
  ++updates_;
  const auto out = logits(a1, mask, at);
  const auto target = ids.to(a1.device()).flatten().index_select(0, at);
  const auto loss = torch::nn::functional::cross_entropy(out, target);
  if (learns) {
    optimizer_->zero_grad();
    loss.backward();
    optimizer_->step();
  }
  score.cross_entropy = loss.item<double>();
  score.accuracy = out.argmax(-1).eq(target).to(torch::kDouble).mean().item<double>();
  return score;
}

std::string AdversarialInverter::save() const {
  std::ostringstream out;
  torch::serialize::OutputArchive archive;
  net_->save(archive);
  torch::serialize::OutputArchive optimizer;
  optimizer_->save(optimizer);
  archive.write("optimizer", optimizer);
  archive.write("cursor", torch::tensor({cursor_, updates_}, torch::kLong));
  // The decoys are the secret a resumed client must keep: its seed may have come from the OS.
  archive.write("decoys", decoy_of_.cpu());
  archive.save_to(out);
  return out.str();
}

void AdversarialInverter::restore(const std::string& bytes) {
  try {
    std::istringstream in(bytes);
    torch::serialize::InputArchive archive;
    archive.load_from(in, net_->fc1->weight.device());
    std::vector<std::vector<int64_t>> shapes;
    for (const auto& p : net_->parameters()) shapes.push_back(p.sizes().vec());
    net_->load(archive);
    const auto loaded = net_->parameters();
    for (size_t i = 0; i < loaded.size(); ++i)
      if (loaded[i].sizes().vec() != shapes[i]) throw Error("shapes differ");
    torch::serialize::InputArchive optimizer;
    archive.read("optimizer", optimizer);
    optimizer_->load(optimizer);
    torch::Tensor cursor;
    archive.read("cursor", cursor);
    if (cursor.numel() != 2) throw Error("no cursor");
    torch::Tensor decoys;
    archive.read("decoys", decoys);
    const auto V = decoy_of_.size(0);
    if (decoys.scalar_type() != torch::kLong || decoys.dim() != 1 || decoys.size(0) != V ||
        !std::get<0>(decoys.sort()).equal(torch::arange(V, torch::kLong)))
      throw Error("its decoys are not a permutation of the vocabulary");
    cursor_ = cursor[0].item<int64_t>();
    updates_ = cursor[1].item<int64_t>();
    decoy_of_ = decoys.to(decoy_of_.device());
  } catch (const std::exception& e) {
    throw Error(std::string("adversarial inverter: not a saved state of this inverter: ") +
                e.what());
  }
}

}  // namespace gt
