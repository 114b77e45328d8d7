// See parties.hpp.
#include "apps/parties.hpp"

#include "common/error.hpp"
#include "common/stable_hash.hpp"
#include "data/instructions.hpp"
#include "models/lora.hpp"
#include "models/tokenizer.hpp"

namespace gt::cli {
namespace {

InstructionSplit load_examples(const DataSection& d) {
  if (d.kind == "wordnet")
    return wordnet_instructions(d.wordnet_dir, d.valid_fraction, size_t(d.train_examples),
                                size_t(d.valid_examples));
  InstructionSplit split;
  auto all = read_jsonl_instructions(d.path);
  if (!d.valid_path.empty()) {
    split.train = std::move(all);
    split.valid = read_jsonl_instructions(d.valid_path);
  } else {
    // Held out by a hash of the text, so the split never depends on file order.
    for (auto& ex : all)
      (double(stable_hash(ex.prompt + ex.response) % 1000000) / 1e6 < d.valid_fraction
           ? split.valid
           : split.train)
          .push_back(std::move(ex));
  }
  if (d.train_examples > 0 && split.train.size() > size_t(d.train_examples))
    split.train.resize(d.train_examples);
  if (d.valid_examples > 0 && split.valid.size() > size_t(d.valid_examples))
    split.valid.resize(d.valid_examples);
  if (split.train.empty()) throw error_at(d.path, "no training examples");
  if (split.valid.empty())
    throw error_at(d.path, "no validation examples (set data.valid_path or data.valid_fraction)");
  return split;
}

std::shared_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerSection& o,
                                                        std::vector<torch::Tensor> params) {
  if (params.empty())
    throw Error("the adapters have no trainable parameters (check model.train and lora settings)");
  if (o.name == "sgd")
    return std::make_shared<torch::optim::SGD>(
        params, torch::optim::SGDOptions(o.lr).momentum(o.momentum).weight_decay(o.weight_decay));
  return std::make_shared<torch::optim::AdamW>(
      params, torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
}

}  // namespace

torch::ScalarType parse_dtype(const std::string& name) {
  if (name == "bfloat16") return torch::kBFloat16;
  return torch::kFloat;
}

int64_t planned_steps(const RunConfig& cfg, size_t train_examples) {
  if (cfg.training.steps > 0) return cfg.training.steps;
  const auto per_epoch =
      (static_cast<int64_t>(train_examples) + cfg.training.batch - 1) / cfg.training.batch;
  return cfg.training.epochs * per_epoch;
}

ClientSide make_client_side(const RunConfig& cfg) {
  torch::manual_seed(cfg.training.seed);  // LoRA factors start the same in every mode
  ClientSide c;
  c.model = load_decoder(cfg.model.path, parse_dtype(cfg.model.dtype));
  c.seg = split_model(c.model, {cfg.model.n_in, cfg.model.n_out});
  set_trainable(*c.model, TrainMode::frozen);
  const auto mode = parse_train_mode(cfg.model.train);
  if (mode == TrainMode::lora) {
    LoraOptions lora{cfg.model.lora_rank, cfg.model.lora_alpha, cfg.model.lora_targets};
    apply_lora(*c.seg.input, lora);
    apply_lora(*c.seg.output, lora);
  }
  set_trainable(*c.seg.input, mode);
  set_trainable(*c.seg.output, mode);
  auto params = unique_parameters({c.seg.input.get(), c.seg.output.get()});
  for (const auto& p : params) c.trainable_parameters += p.numel();
  c.optimizer = make_optimizer(cfg.optimizer, params);

  const auto& s = cfg.strategy;
  c.options.a1 = parse_quant_scheme(s.quantize_a1);
  c.options.a2 = parse_quant_scheme(s.quantize_a2);
  c.options.g2 = parse_quant_scheme(s.quantize_g2);
  c.options.g1 = parse_quant_scheme(s.quantize_g1);
  c.options.dcor_lambda = s.dcor_lambda;
  c.options.grad_clip = cfg.optimizer.grad_clip;

  auto tokenizer = Tokenizer::from_dir(cfg.model.path);
  auto examples = load_examples(cfg.data);
  auto train =
      std::make_shared<InstructionDataset>(examples.train, tokenizer, cfg.training.max_len);
  auto valid =
      std::make_shared<InstructionDataset>(examples.valid, tokenizer, cfg.training.max_len);
  if (train->size() == 0)
    throw Error("no training example fits in training.max_len=" +
                std::to_string(cfg.training.max_len));
  c.data_summary =
      std::to_string(train->size()) + " train / " + std::to_string(valid->size()) + " held-out " +
      (cfg.data.kind == "wordnet" ? "WordNet instructions" : "examples from " + cfg.data.path);
  c.train = train;
  c.valid = valid;
  return c;
}

std::shared_ptr<SplitServer> make_server_side(const RunConfig& cfg, const std::string& name) {
  auto model = load_decoder(cfg.model.path, parse_dtype(cfg.model.dtype));
  set_trainable(*model, TrainMode::frozen);  // the backbone never trains
  return std::make_shared<SplitServer>(split_model(model, {cfg.model.n_in, cfg.model.n_out}), name);
}

}  // namespace gt::cli
