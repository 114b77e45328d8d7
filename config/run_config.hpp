// The run configuration of `gtune simulate`: one TOML file (config/README.md lists every key),
// parsed and validated here, plus "section.key=value" overrides from the command line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gt {

enum class StrategyKind { centralized, split, online, gradfree, offsite, offline, privatize };

struct ModelSection {
  std::string path = "models/pretrained/opt-mini-gcide";  // HuggingFace checkpoint directory
  std::string dtype = "float32";                          // float32 | bfloat16
  int64_t n_in = 1, n_out = 1;  // decoder layers in the input / output adapter
  std::string train = "full";   // full | lora
  int64_t lora_rank = 8;        // used when train = lora
  double lora_alpha = 16;       // used when train = lora
  std::vector<std::string> lora_targets{"q_proj", "v_proj"};
};

struct StrategySection {
  StrategyKind kind = StrategyKind::online;
  // Wire quantization of activations a1 (up), a2 (down), gradients g2 (up), g1 (down):
  // none | int8 | int4 | int2. These and dcor_lambda are online's knobs: with split and centralized
  // they are "none" / 0 (see config/README.md).
  std::string quantize_a1 = "int8", quantize_a2 = "none", quantize_g2 = "none",
              quantize_g1 = "none";
  // Weight of the token-level, bias-corrected distance correlation between a1 and the tokens'
  // pretrained embeddings (privacy/token_distance_correlation.hpp), online and privatize; >= 0.
  double dcor_lambda = 0.1;
  double noise_std = 0.0;  // Gaussian noise added to every a1 sent (online, gradfree), >= 0
  double g2_noise = 0.0;   // online: Gaussian noise on g2, relative to each row's RMS, >= 0
  // online: "server" (g2 up, g1 down) or "local" (g1 through the privatize emulator, no g2)
  std::string backward = "server";
  // split, online: each training batch crosses in this many row chunks, pipelined (the server
  // computes chunk i+1 while the client computes chunk i); the same update as 1. >= 1
  int64_t micro_batches = 1;
  std::string compress = "none";  // none | zstd: messages to and from the server
};

struct GradfreeSection {
  bool cache_a2 = true;  // keep each sample's a2: from the second epoch on nothing is sent
};

// How the model owner builds an emulator for one offline design.
struct EmulatorDesign {
  int64_t keep_every = 2;           // uniform layer drop: keep backbone blocks 0, k, 2k, ...
  int64_t distill_steps = 0;        // distillation steps on public text; 0 = none
  std::string weights = "float32";  // float32 | int8: the emulator's weights as shipped
  std::string upload = "full";      // full (fp32 values) | int8 | int4 (quantized deltas)
};

// Settings both offline designs share.
struct EmulatorSection {
  std::string distill_data;  // public text for distillation: one passage per line; "" = WordNet
  double distill_lr = 1e-4;
  int64_t distill_batch = 8;
  int64_t chunk_bytes = 1 << 20;  // transfer chunk size
  std::string work_dir;           // where the builder writes emulators and clients keep downloads;
                         // "" = <run.out>/transfers, or a temporary directory without run.out
};

// The client's privacy objective on a1 (docs/privacy.md): what a privatize phase and online
// train the input adapter against, besides strategy.dcor_lambda.
struct PrivacySection {
  // A client-local privatize phase of this many steps before the plan (run_plan prepends it):
  // the input adapter trains against the objective around the emulator before any a1 leaves.
  int64_t privatize_steps = 0;
  double adversary_weight = 0.0;    // the client's own inverter in the loop; 0 = none
  double adversary_lr = 2e-3;       // its Adam learning rate
  int64_t adversary_fit_steps = 0;  // > 0: it trains on the first ones only, then is frozen
  bool adversary_decoy = false;     // frozen inverter: read a secret decoy, not merely nothing
  // Where the client's inverters and decoys draw their seed: "os" = 64 bits from the operating
  // system at the client's first start, kept in its checkpoint (nothing in the config reveals
  // it); "seed" = training.seed (reproducible from the config alone: tests, experiments).
  std::string secret = "os";
  int64_t adversary_tokens = 128;  // real tokens per step it trains and is played on
  int64_t dcor_tokens = 512;       // real tokens per step the distance correlation runs on
  // Coarsened inputs: the client's input adapter sees each token's cluster (of this many
  // clusters of the pretrained embedding) instead of the token; 0 = off.
  int64_t token_clusters = 0;
  // The privatize phase trains the output adapter too (true), or the input adapter only.
  bool privatize_output = true;
};

// A curious server (docs/DESIGN.md 4): the attacker taps what the server
// receives and runs data-reconstruction attacks; in a simulation the clients'
// true tokens score them.
struct AttackerSection {
  bool enabled = false;
  // membership_inference runs after the run, on the adapters offsite/offline clients return.
  // adaptive_inversion_a1: an inverter fitted through the shadow of the client's privatization
  // (apps/shadow_client.hpp), the attacker that knows the defence.
  std::vector<std::string> attacks{
      "embedding_inversion", "learned_inversion_a1", "learned_inversion_a2", "learned_inversion_g2",
      "gradient_matching",   "membership_inference", "adaptive_inversion_a1"};
  int64_t every = 10;       // attack training steps 0, every, 2*every, ... of each client
  int64_t max_batches = 4;  // per client and strategy
  int64_t fit_steps = 300;  // training steps of each learned inversion model
  int64_t shadows = 1;      // adaptive attacker: shadow privatizations (own seeds) it fits through
  std::string public_data;  // the attacker's text, one passage per line; "" = GCIDE
                            // (Debian dict-gcide), independent of the clients' data
  std::string cache_dir;    // fitted inversion models are kept and reused here; "" = none
};

// Task accuracy after the run (docs/DESIGN.md 5): 4-way multiple choice on the
// WordNet tasks' test split, lm-eval style, for the pretrained model (zero-shot)
// and for each client's tuned adapters in the full model.
struct EvaluationSection {
  std::vector<std::string> tasks;  // WordNet task names; empty = no task evaluation
  int64_t items = 200;             // test items per task
  // Held-out WordNet words whose definitions the pretrained and the tuned model generate,
  // scored by ROUGE-L against WordNet's; 0 = none.
  int64_t generation_examples = 0;
};

// One phase of a plan: [[phase]] tables, run in order.
struct PhaseSection {
  StrategyKind strategy = StrategyKind::online;
  int64_t steps = 0, epochs = 0;  // exactly one > 0
};

struct SchedulerSection {
  int64_t clients = 1;       // simulated clients, each with its own data shard and session
  bool fedavg = false;       // average the clients' adapters after every phase
  int64_t budget_bytes = 0;  // training bytes (all clients) before switching to fallback; 0 = none
  StrategyKind fallback = StrategyKind::gradfree;  // strategy the policies switch to
  double attack_threshold = 0;  // best attack's ROUGE-L F1 that switches to fallback; 0 = off
  std::string control = "127.0.0.1:9470";  // HTTP control API (gtune ctl); "" = off
};

struct OptimizerSection {
  std::string name = "adamw";                            // adamw | sgd
  double lr = 1e-4, weight_decay = 0.0, momentum = 0.0;  // momentum: sgd only
  double grad_clip = 0.0;                                // max global grad norm, 0 = off
};

struct TrainingSection {
  // Exactly one of steps / epochs is > 0; when the file sets epochs, steps defaults to 0.
  int64_t steps = 100;
  int64_t epochs = 0;
  int64_t batch = 8, max_len = 64;
  uint64_t seed = 0;
  int64_t eval_every = 0;  // steps between evaluations; 0 = only before and after training
};

struct DataSection {
  std::string kind = "wordnet";  // wordnet | wordnet_tasks | jsonl
  // kind = wordnet_tasks: train on these WordNet multiple-choice tasks' train splits
  // (context -> right choice), interleaved; [] = all four.
  std::vector<std::string> tasks;
  std::string path;        // jsonl training file; required for jsonl
  std::string valid_path;  // optional jsonl validation file
  std::string wordnet_dir = "/usr/share/wordnet";
  double valid_fraction = 0.05;                          // held out when there is no valid_path
  int64_t train_examples = 20000, valid_examples = 256;  // 0 = all
};

struct RunSection {
  std::string name = "run";
  std::string out;      // output directory; "" = write nothing
  int64_t threads = 0;  // compute threads; 0 = LibTorch's default
  // Each client's resumable state (adapters, optimizer, data position, RNG, log) is written
  // here every checkpoint_every steps and at phase ends; a restarted run resumes from it.
  std::string checkpoint_dir;  // "" = no checkpoints
  int64_t checkpoint_every = 10;
  // Where every party computes: "cpu", "cuda" (the current GPU) or "cuda:N". Checked for
  // syntax here (config/ does not link LibTorch); models/device.hpp checks that the device
  // exists when a party loads its model.
  std::string device = "cpu";
  // The LM head and its loss only at positions whose label counts, in chunks: no (B, T, V)
  // logits (issue 16). false: every position's logits, as transformers computes them.
  bool label_only_logits = true;
  // Blocks compute on the real tokens only, padding left out (issue 16). false: every position.
  bool packed_batches = true;
};

// The server's limits on what its clients may ask of it.
struct ServerSection {
  int64_t max_sessions = 16;          // open sessions at once; a further hello is refused
  int64_t max_sessions_per_peer = 4;  // ... of one remote node: a flood cannot fill the server
  int64_t session_timeout = 600;      // seconds without a message before a session is dropped
  int64_t max_batch_tokens = 65536;   // batch x tokens per request: bounds a session's memory
  int64_t max_message_mb = 256;       // larger messages are refused before they are decoded
  int64_t max_cache_mb = 1024;        // KV caches of the generations of every session
  int64_t max_plugged_mb = 1024;      // plugged adapters in memory (offline designs), all clients
};

// How parties on different machines reach each other.
struct NetworkSection {
  int64_t reconnect_seconds = 300;  // a client retries a lost server this long (backoff); 0 = not
};

struct RunConfig {
  ModelSection model;
  StrategySection strategy;
  GradfreeSection gradfree;
  PrivacySection privacy;
  EmulatorDesign offsite;                        // Offsite-Tuning as published
  EmulatorDesign offline{4, 0, "int8", "int8"};  // ours: a poorer, smaller emulator
  EmulatorSection emulator;
  SchedulerSection scheduler;
  AttackerSection attacker;
  EvaluationSection evaluation;
  std::vector<PhaseSection> phases;  // [[phase]]; empty = one phase of strategy.kind
  OptimizerSection optimizer;
  TrainingSection training;
  DataSection data;
  RunSection run;
  ServerSection server;
  NetworkSection network;
  std::string source = "<defaults>";  // the file it came from, or "<defaults>"
};

// Equal when every key (as listed by run_config_keys) is equal; `source` is not compared.
bool operator==(const RunConfig& a, const RunConfig& b);
inline bool operator!=(const RunConfig& a, const RunConfig& b) {
  return !(a == b);
}

RunConfig default_run_config();

// Reads a TOML file. Relative paths the file sets (model.path, data.path, data.valid_path,
// data.wordnet_dir, run.out) resolve against the file's directory, except that model.path,
// if not found there, is tried relative to the current directory. Errors name the file.
RunConfig load_run_config(const std::string& path);

// Parses TOML text; `where` names it in errors (and becomes `source`). Relative paths the text
// sets resolve against base_dir as in load_run_config; base_dir "" leaves them as written.
RunConfig parse_run_config(const std::string& toml_text, const std::string& where,
                           const std::string& base_dir);

// Whether two configuration texts (to_toml's, paths as written) describe the same run: compared
// parsed, so a key added since one was written counts at its default (the behaviour before it
// existed). Text that no longer parses describes another run.
bool same_run_config(const std::string& a, const std::string& b);

// Applies one "section.key=value" override (e.g. "training.steps=20", "strategy.kind=split",
// "model.lora_targets=q_proj,v_proj"), with the same validation; errors name the override.
// Setting training.steps > 0 zeroes training.epochs and vice versa; changing a kind or name
// makes keys that only apply to another kind (strategy.quantize_*, dcor_lambda, data.path, ...)
// neutral. Paths are taken as written. Rules between keys (steps vs epochs, jsonl needs
// data.path, ...) are left to validate_run_config, so that e.g. "data.kind=jsonl" and
// "data.path=x.jsonl" work in either order. A failed override leaves cfg unchanged.
// "phase.<i>.strategy|steps|epochs=value" (i from 0) changes a phase of the file's plan; with
// phases, strategy.kind, training.steps and training.epochs are errors (change a phase instead).
void apply_override(RunConfig& cfg, const std::string& assignment);
// Every override in order, then validate_run_config.
void apply_overrides(RunConfig& cfg, const std::vector<std::string>& assignments);

// Checks every key and the rules between keys; throws gt::Error naming the key.
void validate_run_config(const RunConfig& cfg, const std::string& where);

// The effective configuration as TOML, every key in README order:
// parse_run_config(to_toml(c), w, "") == c.
std::string to_toml(const RunConfig& cfg);

const char* to_string(StrategyKind kind);
// The plan a run executes: the [[phase]] list, or one phase of strategy.kind with
// training.steps / training.epochs when there is none; after a privatize phase of
// privacy.privatize_steps when that is > 0.
std::vector<PhaseSection> run_plan(const RunConfig& cfg);
// Whether any phase of the plan, or the budget policy's fallback, uses `kind`.
bool plan_uses(const RunConfig& cfg, StrategyKind kind);
StrategyKind parse_strategy_kind(const std::string& name);  // throws gt::Error

// One key of the schema, for help texts and the README: every key, in file order.
struct ConfigKey {
  std::string name;           // "training.steps"
  std::string type;           // string | integer | float | string array | boolean
  std::string default_value;  // as TOML
  std::string allowed;        // "none, int8, int4", "> 0", ... ("" = any)
  std::string doc;
};
std::vector<ConfigKey> run_config_keys();

}  // namespace gt
