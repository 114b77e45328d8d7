// The inversion network, its training on public text through the pretrained model, and
// argmax decoding of intercepted rows.
#include "privacy/attacks/learned_inversion.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "common/error.hpp"
#include "models/decoder.hpp"
#include "privacy/attacks/scoring.hpp"
#include "privacy/inversion_net.hpp"

namespace gt {

namespace {

void check_options(const LearnedInversionOptions& o) {
  if (o.steps < 1) throw Error("learned inversion: steps must be >= 1");
  if (o.batch < 1) throw Error("learned inversion: batch size must be >= 1");
  if (!(o.lr > 0)) throw Error("learned inversion: learning rate must be > 0");
  if (o.hidden < 0) throw Error("learned inversion: hidden width must be >= 0");
  if (o.context < 0) throw Error("learned inversion: context must be >= 0");
  if (o.random_rows < 0) throw Error("learned inversion: random rows must be >= 0");
}

// The first `rows` rows of `batch` get random ids at every real position but the first (BOS
// stays), so the net also learns tokens its public text never shows: half drawn from `unseen`
// (the tokens the public text lacks, whose pretrained embeddings are nearly alike and take many
// samples to tell apart), half from the whole vocabulary [0, vocab).
void randomise_rows(LmBatch& batch, int64_t rows, int64_t vocab, const torch::Tensor& unseen,
                    at::Generator& gen) {
  rows = std::min(rows, batch.input_ids.size(0));
  if (rows == 0) return;
  const auto ids = batch.input_ids.slice(0, 0, rows);
  auto real = batch.attention_mask.slice(0, 0, rows).ne(0);
  real.select(1, 0).fill_(false);
  auto random = torch::randint(vocab, ids.sizes(), gen, torch::kLong);
  if (unseen.numel() > 0) {
    const auto pick =
        unseen.index({torch::randint(unseen.numel(), ids.sizes(), gen, torch::kLong)});
    random = torch::where(torch::rand(ids.sizes(), gen).lt(0.5), pick, random);
  }
  batch.input_ids = batch.input_ids.clone();
  batch.input_ids.slice(0, 0, rows).copy_(torch::where(real, random, ids));
}

const torch::Tensor& tapped(const Intercept& in, Tap tap) {
  switch (tap) {
    case Tap::a1:
      return in.a1;
    case Tap::a2:
      return in.a2;
    case Tap::g2:
      break;
  }
  return in.g2;
}

// Sample order: reshuffled each pass with a fixed seed (std::shuffle's algorithm is unspecified).
class Sampler {
 public:
  Sampler(size_t n, uint64_t seed) : order_(n), rng_(seed), next_(n) {
    for (size_t i = 0; i < n; ++i) order_[i] = i;
  }
  std::vector<size_t> take(size_t k) {
    std::vector<size_t> out;
    while (out.size() < k) {
      if (next_ == order_.size()) {
        for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[rng_() % i]);
        next_ = 0;
      }
      out.push_back(order_[next_++]);
    }
    return out;
  }

 private:
  std::vector<size_t> order_;
  std::mt19937_64 rng_;
  size_t next_;
};

// Sorted ids at real positions anywhere in `data`.
torch::Tensor seen_tokens(const BatchSource& data) {
  std::set<int64_t> seen;
  constexpr size_t kChunk = 256;
  for (size_t i = 0; i < data.size(); i += kChunk) {
    std::vector<size_t> idx;
    for (size_t j = i; j < std::min(data.size(), i + kChunk); ++j) idx.push_back(j);
    const auto b = data.batch(idx);
    const auto ids = b.input_ids.masked_select(b.attention_mask.ne(0)).contiguous();
    const auto a = ids.accessor<int64_t, 1>();
    for (int64_t k = 0; k < ids.size(0); ++k) seen.insert(a[k]);
  }
  return torch::tensor(std::vector<int64_t>(seen.begin(), seen.end()), torch::kLong);
}

std::string short_number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", x);
  return buf;
}

}  // namespace

const char* to_string(Tap tap) {
  switch (tap) {
    case Tap::a1:
      return "a1";
    case Tap::a2:
      return "a2";
    case Tap::g2:
      break;
  }
  return "g2";
}

Tap parse_tap(const std::string& name) {
  for (auto t : {Tap::a1, Tap::a2, Tap::g2})
    if (name == to_string(t)) return t;
  throw Error("unknown tap '" + name + "' (allowed: a1, a2, g2)");
}

Intercept simulate_intercept(const Segments& seg, const LmBatch& batch, Tap deepest,
                             QuantScheme wire) {
  const auto dev = seg.input->embed->token_embedding().device();
  const auto ids = batch.input_ids.to(dev), mask = batch.attention_mask.to(dev);
  Intercept in;
  in.attention_mask = mask;
  const auto ctx = make_attention_context(seg.cfg, mask, seg.dtype);
  {
    torch::NoGradGuard no_grad;  // the pretrained model stays frozen
    in.a1 = fake_quantize(seg.input.ptr()->forward(ids, mask, ctx), wire);
    if (deepest != Tap::a1) in.a2 = seg.backbone.ptr()->forward(in.a1, ctx);
  }
  if (deepest == Tap::g2) {
    const auto a2 = in.a2.detach().requires_grad_(true);
    const auto labels = batch.labels.defined() ? batch.labels.to(dev) : labels_from_mask(ids, mask);
    const auto loss = seg.output.ptr()->lm_loss(a2, ctx, labels).mean();
    in.g2 = fake_quantize(torch::autograd::grad({loss}, {a2})[0], wire).detach();
  }
  return in;
}

LearnedInversion::LearnedInversion(LearnedInversionOptions options) : options_(options) {
  check_options(options_);
}

std::string LearnedInversion::name() const {
  if (!options_.name.empty()) return options_.name;
  return std::string("learned_inversion_") + to_string(options_.tap);
}

bool LearnedInversion::applicable(const Intercept& in) const {
  return tapped(in, options_.tap).defined() && in.attention_mask.defined();
}

double LearnedInversion::fit(const Segments& pretrained, const BatchSource& public_text,
                             Progress* progress) {
  return fit(std::vector<Segments>{pretrained}, public_text, progress);
}

double LearnedInversion::fit(const std::vector<Segments>& models, const BatchSource& public_text,
                             Progress* progress) {
  if (models.empty()) throw Error("learned inversion: no model to fit through");
  if (public_text.size() == 0) throw Error("learned inversion: no public text to train on");
  const auto& pretrained = models.front();
  const auto& o = options_;
  const auto E = pretrained.input->embed->token_embedding();
  const auto V = E.size(0);
  const auto seen = seen_tokens(public_text);
  vocabulary_ = o.restrict_vocabulary && o.random_rows == 0 ? seen : torch::arange(V, torch::kLong);
  const auto unseen = torch::ones({V}, torch::kBool).index_put_({seen}, false).nonzero().flatten();
  const auto class_of =
      torch::full({V}, -1, torch::kLong)
          .index_put_({vocabulary_}, torch::arange(vocabulary_.size(0), torch::kLong))
          .to(E.device());
  net_ =
      std::make_shared<InversionNetImpl>(pretrained.cfg.hidden_size, o.context,
                                         o.hidden > 0 ? o.hidden : E.size(1), vocabulary_.size(0));
  initialise_inversion_net(*net_, o.seed);
  net_->to(E.device());
  if (o.embedding_head && net_->fc2->weight.size(1) == E.size(1))
    use_embedding_head(*net_, E, vocabulary_);
  torch::optim::Adam optimizer(trainable_parameters(*net_), torch::optim::AdamOptions(o.lr));
  Sampler samples(public_text.size(), o.seed);
  auto random_ids = at::detail::createCPUGenerator(o.seed + 1);
  const auto batch = std::min(public_text.size(), size_t(o.batch));
  std::vector<double> losses;
  for (int64_t step = 0; step < o.steps; ++step) {
    auto data = public_text.batch(samples.take(batch));
    randomise_rows(data, o.random_rows, V, unseen, random_ids);
    const auto in = simulate_intercept(models[size_t(step) % models.size()], data, o.tap, o.wire);
    const auto real = in.attention_mask.ne(0);
    const auto logits = net_->forward(tapped(in, o.tap).to(torch::kFloat), in.attention_mask);
    const auto targets = class_of.index({data.input_ids.to(E.device()).index({real})});
    const auto loss = torch::nn::functional::cross_entropy(logits.index({real}), targets);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    losses.push_back(loss.item<double>());
    if (!std::isfinite(losses.back()))
      throw Error("learned inversion diverged at step " + std::to_string(step + 1) +
                  "; lower the learning rate");
    if (progress) progress->update(step + 1, "loss " + short_number(losses.back()));
  }
  const auto tail = std::min<size_t>(10, losses.size());
  double sum = 0;
  for (size_t i = losses.size() - tail; i < losses.size(); ++i) sum += losses[i];
  if (progress) progress->finish("loss " + short_number(sum / double(tail)));
  return sum / double(tail);
}

void LearnedInversion::save(const std::string& path) const {
  if (!fitted()) throw Error(name() + ": nothing to save before fit");
  torch::serialize::OutputArchive archive;
  archive.write("vocabulary", vocabulary_);
  net_->save(archive);
  try {
    archive.save_to(path);
  } catch (const c10::Error&) {
    throw error_at(path, "cannot write the inversion model");
  }
}

void LearnedInversion::load(const Segments& pretrained, const std::string& path) {
  const auto E = pretrained.input->embed->token_embedding();
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    torch::Tensor vocabulary;
    archive.read("vocabulary", vocabulary);
    if (vocabulary.dim() != 1 || vocabulary.scalar_type() != torch::kLong ||
        vocabulary.numel() == 0 || vocabulary.max().item<int64_t>() >= E.size(0))
      throw error_at(path, "not an inversion model for this tokenizer (vocabulary)");
    const auto& o = options_;
    auto net =
        std::make_shared<InversionNetImpl>(pretrained.cfg.hidden_size, o.context,
                                           o.hidden > 0 ? o.hidden : E.size(1), vocabulary.size(0));
    std::vector<std::vector<int64_t>> shapes;
    for (const auto& p : net->parameters()) shapes.push_back(p.sizes().vec());
    net->load(archive);  // throws for a missing tensor; shapes are ours to check
    const auto loaded = net->parameters();
    for (size_t i = 0; i < loaded.size(); ++i)
      if (loaded[i].sizes().vec() != shapes[i])
        throw error_at(path, "not an inversion model for this model and these options (shapes)");
    net->to(E.device());
    net_ = std::move(net);
    vocabulary_ = vocabulary;
  } catch (const c10::Error& e) {
    throw error_at(path,
                   std::string("not a matching inversion model: ") + e.what_without_backtrace());
  }
}

Reconstruction LearnedInversion::reconstruct(const Intercept& in) {
  if (!fitted()) throw Error(name() + ": fit it on public text before reconstructing");
  if (!applicable(in))
    throw Error(name() + ": the intercept has no " + to_string(options_.tap) + " or mask");
  const auto& x = tapped(in, options_.tap);
  if (x.dim() != 3 || x.sizes().slice(0, 2) != in.attention_mask.sizes() ||
      x.size(2) != net_->channels())
    throw Error(name() + ": " + to_string(options_.tap) + " must be (B, T, " +
                std::to_string(net_->channels()) + ") matching the (B, T) attention mask");
  torch::NoGradGuard no_grad;
  const auto dev = net_->fc1->weight.device();
  const auto classes =
      net_->forward(x.to(dev, torch::kFloat), in.attention_mask.to(dev)).argmax(-1).cpu();
  return true_tokens(vocabulary_.index({classes}), in.attention_mask);
}

}  // namespace gt
