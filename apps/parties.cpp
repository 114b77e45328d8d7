// See parties.hpp.
#include "apps/parties.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "common/error.hpp"
#include "common/stable_hash.hpp"
#include "data/default_task.hpp"
#include "data/instructions.hpp"
#include "data/lm_dataset.hpp"
#include "data/mc_instructions.hpp"
#include "data/wordnet_tasks.hpp"
#include "models/device.hpp"
#include "models/lora.hpp"
#include "models/tokenizer.hpp"
#include "privacy/token_clusters.hpp"

namespace gt::cli {
namespace {

InstructionSplit load_examples(const DataSection& d) {
  if (d.kind == "wordnet_tasks") {
    auto tasks = wordnet_mc_tasks(d.wordnet_dir, 0);  // reads WordNet once
    if (!d.tasks.empty())
      tasks.erase(std::remove_if(tasks.begin(), tasks.end(),
                                 [&](const McTask& t) {
                                   return std::find(d.tasks.begin(), d.tasks.end(), t.name) ==
                                          d.tasks.end();
                                 }),
                  tasks.end());
    return mc_instructions(tasks, size_t(d.train_examples), size_t(d.valid_examples));
  }
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

std::string data_name(const DataSection& d) {
  if (d.kind == "wordnet") return "WordNet instructions";
  if (d.kind == "jsonl") return "examples from " + d.path;
  std::string names;
  for (const auto& t : d.tasks.empty() ? wordnet_mc_task_names() : d.tasks)
    names += (names.empty() ? "" : ", ") + t;
  return "task examples (" + names + ")";
}

QuantScheme upload_scheme(const std::string& upload) {
  return upload == "full" ? QuantScheme::none : parse_quant_scheme(upload);
}

// Public text for distillation: a file with one passage per line, or WordNet glosses.
std::shared_ptr<const BatchSource> public_text(const RunConfig& cfg, const Tokenizer& tokenizer) {
  std::vector<std::string> texts;
  const auto& path = cfg.emulator.distill_data;
  if (path.empty()) {
    texts = wordnet_definitions(cfg.data.wordnet_dir, 0.05, 4000, 1).train;
  } else {
    std::ifstream in(path);
    if (!in) throw error_at(path, "cannot read the distillation text (emulator.distill_data)");
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) texts.push_back(line);
    if (texts.empty()) throw error_at(path, "no text (one passage per line expected)");
  }
  return std::make_shared<LmDataset>(texts, tokenizer, cfg.training.max_len);
}

EmulatorRecipe recipe(const EmulatorDesign& d, const EmulatorSection& e, uint64_t seed) {
  EmulatorRecipe r;
  r.emulator.keep_every = d.keep_every;
  r.emulator.int8_weights = d.weights == "int8";
  r.distill.steps = d.distill_steps;
  r.distill.lr = e.distill_lr;
  r.distill.batch = e.distill_batch;
  r.distill.seed = seed;
  return r;
}

}  // namespace

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

// The model with the adapter structure and trainable flags every party agrees
// on: LoRA factors (seeded, so every party starts from the same ones) or full; on
// run.device. LoRA factors are drawn on the CPU before the move, so that parties on
// different devices start from the same ones.
Segments load_adapter_model(const RunConfig& cfg, DecoderLM& model, bool hold_backbone) {
  const auto device = parse_device(cfg.run.device);
  torch::manual_seed(cfg.training.seed);
  BlockRange backbone;
  if (!hold_backbone)
    backbone = {cfg.model.n_in, load_model_config(cfg.model.path).num_layers - cfg.model.n_out};
  model = load_decoder(cfg.model.path, parse_dtype(cfg.model.dtype), backbone);
  auto seg = split_model(model, {cfg.model.n_in, cfg.model.n_out});
  set_trainable(*model, TrainMode::frozen);
  const auto mode = parse_train_mode(cfg.model.train);
  if (mode == TrainMode::lora) {
    LoraOptions lora{cfg.model.lora_rank, cfg.model.lora_alpha, cfg.model.lora_targets};
    apply_lora(*seg.input, lora);
    apply_lora(*seg.output, lora);
  }
  set_trainable(*seg.input, mode);
  set_trainable(*seg.output, mode);
  set_compute_options(seg, cfg.run.packed_batches, cfg.run.label_only_logits);
  to_device(seg, device);  // before any optimizer is made over the adapters
  return seg;
}

torch::ScalarType parse_dtype(const std::string& name) {
  if (name == "bfloat16") return torch::kBFloat16;
  return torch::kFloat;
}

std::vector<PhaseOrder> phase_orders(const RunConfig& cfg, size_t train_examples) {
  std::vector<PhaseOrder> out;
  const auto per_epoch =
      (static_cast<int64_t>(train_examples) + cfg.training.batch - 1) / cfg.training.batch;
  for (const auto& p : gt::run_plan(cfg)) {
    PhaseOrder o;
    o.index = static_cast<int64_t>(out.size());
    o.strategy = to_string(p.strategy);
    o.steps = p.steps > 0 ? p.steps : p.epochs * per_epoch;
    out.push_back(o);
  }
  return out;
}

int64_t planned_steps(const RunConfig& cfg, size_t train_examples) {
  int64_t n = 0;
  for (const auto& p : phase_orders(cfg, train_examples)) n += p.steps;
  return n;
}

void coarsen_client_inputs(const RunConfig& cfg, Segments& seg) {
  if (cfg.privacy.token_clusters <= 0) return;
  TokenClusterOptions o;
  o.clusters = cfg.privacy.token_clusters;
  o.keep_apart = {seg.cfg.bos_token_id, seg.cfg.eos_token_id, seg.cfg.pad_token_id};
  // From the pretrained embedding, before any checkpoint is restored into the adapters.
  seg.input->set_input_map(
      cluster_representatives(seg.input->embed->token_embedding(), o).to(seg.device()));
}

ClientSide make_client_side(const RunConfig& cfg, int64_t index, int64_t count,
                            bool hold_backbone) {
  ClientSide c;
  c.name = count == 1 ? cfg.run.name : cfg.run.name + "-" + std::to_string(index);
  c.trainer = std::make_shared<ClientModel>();
  c.trainer->seg = load_adapter_model(cfg, c.model, hold_backbone);
  coarsen_client_inputs(cfg, c.trainer->seg);
  c.trainer->grad_clip = cfg.optimizer.grad_clip;
  auto params = unique_parameters({c.seg().input.get(), c.seg().output.get()});
  for (const auto& p : params) c.trainable_parameters += p.numel();
  c.trainer->optimizer = make_optimizer(cfg.optimizer, params);
  // Made from the pretrained embedding before any checkpoint is restored into the adapters.
  c.trainer->privacy = std::make_shared<PrivacyObjective>(
      c.seg().input->embed->token_embedding(), c.seg().cfg.hidden_size, privacy_options(cfg));
  c.pretrained = std::make_shared<const NamedTensors>(snapshot_adapters(c.seg()));

  auto tokenizer = Tokenizer::from_dir(cfg.model.path);
  auto examples = load_examples(cfg.data);
  std::vector<InstructionExample> shard;  // every count-th example: shards of equal size
  for (size_t i = size_t(index); i < examples.train.size(); i += size_t(count))
    shard.push_back(examples.train[i]);
  auto train = std::make_shared<InstructionDataset>(shard, tokenizer, cfg.training.max_len);
  auto valid =
      std::make_shared<InstructionDataset>(examples.valid, tokenizer, cfg.training.max_len);
  if (train->size() == 0)
    throw Error("client " + c.name + ": no training example fits in training.max_len=" +
                std::to_string(cfg.training.max_len));
  c.data_summary = std::to_string(train->size()) + " train / " + std::to_string(valid->size()) +
                   " held-out " + data_name(cfg.data);
  c.train = train;
  c.valid = valid;
  return c;
}

std::shared_ptr<SplitServer> make_server_side(const RunConfig& cfg, const std::string& name) {
  DecoderLM model{nullptr};
  auto seg = load_adapter_model(cfg, model);  // adapters shaped like the clients', for plugging
  return std::make_shared<SplitServer>(seg, name);
}

ServerOptions server_options(const RunConfig& cfg) {
  ServerOptions o;
  o.limits.max_sessions = cfg.server.max_sessions;
  o.limits.max_sessions_per_peer = cfg.server.max_sessions_per_peer;
  o.limits.session_timeout = std::chrono::seconds(cfg.server.session_timeout);
  o.limits.max_batch_tokens = cfg.server.max_batch_tokens;
  o.limits.max_message_bytes = cfg.server.max_message_mb << 20;
  o.limits.max_cache_bytes = cfg.server.max_cache_mb << 20;
  o.limits.max_plugged_bytes = cfg.server.max_plugged_mb << 20;
  return o;
}

BuilderParts make_builder_side(const RunConfig& cfg, const std::string& work_dir) {
  BuilderParts b;
  DecoderLM model{nullptr};
  b.full = load_adapter_model(cfg, model);
  b.recipes["offsite"] = recipe(cfg.offsite, cfg.emulator, cfg.training.seed);
  b.recipes["offline"] = recipe(cfg.offline, cfg.emulator, cfg.training.seed);
  // The privatize phase's stand-in backbone is Offsite-Tuning's emulator ([offsite] keys).
  b.recipes["privatize"] = b.recipes["offsite"];
  if (cfg.offsite.distill_steps > 0 || cfg.offline.distill_steps > 0)
    b.public_data = public_text(cfg, Tokenizer::from_dir(cfg.model.path));
  b.work_dir = work_dir + "/builder";
  b.chunk_bytes = cfg.emulator.chunk_bytes;
  b.stats = std::make_shared<WireStats>();
  return b;
}

PrivacyOptions privacy_options(const RunConfig& cfg, uint64_t seed) {
  PrivacyOptions o;
  o.dcor_weight = cfg.strategy.dcor_lambda;
  o.adversary_weight = cfg.privacy.adversary_weight;
  o.dcor_tokens = cfg.privacy.dcor_tokens;
  o.adversary.lr = cfg.privacy.adversary_lr;
  o.adversary.max_tokens = cfg.privacy.adversary_tokens;
  o.adversary.fit_steps = cfg.privacy.adversary_fit_steps;
  o.adversary.decoy = cfg.privacy.adversary_decoy;
  o.adversary.seed = seed;
  return o;
}

PrivacyOptions privacy_options(const RunConfig& cfg) {
  if (cfg.privacy.secret == "seed") return privacy_options(cfg, cfg.training.seed);
  // A resumed client restores the secret its checkpoint kept over this one.
  std::random_device os;
  return privacy_options(cfg, (uint64_t(os()) << 32) ^ uint64_t(os()));
}

StrategySettings strategy_settings(const RunConfig& cfg) {
  StrategySettings s;
  const auto& st = cfg.strategy;
  s.online = {parse_quant_scheme(st.quantize_a1), parse_quant_scheme(st.quantize_a2),
              parse_quant_scheme(st.quantize_g2), parse_quant_scheme(st.quantize_g1)};
  s.privacy = privacy_options(cfg);
  s.noise_std = st.noise_std;
  s.g2_noise = st.g2_noise;
  s.seed = cfg.training.seed;
  s.gradfree_cache = cfg.gradfree.cache_a2;
  s.micro_batches = st.micro_batches;
  s.local_backward = st.backward == "local";
  s.privatize_output = cfg.privacy.privatize_output;
  s.compression = parse_compression(st.compress);
  for (const auto* name : {"offsite", "offline"}) {
    const auto& d = std::string(name) == "offsite" ? cfg.offsite : cfg.offline;
    s.uploads[name] = {d.upload != "full", upload_scheme(d.upload)};
  }
  return s;
}

std::string transfer_dir(const RunConfig& cfg, const std::string& out) {
  if (!cfg.emulator.work_dir.empty()) return cfg.emulator.work_dir;
  if (!out.empty()) return out + "/transfers";
  return (std::filesystem::temp_directory_path() / ("gtune-" + std::to_string(getpid())) /
          "transfers")
      .string();
}

ClientPlan client_plan(const RunConfig& cfg, const ClientSide& side, const std::string& work_dir) {
  ClientPlan plan;
  plan.name = side.name;
  plan.batch = cfg.training.batch;
  plan.eval_every = cfg.training.eval_every;
  plan.seed = cfg.training.seed;
  plan.work_dir = work_dir + "/" + side.name;
  plan.dtype = parse_dtype(cfg.model.dtype);
  if (!cfg.run.checkpoint_dir.empty()) {
    plan.checkpoint = std::make_shared<const ClientCheckpoint>(cfg.run.checkpoint_dir, side.name,
                                                               training_fingerprint(cfg));
    plan.checkpoint_every = cfg.run.checkpoint_every;
  }
  return plan;
}

std::string training_fingerprint(const RunConfig& cfg) {
  // Where the run writes, who watches it and how parties connect do not change its numbers.
  const std::set<std::string> ignored_sections{"run", "server", "network", "attacker",
                                               "evaluation"};
  const std::set<std::string> ignored_keys{"scheduler.control", "emulator.work_dir"};
  std::istringstream in(to_toml(cfg));
  std::string out, section;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '[') {
      section = line.substr(line.find_first_not_of('['));
      section = section.substr(0, section.find(']'));
      if (section == "phase") out += "[[phase]]\n";
      continue;
    }
    const auto key = section + "." + line.substr(0, line.find(' '));
    if (!ignored_sections.count(section) && !ignored_keys.count(key))
      out += section + "." + line + "\n";
  }
  return out;
}

}  // namespace gt::cli
