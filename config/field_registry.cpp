// The run configuration's field table: every key with its type, default (the struct's),
// allowed values and documentation. Parsing, overrides, validation and to_toml all read it.
#include "config/field_registry.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

namespace gt::config_detail {
namespace {

template <class T>
ValueType type_of();
template <>
ValueType type_of<std::string>() {
  return ValueType::string;
}
template <>
ValueType type_of<int64_t>() {
  return ValueType::integer;
}
template <>
ValueType type_of<uint64_t>() {
  return ValueType::integer;
}
template <>
ValueType type_of<double>() {
  return ValueType::floating;
}
template <>
ValueType type_of<std::vector<std::string>>() {
  return ValueType::string_list;
}
template <>
ValueType type_of<bool>() {
  return ValueType::boolean;
}

template <>
ValueType type_of<StrategyKind>() {
  return ValueType::string;
}

template <class T>
Value to_value(const T& v) {
  if constexpr (std::is_same_v<T, uint64_t>)
    return static_cast<int64_t>(v);
  else if constexpr (std::is_same_v<T, StrategyKind>)
    return to_string(v);
  else
    return v;
}
template <class T>
T from_value(const Value& v) {
  if constexpr (std::is_same_v<T, uint64_t>)
    return static_cast<uint64_t>(std::get<int64_t>(v));
  else if constexpr (std::is_same_v<T, StrategyKind>)
    return parse_strategy_kind(std::get<std::string>(v));
  else
    return std::get<T>(v);
}

// model("path", &ModelSection::path, "doc") -> the Field "model.path".
template <class S>
struct SectionRef {
  const char* name;
  S RunConfig::*section;
  template <class T>
  Field operator()(const char* key, T S::*member, const char* doc) const {
    Field f;
    f.section = name;
    f.key = key;
    f.type = type_of<T>();
    f.doc = doc;
    auto sec = section;
    f.write = [sec, member](RunConfig& c, const Value& v) { (c.*sec).*member = from_value<T>(v); };
    f.read = [sec, member](const RunConfig& c) { return to_value((c.*sec).*member); };
    return f;
  }
};

// phase("steps", &PhaseSection::steps, "doc") -> the Field of a [[phase]] table's "steps".
struct PhaseRef {
  template <class T>
  Field operator()(const char* key, T PhaseSection::*member, const char* doc) const {
    Field f;
    f.section = "phase";
    f.key = key;
    f.type = type_of<T>();
    f.doc = doc;
    f.write_phase = [member](PhaseSection& p, const Value& v) { p.*member = from_value<T>(v); };
    f.read_phase = [member](const PhaseSection& p) { return to_value(p.*member); };
    return f;
  }
};

const std::vector<StrategyKind>& all_kinds() {
  static const std::vector<StrategyKind> kinds{StrategyKind::centralized, StrategyKind::split,
                                               StrategyKind::online,      StrategyKind::gradfree,
                                               StrategyKind::offsite,     StrategyKind::offline,
                                               StrategyKind::privatize};
  return kinds;
}

std::vector<std::string> kind_names(bool with_centralized) {
  std::vector<std::string> names;
  for (auto kind : all_kinds())
    if (with_centralized || kind != StrategyKind::centralized) names.emplace_back(to_string(kind));
  return names;
}

std::string format_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string not_empty(const Value& v) {
  return std::get<std::string>(v).empty() ? "must not be empty" : "";
}

std::string name_chars(const Value& v) {
  const auto& s = std::get<std::string>(v);
  const bool ok = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
  return ok ? "" : toml_literal(v) + " is not allowed (allowed: letters, digits, '.', '_', '-')";
}

// Like unique_items, but an empty list is fine.
std::string distinct_items(const Value& v) {
  std::set<std::string> seen;
  for (const auto& s : std::get<std::vector<std::string>>(v))
    if (!seen.insert(s).second) return "\"" + s + "\" is listed twice";
  return "";
}

std::string unique_items(const Value& v) {
  const auto& items = std::get<std::vector<std::string>>(v);
  if (items.empty()) return "must name at least one";
  std::set<std::string> seen;
  for (const auto& s : items)
    if (!seen.insert(s).second) return "\"" + s + "\" is listed twice";
  return "";
}

// "" or HOST:PORT, HOST an IPv4 address or "localhost", PORT 0-65535.
std::string control_address(const Value& v) {
  const auto& s = std::get<std::string>(v);
  if (s.empty()) return "";
  const std::string bad = toml_literal(v) + " is not allowed: ";
  const auto colon = s.rfind(':');
  if (colon == std::string::npos)
    return bad + "expected HOST:PORT, e.g. \"127.0.0.1:9470\" (\"\" = off)";
  const std::string host = s.substr(0, colon), port = s.substr(colon + 1);
  // 1 to max_digits decimal digits up to max; leading zeros only where allowed (inet_pton
  // refuses them in an address, control/address.cpp accepts them in a port).
  auto number = [](const std::string& t, size_t max_digits, long max, bool leading_zeros) {
    if (t.empty() || t.size() > max_digits || (!leading_zeros && t.size() > 1 && t[0] == '0'))
      return false;
    if (!std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
    return std::stol(t) <= max;
  };
  bool ipv4 = host == "localhost";
  if (!ipv4) {
    int parts = 0;
    size_t start = 0;
    ipv4 = true;
    while (ipv4) {
      const auto dot = host.find('.', start);
      const std::string part = host.substr(start, dot == std::string::npos ? dot : dot - start);
      ipv4 = number(part, 3, 255, false) && ++parts <= 4;
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    ipv4 = ipv4 && parts == 4;
  }
  if (!ipv4) return bad + "the host \"" + host + "\" is not an IPv4 address or localhost";
  if (!number(port, 5, 65535, true)) return bad + "the port \"" + port + "\" is not in 0-65535";
  return "";
}

// "cpu", "cuda" or "cuda:N" (N a decimal index, no sign, no leading zero). Whether the device
// exists is checked where LibTorch is at hand (models/device.hpp).
std::string device_name(const Value& v) {
  const auto& s = std::get<std::string>(v);
  if (s == "cpu" || s == "cuda") return "";
  if (s.rfind("cuda:", 0) == 0) {
    const auto n = s.substr(5);
    const bool digits =
        !n.empty() && n.size() <= 4 && (n.size() == 1 || n[0] != '0') &&
        std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits) return "";
  }
  return toml_literal(v) + " is not allowed (allowed: cpu, cuda, cuda:N)";
}

Condition clients_at_least_2() {
  Condition c;
  c.text = "scheduler.clients >= 2";
  c.holds = [](const RunConfig& cfg) { return cfg.scheduler.clients >= 2; };
  c.state = [](const RunConfig& cfg) { return "it is " + std::to_string(cfg.scheduler.clients); };
  c.keys = {"scheduler.clients"};
  return c;
}

std::vector<Field> make_fields() {
  const SectionRef<ModelSection> model{"model", &RunConfig::model};
  const SectionRef<StrategySection> strategy{"strategy", &RunConfig::strategy};
  const SectionRef<GradfreeSection> gradfree{"gradfree", &RunConfig::gradfree};
  const SectionRef<PrivacySection> privacy{"privacy", &RunConfig::privacy};
  const SectionRef<EmulatorDesign> offsite{"offsite", &RunConfig::offsite};
  const SectionRef<EmulatorDesign> offline{"offline", &RunConfig::offline};
  const SectionRef<EmulatorSection> emulator{"emulator", &RunConfig::emulator};
  const SectionRef<SchedulerSection> scheduler{"scheduler", &RunConfig::scheduler};
  const SectionRef<AttackerSection> attacker{"attacker", &RunConfig::attacker};
  const SectionRef<EvaluationSection> evaluation{"evaluation", &RunConfig::evaluation};
  const SectionRef<OptimizerSection> optimizer{"optimizer", &RunConfig::optimizer};
  const SectionRef<TrainingSection> training{"training", &RunConfig::training};
  const SectionRef<DataSection> data{"data", &RunConfig::data};
  const SectionRef<RunSection> run{"run", &RunConfig::run};
  const SectionRef<ServerSection> server{"server", &RunConfig::server};
  const SectionRef<NetworkSection> network{"network", &RunConfig::network};
  const std::vector<std::string> quant{"none", "int8", "int4", "int2"};
  const Condition online = plan_uses_any({StrategyKind::online});
  const Condition trains_a1 = plan_uses_any({StrategyKind::online, StrategyKind::privatize});
  const Condition noisy = plan_uses_any({StrategyKind::online, StrategyKind::gradfree});
  const Condition split_learning = plan_uses_any({StrategyKind::split, StrategyKind::online});

  Field kind;
  kind.section = "strategy";
  kind.key = "kind";
  kind.doc =
      "the design (docs/DESIGN.md 2): raw token ids to the server, vanilla split learning, split "
      "with quantized wire tensors and a distance-correlation penalty, split without gradients "
      "(frozen input adapter), or tuning against a shipped emulator (Offsite-Tuning, or ours); "
      "with [[phase]] tables it is phase[0].strategy";
  kind.write = [](RunConfig& c, const Value& v) {
    c.strategy.kind = parse_strategy_kind(std::get<std::string>(v));
  };
  kind.read = [](const RunConfig& c) { return Value(std::string(to_string(c.strategy.kind))); };
  kind.one_of(kind_names(true));

  // An emulator design: [offsite] and [offline] have the same keys, different defaults.
  auto design = [](const SectionRef<EmulatorDesign>& d) {
    return std::vector<Field>{
        d("keep_every", &EmulatorDesign::keep_every,
          "uniform layer drop: the emulator keeps backbone blocks 0, k, 2k, ...")
            .at_least(1),
        d("distill_steps", &EmulatorDesign::distill_steps,
          "distillation steps of the emulator on public text (emulator.distill_data); 0 = none")
            .at_least(0),
        d("weights", &EmulatorDesign::weights, "the emulator's weights as shipped to the client")
            .one_of({"float32", "int8"}),
        d("upload", &EmulatorDesign::upload,
          "the tuned adapters as returned: fp32 values, or quantized deltas")
            .one_of({"full", "int8", "int4"}),
    };
  };

  std::vector<Field> table{
      model("path", &ModelSection::path,
            "HuggingFace checkpoint directory (config.json, safetensors, vocab.json, merges.txt)")
          .check_with(not_empty, "not empty"),
      model("dtype", &ModelSection::dtype, "dtype the model computes in")
          .one_of({"float32", "bfloat16"}),
      model("n_in", &ModelSection::n_in,
            "decoder layers in the client's input adapter (after the embeddings)")
          .at_least(0),
      model("n_out", &ModelSection::n_out,
            "decoder layers in the client's output adapter (before the final norm and LM head)")
          .at_least(0),
      model("train", &ModelSection::train, "adapter training: every weight, or LoRA factors only")
          .one_of({"full", "lora"}),
      model("lora_rank", &ModelSection::lora_rank, "LoRA rank (train = lora)").above(0),
      model("lora_alpha", &ModelSection::lora_alpha, "LoRA alpha; scale = alpha / rank").above(0),
      model("lora_targets", &ModelSection::lora_targets,
            "projections that get LoRA factors (train = lora); OPT has q/k/v/out_proj, fc1, fc2; "
            "LLaMA has q/k/v/o_proj, gate/up/down_proj")
          .one_of({"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "o_proj", "gate_proj",
                   "up_proj", "down_proj"})
          .check_with(unique_items, "no duplicates"),
      kind,
      strategy("quantize_a1", &StrategySection::quantize_a1,
               "wire format of the input adapter's activations a1 (client -> server)")
          .one_of(quant)
          .only_when(online, "none"),
      strategy("quantize_a2", &StrategySection::quantize_a2,
               "wire format of the backbone's activations a2 (server -> client)")
          .one_of(quant)
          .only_when(online, "none"),
      strategy("quantize_g2", &StrategySection::quantize_g2,
               "wire format of the gradient g2 w.r.t. a2 (client -> server)")
          .one_of(quant)
          .only_when(online, "none"),
      strategy("quantize_g1", &StrategySection::quantize_g1,
               "wire format of the gradient g1 w.r.t. a1 (server -> client)")
          .one_of(quant)
          .only_when(online, "none"),
      strategy("dcor_lambda", &StrategySection::dcor_lambda,
               "weight in the input adapter's loss of the token-level, bias-corrected distance "
               "correlation between a1 and the tokens' pretrained embeddings (one sample per real "
               "token; reported per step as dcor)")
          .at_least(0)
          .only_when(trains_a1, 0.0),
      strategy("noise_std", &StrategySection::noise_std,
               "standard deviation of the Gaussian noise added to every a1 sent")
          .at_least(0)
          .only_when(noisy, 0.0),
      strategy("g2_noise", &StrategySection::g2_noise,
               "Gaussian noise on every g2 row sent, as a multiple of the row's RMS: blurs the "
               "labels that gradient matching and g2 inversion read from it")
          .at_least(0)
          .only_when(online, 0.0),
      strategy("backward", &StrategySection::backward,
               "online: \"server\" = g2 goes up and the server's g1 comes back (split learning); "
               "\"local\" = the client estimates g1 through the privatize phase's emulator and "
               "sends no gradient: gradient matching and g2 inversion have nothing to read, the "
               "output adapter still trains on the server's a2")
          .one_of({"server", "local"})
          .only_when(plan_uses_all({StrategyKind::online, StrategyKind::privatize}), "server"),
      strategy("micro_batches", &StrategySection::micro_batches,
               "split and online training batches cross in this many row chunks, pipelined: the "
               "server computes chunk i+1 while the client computes chunk i; the same update as 1 "
               "(gradfree phases of the plan run unpipelined)")
          .at_least(1)
          .only_when(split_learning, int64_t{1}),
      strategy("compress", &StrategySection::compress,
               "zstd-compress every message to and from the server where that makes it smaller "
               "(lossless; about 16% fewer bytes for activations and gradients)")
          .one_of({"none", "zstd"}),
      gradfree("cache_a2", &GradfreeSection::cache_a2,
               "keep each sample's a2 on the client: from the second epoch on nothing is sent"),
      privacy("privatize_steps", &PrivacySection::privatize_steps,
              "a client-local privatize phase of this many steps before the plan: the input "
              "adapter trains against the privacy objective around the emulator ([offsite] "
              "recipe) before any activation leaves the client; 0 = none")
          .at_least(0)
          .only_when(plan_uses_any({StrategyKind::online, StrategyKind::gradfree}), int64_t{0}),
      privacy("adversary_weight", &PrivacySection::adversary_weight,
              "weight of the client's own inverter in the input adapter's loss: the adapter "
              "trains to defeat an inverter the client fits on its own (a1, token) pairs "
              "(privatize and online); 0 = none")
          .at_least(0)
          .only_when(trains_a1, 0.0),
      privacy("adversary_lr", &PrivacySection::adversary_lr,
              "learning rate of the client's inverter (Adam)")
          .above(0),
      privacy("adversary_fit_steps", &PrivacySection::adversary_fit_steps,
              "> 0: the client's inverter trains on the first this many steps of privacy "
              "training only (the pretrained adapter's a1, what the attacker learns from), then "
              "stays fixed while the adapter trains away from it; 0: it trains every step")
          .at_least(0),
      privacy("adversary_decoy", &PrivacySection::adversary_decoy,
              "with adversary_fit_steps > 0: the adapter trains so that the frozen inverter "
              "reads, for every token, a decoy token from a secret permutation of the vocabulary "
              "(from privacy.secret), instead of merely not reading it; a shadow of the "
              "privatization plants other decoys"),
      privacy("secret", &PrivacySection::secret,
              "the seed of the client's inverters and decoys: \"os\" = drawn from the operating "
              "system at the client's first start and kept in its checkpoint (no config reveals "
              "it); \"seed\" = training.seed (reproducible from the config; an attacker that "
              "knows the config plants the client's own decoys)")
          .one_of({"os", "seed"}),
      privacy("adversary_tokens", &PrivacySection::adversary_tokens,
              "real tokens per step the client's inverter trains and is played on")
          .at_least(1),
      privacy("dcor_tokens", &PrivacySection::dcor_tokens,
              "real tokens per step the distance correlation runs on (cost grows with its square)")
          .at_least(4),
      privacy("privatize_output", &PrivacySection::privatize_output,
              "the privatize phase trains the output adapter too; false: only the input adapter "
              "(a head tied to the embedding trains with it), so the output adapter meets the "
              "real backbone as it was")
          .only_when(plan_uses_any({StrategyKind::privatize}), true),
      privacy("token_clusters", &PrivacySection::token_clusters,
              "coarsened inputs: the vocabulary is grouped into this many clusters of alike "
              "pretrained embeddings (public, the same for every party) and the client's input "
              "adapter sees each token's cluster, so nothing it sends tells a cluster's tokens "
              "apart; labels stay the true tokens; 0 = off. Not with offsite or offline phases "
              "(the model owner's plugged model would see other inputs)")
          .at_least(0)
          .only_when(plan_uses_any(
                         {StrategyKind::online, StrategyKind::gradfree, StrategyKind::privatize}),
                     int64_t{0}),
  };
  for (const auto* d : {&offsite, &offline})
    for (auto& f : design(*d)) table.push_back(std::move(f));
  std::vector<Field> rest{
      emulator("distill_data", &EmulatorSection::distill_data,
               "public text for distillation: a text file, one passage per line; \"\" = WordNet "
               "definitions"),
      emulator("distill_lr", &EmulatorSection::distill_lr, "learning rate of the distillation")
          .above(0),
      emulator("distill_batch", &EmulatorSection::distill_batch, "sequences per distillation step")
          .above(0),
      emulator("chunk_bytes", &EmulatorSection::chunk_bytes,
               "chunk size of emulator and adapter transfers")
          .at_least(1024),
      emulator("work_dir", &EmulatorSection::work_dir,
               "where emulators are written and clients keep downloads; \"\" = "
               "<run.out>/transfers, or a temporary directory without run.out"),
      scheduler("clients", &SchedulerSection::clients,
                "simulated clients, each with its own data shard and session")
          .at_least(1)
          .at_most(64),
      scheduler("fedavg", &SchedulerSection::fedavg,
                "average the clients' adapters after every phase")
          .only_when(clients_at_least_2(), false),
      scheduler("budget_bytes", &SchedulerSection::budget_bytes,
                "training bytes on the wire (all clients) after which the run switches to "
                "fallback; 0 = no budget")
          .at_least(0),
      scheduler("fallback", &SchedulerSection::fallback,
                "the strategy the budget policy switches to once budget_bytes are spent")
          .one_of(kind_names(false)),
      scheduler("attack_threshold", &SchedulerSection::attack_threshold,
                "live policy: once the attacker's best ROUGE-L F1 reaches it, switch to fallback "
                "(needs attacker.enabled); 0 = off")
          .at_least(0)
          .below(1),
      scheduler("control", &SchedulerSection::control,
                "HTTP control API of the running plan (gtune ctl), HOST:PORT; \"\" = off")
          .check_with(control_address,
                      "\"\" or HOST:PORT (IPv4 address or localhost, port 0-65535)"),
      attacker("enabled", &AttackerSection::enabled,
               "a curious server: tap what it receives, run the attacks, score them on the "
               "clients' true tokens (simulation only)"),
      attacker("attacks", &AttackerSection::attacks,
               "the attacks to run: data reconstruction from what crosses the wire, and "
               "membership inference on the adapters offsite/offline clients return")
          .one_of({"embedding_inversion", "learned_inversion_a1", "learned_inversion_a2",
                   "learned_inversion_g2", "gradient_matching", "gradient_matching_g2",
                   "gradient_matching_a1", "membership_inference", "adaptive_inversion_a1"})
          .check_with(unique_items, "no duplicates"),
      attacker("every", &AttackerSection::every,
               "attack training steps 0, every, 2*every, ... of each client")
          .above(0),
      attacker("max_batches", &AttackerSection::max_batches,
               "attacked batches per client and strategy")
          .above(0),
      attacker("fit_steps", &AttackerSection::fit_steps,
               "training steps of each learned inversion model")
          .above(0),
      attacker("shadows", &AttackerSection::shadows,
               "adaptive_inversion_a1: how many shadows of the client's privatization (each with "
               "a seed of the attacker's own) its inverter is fitted through, in turn; more "
               "teach it what every privatization shares rather than one seed's secrets")
          .at_least(1),
      attacker("public_data", &AttackerSection::public_data,
               "the attacker's public text, one passage per line; \"\" = GCIDE, the dictionary "
               "of Debian's dict-gcide (independent of the clients' WordNet data)"),
      attacker("cache_dir", &AttackerSection::cache_dir,
               "directory where fitted inversion models are kept and reused by later runs with "
               "the same model, cut, public text and fit settings; \"\" = fit every run"),
      evaluation("tasks", &EvaluationSection::tasks,
                 "WordNet multiple-choice tasks scored after the run (test split, lm-eval "
                 "style), zero-shot and tuned; [] = none")
          .one_of({"definition_to_word", "word_to_hypernym", "adjective_antonym", "example_cloze"})
          .check_with(distinct_items, "no duplicates"),
      evaluation("items", &EvaluationSection::items, "test items per task").above(0),
      evaluation("generation_examples", &EvaluationSection::generation_examples,
                 "held-out WordNet words whose definition the pretrained and the tuned model "
                 "generate after the run (greedy), scored by ROUGE-L against WordNet's; 0 = none")
          .at_least(0)
          .at_most(100000),
      optimizer("name", &OptimizerSection::name, "optimizer of the adapters")
          .one_of({"adamw", "sgd"}),
      optimizer("lr", &OptimizerSection::lr, "learning rate").above(0),
      optimizer("weight_decay", &OptimizerSection::weight_decay, "decoupled (adamw) or L2 (sgd)")
          .at_least(0),
      optimizer("momentum", &OptimizerSection::momentum, "SGD momentum")
          .at_least(0)
          .below(1)
          .only_when("optimizer.name", "sgd", 0.0),
      optimizer("grad_clip", &OptimizerSection::grad_clip,
                "largest global gradient norm; 0 = no clipping")
          .at_least(0),
      training("steps", &TrainingSection::steps,
               "optimizer steps; exactly one of steps / epochs is > 0")
          .at_least(0),
      training("epochs", &TrainingSection::epochs,
               "passes over the training set; setting it makes steps default to 0")
          .at_least(0),
      training("batch", &TrainingSection::batch, "sequences per step").above(0),
      training("max_len", &TrainingSection::max_len, "tokens per sequence (longer ones are cut)")
          .at_least(2),
      training("seed", &TrainingSection::seed, "seed of initialisation and data order").at_least(0),
      training("eval_every", &TrainingSection::eval_every,
               "steps between evaluations; 0 = only before and after training")
          .at_least(0),
      data("kind", &DataSection::kind,
           "the embedded WordNet instructions, the WordNet multiple-choice tasks' train splits "
           "(context -> right choice; the tasks [evaluation] scores), or your own JSONL file")
          .one_of({"wordnet", "wordnet_tasks", "jsonl"}),
      data("tasks", &DataSection::tasks,
           "WordNet multiple-choice tasks to train on, interleaved; [] = all four")
          .one_of({"definition_to_word", "word_to_hypernym", "adjective_antonym", "example_cloze"})
          .check_with(distinct_items, "no duplicates")
          .only_when("data.kind", "wordnet_tasks", std::vector<std::string>{}),
      data("path", &DataSection::path, "JSONL training file (required for kind = jsonl)")
          .only_when("data.kind", "jsonl", std::string()),
      data("valid_path", &DataSection::valid_path,
           "JSONL validation file; \"\" = hold out valid_fraction of path")
          .only_when("data.kind", "jsonl", std::string()),
      data("wordnet_dir", &DataSection::wordnet_dir,
           "WordNet database directory, Debian wordnet-base (kind = wordnet)")
          .check_with(not_empty, "not empty"),
      data("valid_fraction", &DataSection::valid_fraction,
           "share of examples held out for validation when there is no valid_path")
          .above(0)
          .below(1),
      data("train_examples", &DataSection::train_examples, "training examples kept; 0 = all")
          .at_least(0),
      data("valid_examples", &DataSection::valid_examples, "validation examples kept; 0 = all")
          .at_least(0),
      run("name", &RunSection::name, "name of the run in logs, metrics and results")
          .check_with(name_chars, "letters, digits, '.', '_', '-'"),
      run("out", &RunSection::out,
          "output directory (results.json, adapters); \"\" = write nothing"),
      run("threads", &RunSection::threads, "compute threads; 0 = LibTorch's default").at_least(0),
      run("device", &RunSection::device,
          "where every party computes (adapters, backbone, batches); cuda needs a LibTorch built "
          "with CUDA and a visible GPU; cuda = the current GPU, cuda:N the N-th; the wire always "
          "carries CPU bytes")
          .check_with(device_name, "cpu, cuda, cuda:N"),
      run("checkpoint_dir", &RunSection::checkpoint_dir,
          "each client's resumable state (adapters, optimizer, data position, RNG, log), written "
          "every checkpoint_every steps and at phase ends; a restarted run resumes from it; "
          "\"\" = none"),
      run("checkpoint_every", &RunSection::checkpoint_every, "training steps between checkpoints")
          .at_least(1),
      run("label_only_logits", &RunSection::label_only_logits,
          "the LM head and loss run only where a label counts (training, held-out loss, the "
          "multiple-choice scorer's choice tokens), in chunks; false: full (batch, time, vocab) "
          "logits, for comparison"),
      run("packed_batches", &RunSection::packed_batches,
          "every party's blocks compute on the real tokens only (padding left out; attention "
          "keeps each sequence to itself); false: on every padded position, for comparison"),
      server("max_sessions", &ServerSection::max_sessions,
             "sessions the server keeps open at once; a further client is refused")
          .at_least(1),
      server("max_sessions_per_peer", &ServerSection::max_sessions_per_peer,
             "sessions one remote node may hold open at once; a further hello from it is "
             "refused (one peer cannot fill server.max_sessions)")
          .at_least(1),
      server("session_timeout", &ServerSection::session_timeout,
             "seconds without a message after which the server drops a session's state")
          .at_least(1),
      server("max_batch_tokens", &ServerSection::max_batch_tokens,
             "batch x tokens the server accepts in one request (bounds a session's memory)")
          .at_least(1),
      server("max_message_mb", &ServerSection::max_message_mb,
             "larger messages are refused before they are decoded")
          .at_least(1),
      server("max_cache_mb", &ServerSection::max_cache_mb,
             "KV caches the server keeps for the generations of every session; a step that "
             "would pass it is refused")
          .at_least(1),
      server("max_plugged_mb", &ServerSection::max_plugged_mb,
             "plugged adapters (offline designs) the server keeps in memory, all clients; beyond "
             "it the least recently plugged are read back from their file when needed (a server "
             "node with --out, gtune simulate), or an upload is refused")
          .at_least(1),
      network("reconnect_seconds", &NetworkSection::reconnect_seconds,
              "how long a client node retries a lost server (exponential backoff) before giving "
              "up; 0 = fail at once")
          .at_least(0),
  };
  for (auto& f : rest) table.push_back(std::move(f));
  return table;
}

std::vector<Field> make_phase_fields() {
  const PhaseRef phase;
  return {
      phase("strategy", &PhaseSection::strategy,
            "the phase's strategy (as strategy.kind); centralized only in a plan of one phase")
          .one_of(kind_names(true)),
      phase("steps", &PhaseSection::steps,
            "optimizer steps of the phase; exactly one of "
            "steps / epochs is > 0")
          .at_least(0),
      phase("epochs", &PhaseSection::epochs, "passes over the training set in the phase")
          .at_least(0),
  };
}

}  // namespace

const char* type_name(ValueType type) {
  switch (type) {
    case ValueType::string:
      return "string";
    case ValueType::integer:
      return "integer";
    case ValueType::floating:
      return "float";
    case ValueType::string_list:
      return "string array";
    case ValueType::boolean:
      return "boolean";
  }
  return "?";
}

std::string toml_literal(const Value& value) {
  if (auto* b = std::get_if<bool>(&value)) return *b ? "true" : "false";
  if (auto* i = std::get_if<int64_t>(&value)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&value)) {
    if (std::isnan(*d)) return "nan";
    if (std::isinf(*d)) return *d > 0 ? "inf" : "-inf";
    char buf[64];
    for (int precision = 1; precision <= 17; ++precision) {  // shortest text that reads back
      std::snprintf(buf, sizeof buf, "%.*g", precision, *d);
      if (std::strtod(buf, nullptr) == *d) break;
    }
    std::string s = buf;
    if (s.find_first_of(".e") == std::string::npos) s += ".0";
    return s;
  }
  auto quote = [](const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\t') {
        out += "\\t";
      } else if (c < 0x20 || c == 0x7f) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += static_cast<char>(c);
      }
    }
    return out + "\"";
  };
  if (auto* s = std::get_if<std::string>(&value)) return quote(*s);
  std::string out = "[";
  for (const auto& s : std::get<std::vector<std::string>>(value))
    out += (out.size() > 1 ? ", " : "") + quote(s);
  return out + "]";
}

std::string Field::allowed_text() const {
  std::vector<std::string> parts;
  if (!one_of_values.empty()) parts.push_back(join(one_of_values));
  if (std::isfinite(lo)) parts.push_back((lo_open ? "> " : ">= ") + format_number(lo));
  if (std::isfinite(hi)) parts.push_back((hi_open ? "< " : "<= ") + format_number(hi));
  if (!extra_text.empty() && one_of_values.empty()) parts.push_back(extra_text);
  if (type == ValueType::boolean) parts.push_back("true, false");
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : " and ") + p;
  return out;
}

std::string Field::check(const Value& v) const {
  const std::string refused = " is not allowed (allowed: " + allowed_text() + ")";
  if (!one_of_values.empty()) {
    auto allowed = [&](const std::string& s) {
      return std::find(one_of_values.begin(), one_of_values.end(), s) != one_of_values.end();
    };
    if (auto* s = std::get_if<std::string>(&v); s && !allowed(*s)) return toml_literal(v) + refused;
    if (auto* list = std::get_if<std::vector<std::string>>(&v))
      for (const auto& s : *list)
        if (!allowed(s)) return toml_literal(s) + refused;
  }
  const bool numeric = std::holds_alternative<int64_t>(v) || std::holds_alternative<double>(v);
  if (numeric) {
    const double x = std::holds_alternative<int64_t>(v) ? static_cast<double>(std::get<int64_t>(v))
                                                        : std::get<double>(v);
    const bool ok =
        std::isfinite(x) && (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
    if (!ok) return toml_literal(v) + " is out of range (allowed: " + allowed_text() + ")";
  }
  return extra ? extra(v) : "";
}

bool Field::applies(const RunConfig& cfg) const {
  return !when.holds || when.holds(cfg);
}

Field& Field::one_of(std::vector<std::string> values) {
  one_of_values = std::move(values);
  return *this;
}
Field& Field::at_least(double v) {
  lo = v;
  lo_open = false;
  return *this;
}
Field& Field::at_most(double v) {
  hi = v;
  hi_open = false;
  return *this;
}
Field& Field::above(double v) {
  lo = v;
  lo_open = true;
  return *this;
}
Field& Field::below(double v) {
  hi = v;
  hi_open = true;
  return *this;
}
Field& Field::check_with(std::function<std::string(const Value&)> fn, std::string text) {
  extra = std::move(fn);
  extra_text = std::move(text);
  return *this;
}
Field& Field::only_when(std::string key, std::string value, Value neutral_value) {
  return only_when(key_is(std::move(key), std::move(value)), std::move(neutral_value));
}
Field& Field::only_when(Condition condition, Value neutral_value) {
  when = std::move(condition);
  neutral = std::move(neutral_value);
  return *this;
}

Condition key_is(std::string key, std::string value) {
  Condition c;
  c.text = key + " = " + toml_literal(value);
  c.holds = [key, value](const RunConfig& cfg) {
    return std::get<std::string>(find_field(key)->read(cfg)) == value;
  };
  c.state = [key](const RunConfig& cfg) {
    return "it is " + toml_literal(find_field(key)->read(cfg));
  };
  c.keys = {key};
  return c;
}

namespace {

Condition plan_uses(std::vector<StrategyKind> kinds, bool all) {
  Condition c;
  std::vector<std::string> names;
  for (auto kind : kinds) names.emplace_back(to_string(kind));
  c.text = "the plan uses ";
  for (size_t i = 0; i < names.size(); ++i)
    c.text += (i == 0 ? "" : i + 1 == names.size() ? (all ? " and " : " or ") : ", ") + names[i];
  c.holds = [kinds, all](const RunConfig& cfg) {
    const auto used = [&](StrategyKind kind) { return gt::plan_uses(cfg, kind); };
    return all ? std::all_of(kinds.begin(), kinds.end(), used)
               : std::any_of(kinds.begin(), kinds.end(), used);
  };
  c.state = [](const RunConfig& cfg) {
    std::vector<std::string> used;
    for (const auto& phase : run_plan(cfg)) {
      const std::string name = to_string(phase.strategy);
      if (std::find(used.begin(), used.end(), name) == used.end()) used.push_back(name);
    }
    std::string out = "the plan runs " + join(used);
    if (cfg.scheduler.budget_bytes > 0)
      out += std::string(" and falls back to ") + to_string(cfg.scheduler.fallback);
    return out;
  };
  c.keys = {"strategy.kind", "phase[].strategy", "scheduler.budget_bytes", "scheduler.fallback",
            "privacy.privatize_steps"};  // run_plan starts with a privatize phase
  return c;
}

}  // namespace

Condition plan_uses_any(std::vector<StrategyKind> kinds) {
  return plan_uses(std::move(kinds), false);
}
Condition plan_uses_all(std::vector<StrategyKind> kinds) {
  return plan_uses(std::move(kinds), true);
}

const std::vector<Field>& fields() {
  static const std::vector<Field> table = make_fields();
  return table;
}

const std::vector<std::string>& sections() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& f : fields())
      if (out.empty() || out.back() != f.section) out.push_back(f.section);
    return out;
  }();
  return names;
}

const std::vector<Field>& phase_fields() {
  static const std::vector<Field> table = make_phase_fields();
  return table;
}

const Field* find_phase_field(const std::string& key) {
  for (const auto& f : phase_fields())
    if (f.key == key) return &f;
  return nullptr;
}

std::string strategy_kind_list(bool with_centralized) {
  return join(kind_names(with_centralized));
}

const Field* find_field(const std::string& name) {
  for (const auto& f : fields())
    if (f.name() == name) return &f;
  return nullptr;
}

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        const size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diag = up;
      }
    }
    return row[b.size()];
  };
  std::string best;
  size_t best_d = 3;
  for (const auto& c : candidates) {
    const size_t d = distance(word, c);
    if (d < best_d) best = c, best_d = d;
  }
  return best;
}

}  // namespace gt::config_detail
