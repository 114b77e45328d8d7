// gtune finetune: fine-tune the adapters of a model on the default WordNet task
// in one process (input adapter -> frozen backbone -> output adapter), and
// report held-out loss before and after. The multi-party designs build on this.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "apps/commands.hpp"
#include "common/progress.hpp"
#include "data/default_task.hpp"
#include "data/lm_eval.hpp"
#include "models/adapter_io.hpp"
#include "models/lora.hpp"
#include "models/segments.hpp"

namespace gt::cli {
namespace {

struct Options {
  std::string model = GT_DEFAULT_MODEL_DIR, wordnet = "/usr/share/wordnet", out,
              train_mode = "full";
  int64_t n_in = 1, n_out = 1, steps = 150, batch = 8, max_len = 64, threads = 0, lora_rank = 8;
  double lr = 1e-4, lora_alpha = 16;
  size_t train_examples = 20000, valid_examples = 256;
  uint64_t seed = 0;
};

int64_t count(const std::vector<torch::Tensor>& ps) {
  int64_t n = 0;
  for (const auto& p : ps) n += p.numel();
  return n;
}

void run(const Options& opt) {
  if (opt.threads > 0) torch::set_num_threads(static_cast<int>(opt.threads));
  torch::manual_seed(opt.seed);
  auto model = load_decoder(opt.model, torch::kFloat);
  auto tokenizer = Tokenizer::from_dir(opt.model);
  auto seg = split_model(model, {opt.n_in, opt.n_out});

  // The backbone stays frozen on the model owner's side; the adapters train.
  const auto mode = parse_train_mode(opt.train_mode);
  set_trainable(*model, TrainMode::frozen);
  if (mode == TrainMode::lora) {
    LoraOptions lora;
    lora.rank = opt.lora_rank;
    lora.alpha = opt.lora_alpha;
    apply_lora(*seg.input, lora);
    apply_lora(*seg.output, lora);
  }
  set_trainable(*seg.input, mode);
  set_trainable(*seg.output, mode);
  auto params = unique_parameters({seg.input.get(), seg.output.get()});
  std::printf("model     %s (%s, %lld layers)\n", opt.model.c_str(), seg.cfg.model_type.c_str(),
              static_cast<long long>(seg.cfg.num_layers));
  std::printf(
      "split     input adapter: embeddings + %lld layers | backbone: %zu layers | output adapter: "
      "%lld layers + head\n",
      static_cast<long long>(opt.n_in), seg.backbone->blocks.size(),
      static_cast<long long>(opt.n_out));
  std::printf("training  %s, %lld trainable parameters of %lld\n", opt.train_mode.c_str(),
              static_cast<long long>(count(params)),
              static_cast<long long>(count(model->parameters())));

  auto texts = wordnet_definitions(opt.wordnet, 0.05, opt.train_examples, opt.valid_examples);
  LmDataset train(texts.train, tokenizer, opt.max_len), valid(texts.valid, tokenizer, opt.max_len);
  std::printf(
      "data      WordNet definitions: %zu train (%lld tokens), %zu held out (%lld tokens)\n",
      train.size(), static_cast<long long>(train.num_tokens()), valid.size(),
      static_cast<long long>(valid.num_tokens()));
  std::printf("          e.g. \"%s\"\n", texts.train.front().c_str());

  auto logits_of = [&](const torch::Tensor& ids, const torch::Tensor& mask) {
    auto ctx = make_attention_context(seg.cfg, mask, torch::kFloat);
    auto a1 = seg.input->forward(ids, mask, ctx);  // client
    auto a2 = seg.backbone->forward(a1, ctx);      // server
    return seg.output->forward(a2, ctx);           // client
  };
  auto before = evaluate_lm(logits_of, valid, 32);
  std::printf("held-out  before: loss %.4f  perplexity %.2f\n", before.loss, before.perplexity);

  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(opt.lr).weight_decay(0.0));
  Progress progress("finetune", opt.steps);
  auto order = epoch_order(train.size(), opt.seed, 0);
  size_t cursor = 0;
  int64_t epoch = 0, tokens = 0;
  double recent = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t step = 1; step <= opt.steps; ++step) {
    std::vector<size_t> idx;
    while (static_cast<int64_t>(idx.size()) < opt.batch) {
      if (cursor == order.size()) order = epoch_order(train.size(), opt.seed, ++epoch), cursor = 0;
      idx.push_back(order[cursor++]);
    }
    auto batch = train.batch(idx);
    auto loss = causal_lm_loss(logits_of(batch.input_ids, batch.attention_mask), batch.labels);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    tokens += batch.attention_mask.sum().item<int64_t>();
    recent = step == 1 ? loss.item<double>() : 0.9 * recent + 0.1 * loss.item<double>();
    char status[64];
    std::snprintf(status, sizeof status, "loss %.3f", recent);
    progress.update(step, status);
  }
  progress.finish();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  auto after = evaluate_lm(logits_of, valid, 32);
  std::printf("held-out  after:  loss %.4f  perplexity %.2f  (%+.4f loss)\n", after.loss,
              after.perplexity, after.loss - before.loss);
  std::printf("speed     %lld steps in %.1f s, %.0f training tokens/s\n",
              static_cast<long long>(opt.steps), secs, tokens / secs);
  if (!opt.out.empty()) {
    std::filesystem::create_directories(opt.out);
    auto path = opt.out + "/adapters.safetensors";
    save_adapters(path, seg, true, {{"gtune.train_mode", opt.train_mode}});
    std::printf("saved     %s\n", path.c_str());
  }
}

}  // namespace

void add_finetune(CLI::App& app) {
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "finetune", "Fine-tune a model's adapters on the default WordNet task, in one process");
  cmd->add_option("--model", opt->model, "HuggingFace model directory")->capture_default_str();
  cmd->add_option("--wordnet", opt->wordnet, "WordNet database directory (Debian wordnet-base)")
      ->capture_default_str();
  cmd->add_option("--n-in", opt->n_in, "decoder layers in the input adapter")
      ->capture_default_str();
  cmd->add_option("--n-out", opt->n_out, "decoder layers in the output adapter")
      ->capture_default_str();
  cmd->add_option("--train", opt->train_mode, "how adapters train")
      ->capture_default_str()
      ->check(CLI::IsMember({"full", "lora"}));
  cmd->add_option("--lora-rank", opt->lora_rank, "LoRA rank")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--lora-alpha", opt->lora_alpha, "LoRA alpha (scale = alpha / rank)")
      ->capture_default_str();
  cmd->add_option("--steps", opt->steps, "optimizer steps")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch", opt->batch, "sequences per step")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-len", opt->max_len, "tokens per sequence")
      ->capture_default_str()
      ->check(CLI::Range(2, 4096));
  cmd->add_option("--lr", opt->lr, "AdamW learning rate")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--train-examples", opt->train_examples, "training texts (0 = all)")
      ->capture_default_str();
  cmd->add_option("--valid-examples", opt->valid_examples, "held-out texts (0 = all)")
      ->capture_default_str();
  cmd->add_option("--seed", opt->seed, "seed for initialisation and data order")
      ->capture_default_str();
  cmd->add_option("--threads", opt->threads, "compute threads (0 = LibTorch's default)")
      ->capture_default_str();
  cmd->add_option("--out", opt->out, "directory for adapters.safetensors");
  cmd->callback([opt] { run(*opt); });
}

}  // namespace gt::cli
