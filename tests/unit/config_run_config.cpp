// The TOML run configuration: defaults, the example files, round trips through to_toml,
// command-line overrides, and one check per class of error that it names the key at fault.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "common/error.hpp"
#include "config/field_registry.hpp"
#include "config/run_config.hpp"
#include "tests/temp_dir.hpp"

namespace fs = std::filesystem;
using doctest::Contains;

namespace {

std::string source_path(const std::string& rel) {
  return std::string(GT_FIXTURES_DIR) + "/../../" + rel;
}

gt::RunConfig parse(const std::string& text) {
  return gt::parse_run_config(text, "test.toml", "");
}

using gt::test::TempDir;

}  // namespace

TEST_CASE("run config: defaults") {
  const auto c = gt::default_run_config();
  CHECK(c.source == "<defaults>");
  CHECK(c.model.path == "models/pretrained/opt-mini-gcide");
  CHECK(c.model.dtype == "float32");
  CHECK(c.model.lora_targets == std::vector<std::string>{"q_proj", "v_proj"});
  CHECK(c.strategy.kind == gt::StrategyKind::online);
  CHECK(c.strategy.quantize_a1 == "int8");
  CHECK(c.strategy.dcor_lambda == doctest::Approx(0.1));
  CHECK(c.optimizer.name == "adamw");
  CHECK(c.training.steps == 100);
  CHECK(c.training.epochs == 0);
  CHECK(c.data.kind == "wordnet");
  CHECK(c.run.out.empty());
  CHECK(c.strategy.noise_std == 0.0);
  CHECK(c.gradfree.cache_a2);
  CHECK(c.offsite.keep_every == 2);
  CHECK(c.offsite.weights == "float32");
  CHECK(c.offsite.upload == "full");
  CHECK(c.offline.keep_every == 4);
  CHECK(c.offline.weights == "int8");
  CHECK(c.offline.upload == "int8");
  CHECK(c.emulator.distill_data.empty());
  CHECK(c.emulator.chunk_bytes == 1 << 20);
  CHECK(c.scheduler.clients == 1);
  CHECK(!c.scheduler.fedavg);
  CHECK(c.scheduler.fallback == gt::StrategyKind::gradfree);
  CHECK(c.scheduler.control == "127.0.0.1:9470");
  CHECK(c.phases.empty());
  const auto plan = gt::run_plan(c);
  REQUIRE(plan.size() == 1);
  CHECK(plan[0].strategy == gt::StrategyKind::online);
  CHECK(plan[0].steps == 100);
  CHECK(plan[0].epochs == 0);
  CHECK(gt::plan_uses(c, gt::StrategyKind::online));
  CHECK(!gt::plan_uses(c, gt::StrategyKind::gradfree));  // the fallback only with a budget
  CHECK_NOTHROW(gt::validate_run_config(c, "defaults"));
  // An empty file is the defaults.
  CHECK(parse("") == c);
  for (const char* name : {"centralized", "split", "online", "gradfree", "offsite", "offline"})
    CHECK(std::string(gt::to_string(gt::parse_strategy_kind(name))) == name);
  CHECK_THROWS_WITH_AS(gt::parse_strategy_kind("gradient"),
                       Contains("\"gradient\" is not allowed (allowed: centralized, split, online, "
                                "gradfree, offsite, offline, privatize)"),
                       gt::Error);
}

TEST_CASE("run config: a string literal is a string value, not a boolean") {
  using gt::config_detail::Value;
  CHECK(std::holds_alternative<std::string>(Value("none")));
  const char* text = "x";
  CHECK(std::holds_alternative<std::string>(Value(text)));
  CHECK(std::holds_alternative<bool>(Value(true)));
  CHECK(std::holds_alternative<int64_t>(Value(int64_t{3})));
  CHECK(gt::config_detail::toml_literal(Value(false)) == "false");
  CHECK(gt::config_detail::toml_literal(Value("true")) == "\"true\"");
  // Every neutral value has its key's type.
  for (const auto& f : gt::config_detail::fields()) {
    CAPTURE(f.name());
    if (!f.conditional()) continue;
    const auto& n = f.neutral;
    switch (f.type) {
      case gt::config_detail::ValueType::string:
        CHECK(std::holds_alternative<std::string>(n));
        break;
      case gt::config_detail::ValueType::integer:
        CHECK(std::holds_alternative<int64_t>(n));
        break;
      case gt::config_detail::ValueType::floating:
        CHECK(std::holds_alternative<double>(n));
        break;
      case gt::config_detail::ValueType::boolean:
        CHECK(std::holds_alternative<bool>(n));
        break;
      case gt::config_detail::ValueType::string_list:
        CHECK(std::holds_alternative<std::vector<std::string>>(n));
        break;
    }
  }
}

TEST_CASE("run config: example files load and their model path exists") {
  const std::map<std::string, gt::StrategyKind> examples{
      {"online", gt::StrategyKind::online},
      {"split", gt::StrategyKind::split},
      {"centralized", gt::StrategyKind::centralized},
      {"gradfree", gt::StrategyKind::gradfree},
      {"offsite", gt::StrategyKind::offsite},
      {"offline", gt::StrategyKind::offline},
      {"plan", gt::StrategyKind::offline}};
  // Every file in config/examples is listed above, and loads.
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(source_path("config/examples"))) {
    CAPTURE(entry.path().string());
    CHECK(entry.path().extension() == ".toml");
    const auto stem = entry.path().stem();
    if (stem == "compare" || stem == "wire" || stem == "frontier" || stem == "frontier-privatize")
      continue;  // experiment grids (experiment_grid.cpp)
    CHECK(examples.count(entry.path().stem().string()) == 1);
    CHECK_NOTHROW(gt::load_run_config(entry.path().string()));
    ++files;
  }
  CHECK(files == examples.size());
  for (const auto& [name, kind] : examples) {
    const auto& example = name;  // clang 14 cannot capture a structured binding
    CAPTURE(example);
    const std::string path = source_path("config/examples/" + name + ".toml");
    const auto c = gt::load_run_config(path);
    CHECK(c.source == path);
    CHECK(c.strategy.kind == kind);  // with phases, the first phase's
    CHECK(fs::is_directory(c.model.path));
    CHECK(fs::exists(fs::path(c.model.path) / "config.json"));
    CHECK(c.model.n_in == 1);
    CHECK(c.model.n_out == 1);
    CHECK(c.training.batch == 8);
    CHECK(c.training.max_len == 48);
    CHECK(c.data.train_examples == 2000);
    // 60 steps that train through the server (a privatize phase before them is local).
    int64_t steps = 0;
    for (const auto& phase : gt::run_plan(c))
      if (phase.strategy != gt::StrategyKind::privatize) steps += phase.steps;
    CHECK(steps == 60);
    CHECK(steps * c.training.batch <= c.data.train_examples);
    if (!gt::plan_uses(c, gt::StrategyKind::online)) CHECK(c.strategy.quantize_a1 == "none");
    if (!gt::plan_uses(c, gt::StrategyKind::online) &&
        !gt::plan_uses(c, gt::StrategyKind::privatize))
      CHECK(c.strategy.dcor_lambda == 0.0);
    CHECK(parse(gt::to_toml(c)) == c);
  }
  CHECK(gt::load_run_config(source_path("config/examples/online.toml")).strategy.quantize_a1 ==
        "int8");
  const auto offline = gt::load_run_config(source_path("config/examples/offline.toml"));
  CHECK(offline.offline.keep_every == 4);
  CHECK(offline.offline.weights == "int8");
  const auto plan = gt::load_run_config(source_path("config/examples/plan.toml"));
  REQUIRE(plan.phases.size() == 2);
  CHECK(plan.phases[0].strategy == gt::StrategyKind::offline);
  CHECK(plan.phases[0].steps == 30);
  CHECK(plan.phases[1].strategy == gt::StrategyKind::online);
  CHECK(plan.phases[1].steps == 30);
  CHECK(plan.training.steps == 0);
  CHECK(plan.training.epochs == 0);
  CHECK(plan.scheduler.clients == 2);
  CHECK(plan.scheduler.fedavg);
  CHECK(plan.strategy.quantize_a1 == "int8");
  CHECK(plan.strategy.dcor_lambda == doctest::Approx(0.1));
}

TEST_CASE("run config: to_toml round trip") {
  auto c = gt::default_run_config();
  c.model.path = "/models/with \"quotes\" and \\ backslash\tand tab";
  c.model.train = "lora";
  c.model.lora_alpha = 12.5;
  c.model.lora_targets = {"q_proj", "k_proj", "fc2"};
  c.strategy.quantize_g1 = "int4";
  c.strategy.dcor_lambda = 0.123456789012345;
  c.strategy.micro_batches = 3;
  c.strategy.compress = "zstd";
  c.optimizer = {"sgd", 3e-4, 0.01, 0.9, 1.0};
  c.training.steps = 0;
  c.training.epochs = 2;
  c.training.seed = 1234567890123ULL;
  c.data.kind = "jsonl";
  c.data.path = "data/train.jsonl";
  c.data.valid_fraction = 1.0 / 3.0;
  c.run = {"my-run.1", "runs/x", 2, "ckpt", 7};
  c.server = {4, 30, 1024, 8};
  c.network = {45};
  c.gradfree.cache_a2 = false;
  c.offsite = {4, 50, "int8", "int4"};
  c.emulator = {"public.jsonl", 2e-4, 4, 4096, "work"};
  c.scheduler = {3, true, 123456789, gt::StrategyKind::split, 0.25, ""};
  c.attacker = {true, {"gradient_matching"}, 3, 2, 50, 2, "public.txt", "cache"};

  // A plan of phases with booleans on both sides.
  auto p = gt::default_run_config();
  p.phases = {{gt::StrategyKind::offline, 30, 0},
              {gt::StrategyKind::gradfree, 0, 2},
              {gt::StrategyKind::online, 30, 0}};
  p.strategy.kind = gt::StrategyKind::offline;
  p.training.steps = 0;
  p.strategy.noise_std = 0.25;
  p.scheduler.clients = 2;
  p.scheduler.fedavg = true;
  p.scheduler.budget_bytes = 1000000;
  p.scheduler.fallback = gt::StrategyKind::offsite;
  p.scheduler.control = "localhost:0";
  p.data.kind = "wordnet_tasks";
  p.data.tasks = {"word_to_hypernym", "example_cloze"};
  CHECK_NOTHROW(gt::validate_run_config(p, "plan"));
  for (const auto& cfg : {gt::default_run_config(), c, p}) {
    const std::string text = gt::to_toml(cfg);
    CAPTURE(text);
    const auto back = gt::parse_run_config(text, "round-trip.toml", "");
    CHECK(back == cfg);
    const std::string again = gt::to_toml(back);  // the same text but the source line
    CHECK(again.substr(again.find('\n')) == text.substr(text.find('\n')));
  }
  const std::string text = gt::to_toml(p);
  CHECK(text.find("\n[[phase]]\nstrategy = \"gradfree\"\nsteps = 0\nepochs = 2\n") !=
        std::string::npos);
  CHECK(text.find("cache_a2 = true\n") != std::string::npos);
  CHECK(text.find("fedavg = true\n") != std::string::npos);
  CHECK(gt::to_toml(c).find("cache_a2 = false\n") != std::string::npos);
  const auto online = gt::load_run_config(source_path("config/examples/online.toml"));
  CHECK(parse(gt::to_toml(online)) == online);
  CHECK(!(online == gt::default_run_config()));
  // Phases are compared.
  auto q = p;
  q.phases[1].epochs = 3;
  CHECK(q != p);
  q = p;
  q.phases.pop_back();
  CHECK(q != p);
  q = p;
  q.gradfree.cache_a2 = !p.gradfree.cache_a2;
  CHECK(q != p);
}

TEST_CASE("run config: overrides") {
  auto c = gt::default_run_config();
  gt::apply_override(c, "training.steps=20");
  CHECK(c.training.steps == 20);
  gt::apply_override(c, " optimizer.lr = 1 ");  // an integer where a float is expected
  CHECK(c.optimizer.lr == 1.0);
  gt::apply_override(c, "optimizer.lr=2.5e-4");
  CHECK(c.optimizer.lr == doctest::Approx(2.5e-4));
  gt::apply_override(c, "model.path=some dir/model");  // bare strings
  CHECK(c.model.path == "some dir/model");
  gt::apply_override(c, "run.name=\"quoted\"");
  CHECK(c.run.name == "quoted");
  gt::apply_override(c, "model.lora_targets=q_proj, k_proj,fc1");
  CHECK(c.model.lora_targets == std::vector<std::string>{"q_proj", "k_proj", "fc1"});
  gt::apply_override(c, "model.lora_targets=[\"v_proj\"]");
  CHECK(c.model.lora_targets == std::vector<std::string>{"v_proj"});

  // epochs replaces steps and the other way round.
  gt::apply_override(c, "training.epochs=3");
  CHECK(c.training.epochs == 3);
  CHECK(c.training.steps == 0);
  gt::apply_override(c, "training.steps=7");
  CHECK(c.training.epochs == 0);

  // Switching to split makes online's knobs neutral; online keeps what is set.
  gt::apply_override(c, "strategy.kind=split");
  CHECK(c.strategy.kind == gt::StrategyKind::split);
  CHECK(c.strategy.quantize_a1 == "none");
  CHECK(c.strategy.dcor_lambda == 0.0);
  CHECK_NOTHROW(gt::validate_run_config(c, "overridden"));

  // jsonl and its path may come in either order; apply_overrides checks the result.
  auto d = gt::default_run_config();
  gt::apply_overrides(d, {"data.kind=jsonl", "data.path=train.jsonl"});
  CHECK(d.data.path == "train.jsonl");
  auto e = gt::default_run_config();
  CHECK_THROWS_WITH_AS(gt::apply_overrides(e, {"data.kind=jsonl"}), Contains("data.path"),
                       gt::Error);
}

TEST_CASE("run config: override errors name the override and the key") {
  auto c = gt::default_run_config();
  CHECK_THROWS_WITH_AS(gt::apply_override(c, "training.steps"),
                       Contains("override \"training.steps\""), gt::Error);
  CHECK_THROWS_WITH_AS(gt::apply_override(c, "training.steps=abc"),
                       Contains("override \"training.steps=abc\": training.steps: expected an "
                                "integer"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(gt::apply_override(c, "training.batch=0"), Contains("training.batch"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(gt::apply_override(c, "training.stesp=20"),
                       Contains("did you mean \"steps\""), gt::Error);
  CHECK_THROWS_WITH_AS(gt::apply_override(c, "trainig.steps=20"),
                       Contains("did you mean \"training.steps\""), gt::Error);
  CHECK_THROWS_WITH_AS(gt::apply_override(c, "steps=20"),
                       Contains("did you mean \"training.steps\""), gt::Error);
  CHECK_THROWS_WITH_AS(
      gt::apply_override(c, "strategy.kind=gradient"),
      Contains("strategy.kind: \"gradient\" is not allowed (allowed: "
               "centralized, split, online, gradfree, offsite, offline, privatize)"),
      gt::Error);
  CHECK_THROWS_WITH_AS(gt::apply_override(c, "model.lora_targets=q_proj,qproj"),
                       Contains("\"qproj\" is not allowed"), gt::Error);
  CHECK(c == gt::default_run_config());  // failed overrides change nothing
}

TEST_CASE("run config: unknown sections and keys") {
  CHECK_THROWS_WITH_AS(
      parse("[trainig]\nsteps = 3\n"),
      Contains("test.toml:1: [trainig]: unknown section; did you mean [training]?"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[extras]\n"), Contains("sections: model, strategy"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("steps = 3\n"),
                       Contains("steps: keys belong in a section; did you mean \"training.steps\""),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[training]\nsteps = 3\nwarmup = 10\n"),
                       Contains("test.toml:3: training.warmup: unknown key"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[training]\nlr = 0.1\n"), Contains("did you mean \"optimizer.lr\""),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("model = 3\n"), Contains("model: expected a table [model]"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[model.extra]\nx = 1\n"), Contains("model.extra: unknown key"),
                       gt::Error);
}

TEST_CASE("run config: a typo suggests the closest key") {
  CHECK_THROWS_WITH_AS(parse("[strategy]\ndcor_lamda = 0.5\n"),
                       Contains("strategy.dcor_lamda: unknown key; did you mean \"dcor_lambda\"?"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[model]\nlora_rnak = 4\n"), Contains("did you mean \"lora_rank\""),
                       gt::Error);
}

TEST_CASE("run config: wrong types") {
  CHECK_THROWS_WITH_AS(parse("[training]\nsteps = \"20\"\n"),
                       Contains("test.toml:2: training.steps: expected an integer, got a string"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[training]\nbatch = 2.5\n"),
                       Contains("training.batch: expected an integer, got a float (2.5)"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[model]\npath = 3\n"), Contains("model.path: expected a string"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[strategy]\nkind = true\n"), Contains("strategy.kind"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[model]\nlora_targets = \"q_proj\"\n"),
                       Contains("model.lora_targets: expected a string array"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[model]\nlora_targets = [\"q_proj\", 3]\n"),
                       Contains("an array holding an integer (3)"), gt::Error);
  // Integers are fine where floats are expected.
  CHECK(parse("[optimizer]\nlr = 1\n").optimizer.lr == 1.0);
}

TEST_CASE("run config: out-of-range numbers") {
  const std::pair<const char*, const char*> cases[] = {
      {"[model]\nn_in = -1", "model.n_in: -1 is out of range (allowed: >= 0)"},
      {"[model]\nn_out = -2", "model.n_out"},
      {"[model]\nlora_rank = 0", "model.lora_rank: 0 is out of range (allowed: > 0)"},
      {"[optimizer]\nlr = 0", "optimizer.lr: 0.0 is out of range (allowed: > 0)"},
      {"[optimizer]\nlr = nan", "optimizer.lr"},
      {"[optimizer]\ngrad_clip = -1.0", "optimizer.grad_clip"},
      {"[optimizer]\nname = \"sgd\"\nmomentum = 1.0", "optimizer.momentum"},
      {"[training]\nbatch = 0", "training.batch"},
      {"[training]\nmax_len = 1", "training.max_len: 1 is out of range (allowed: >= 2)"},
      {"[training]\nsteps = -5", "training.steps"},
      {"[training]\nseed = -1", "training.seed"},
      {"[data]\nvalid_fraction = 1.0",
       "data.valid_fraction: 1.0 is out of range (allowed: > 0 "
       "and < 1)"},
      {"[data]\nvalid_fraction = 0", "data.valid_fraction"},
      {"[run]\nthreads = -1", "run.threads"},
      {"[strategy]\ndcor_lambda = -0.5", "strategy.dcor_lambda"},
      {"[strategy]\nnoise_std = -0.1", "strategy.noise_std: -0.1 is out of range (allowed: >= 0)"},
      {"[offsite]\nkeep_every = 0", "offsite.keep_every: 0 is out of range (allowed: >= 1)"},
      {"[offline]\nkeep_every = -1", "offline.keep_every"},
      {"[offline]\ndistill_steps = -1", "offline.distill_steps"},
      {"[emulator]\ndistill_lr = 0", "emulator.distill_lr: 0.0 is out of range (allowed: > 0)"},
      {"[emulator]\ndistill_batch = 0", "emulator.distill_batch"},
      {"[emulator]\nchunk_bytes = 1023",
       "emulator.chunk_bytes: 1023 is out of range (allowed: >= 1024)"},
      {"[scheduler]\nclients = 0",
       "scheduler.clients: 0 is out of range (allowed: >= 1 and <= 64)"},
      {"[scheduler]\nclients = 65", "scheduler.clients: 65 is out of range"},
      {"[scheduler]\nbudget_bytes = -1", "scheduler.budget_bytes"},
  };
  for (const auto& [text, message] : cases) {
    const auto& input = text;  // clang 14 cannot capture a structured binding
    CAPTURE(input);
    CHECK_THROWS_WITH_AS(parse(text), Contains(message), gt::Error);
  }
}

TEST_CASE("run config: enum strings") {
  CHECK_THROWS_WITH_AS(parse("[strategy]\nquantize_a1 = \"int3\"\n"),
                       Contains("test.toml:2: strategy.quantize_a1: \"int3\" is not allowed "
                                "(allowed: none, int8, int4, int2)"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[model]\ndtype = \"float16\"\n"),
                       Contains("model.dtype: \"float16\" is not allowed (allowed: float32, "
                                "bfloat16)"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[model]\ntrain = \"frozen\"\n"), Contains("model.train"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[optimizer]\nname = \"adam\"\n"), Contains("optimizer.name"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[data]\nkind = \"csv\"\n"), Contains("data.kind"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[strategy]\nkind = \"offsite-tuning\"\n"), Contains("strategy.kind"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(
      parse("[offline]\nweights = \"int4\"\n"),
      Contains("offline.weights: \"int4\" is not allowed (allowed: float32, int8)"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[offsite]\nupload = \"fp16\"\n"),
                       Contains("offsite.upload: \"fp16\" is not allowed (allowed: full, int8, "
                                "int4)"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[scheduler]\nfallback = \"centralized\"\n"),
                       Contains("test.toml:2: scheduler.fallback: \"centralized\" is not allowed "
                                "(allowed: split, online, gradfree, offsite, offline, privatize)"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[model]\nlora_targets = [\"q_proj\", \"q_proj\"]\n"),
                       Contains("model.lora_targets: \"q_proj\" is listed twice"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[run]\nname = \"a b\"\n"), Contains("run.name"), gt::Error);
}

TEST_CASE("run config: exactly one of steps and epochs") {
  const auto by_epochs = parse("[training]\nepochs = 2\n");
  CHECK(by_epochs.training.epochs == 2);
  CHECK(by_epochs.training.steps == 0);
  CHECK_THROWS_WITH_AS(parse("[training]\nsteps = 10\nepochs = 2\n"),
                       Contains("test.toml:3: training.epochs: set either training.steps or "
                                "training.epochs, not both"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[training]\nsteps = 0\n"),
                       Contains("training.steps: one of training.steps and training.epochs"),
                       gt::Error);
}

TEST_CASE("run config: jsonl data needs data.path") {
  CHECK_THROWS_WITH_AS(parse("[data]\nkind = \"jsonl\"\n"),
                       Contains("test.toml:2: data.path: required when data.kind = \"jsonl\""),
                       gt::Error);
  CHECK(parse("[data]\nkind = \"jsonl\"\npath = \"/d/train.jsonl\"\n").data.path ==
        "/d/train.jsonl");
  CHECK_THROWS_WITH_AS(parse("[data]\npath = \"train.jsonl\"\n"),
                       Contains("data.path: only used when data.kind = \"jsonl\""), gt::Error);
}

TEST_CASE("run config: online-only keys with other strategies") {
  const auto split = parse("[strategy]\nkind = \"split\"\n");
  CHECK(split.strategy.quantize_a1 == "none");
  CHECK(split.strategy.dcor_lambda == 0.0);
  CHECK_THROWS_WITH_AS(parse("[strategy]\nkind = \"split\"\nquantize_a1 = \"int8\"\n"),
                       Contains("test.toml:3: strategy.quantize_a1: only used when the plan uses "
                                "online (the plan runs split); remove it or set it to \"none\""),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[strategy]\nkind = \"centralized\"\ndcor_lambda = 0.2\n"),
                       Contains("strategy.dcor_lambda"), gt::Error);
  CHECK(parse("[strategy]\nkind = \"split\"\nquantize_a1 = \"none\"\n").strategy.kind ==
        gt::StrategyKind::split);
}

TEST_CASE("run config: TOML syntax errors give line and column") {
  CHECK_THROWS_WITH_AS(parse("[training]\nsteps = \n"), Contains("test.toml:2:"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[model]\npath = \"unterminated\n"), Contains("TOML syntax error"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[training]\nsteps = 1\nsteps = 2\n"), Contains("test.toml:3:"),
                       gt::Error);
}

TEST_CASE("run config: relative paths resolve against the file's directory") {
  TempDir dir;
  fs::create_directories(dir.path / "sub" / "model");
  const std::string path = dir.write("sub/run.toml",
                                     "[model]\npath = \"model\"\n[data]\nkind = \"jsonl\"\n"
                                     "path = \"../train.jsonl\"\nvalid_path = \"/abs/v.jsonl\"\n"
                                     "[run]\nout = \"out\"\n[emulator]\n"
                                     "distill_data = \"pub/glosses.jsonl\"\nwork_dir = \"w\"\n");
  const auto c = gt::load_run_config(path);
  CHECK(c.emulator.distill_data == (dir.path / "sub" / "pub" / "glosses.jsonl").string());
  CHECK(c.emulator.work_dir == (dir.path / "sub" / "w").string());
  CHECK(c.model.path == (dir.path / "sub" / "model").string());
  CHECK(c.data.path == (dir.path / "train.jsonl").string());
  CHECK(c.data.valid_path == "/abs/v.jsonl");
  CHECK(c.run.out == (dir.path / "sub" / "out").string());

  // model.path falls back to the current directory when the file's directory lacks it.
  const std::string cwd_relative = fs::relative(std::string(GT_MODEL_DIR)).string();
  const auto fallback =
      gt::parse_run_config("[model]\npath = \"" + cwd_relative + "\"\n", "x.toml", dir.path);
  CHECK(fallback.model.path == cwd_relative);
  // Defaults are not moved, and base_dir "" leaves paths as written.
  CHECK(gt::load_run_config(dir.write("empty.toml", "")).model.path ==
        gt::default_run_config().model.path);
  CHECK(gt::parse_run_config("[run]\nout = \"o\"\n", "x", "").run.out == "o");
}

TEST_CASE("run config: file errors name the file") {
  TempDir dir;
  const std::string missing = (dir.path / "missing.toml").string();
  CHECK_THROWS_WITH_AS(gt::load_run_config(missing), Contains(missing.c_str()), gt::Error);
  CHECK_THROWS_WITH_AS(gt::load_run_config(dir.path.string()), Contains("is a directory"),
                       gt::Error);
  const std::string bad = dir.write("bad.toml", "# comment\n[strategy]\nquantize_a1 = \"int3\"\n");
  CHECK_THROWS_WITH_AS(gt::load_run_config(bad),
                       Contains((bad + ":3: strategy.quantize_a1").c_str()), gt::Error);
}

TEST_CASE("run config: README documents every key") {
  std::ifstream in(source_path("config/README.md"));
  REQUIRE(in.good());
  std::stringstream readme;
  readme << in.rdbuf();
  const auto keys = gt::run_config_keys();
  CHECK(keys.size() == 98);
  for (const auto& k : keys) {
    CAPTURE(k.name);
    CHECK(readme.str().find("| `" + k.name + "` | " + k.type + " | `" + k.default_value + "` |") !=
          std::string::npos);
  }
  // The README's example is a valid file.
  const std::string text = readme.str(), open = "## Example\n\n```toml\n";
  const auto begin = text.find(open);
  REQUIRE(begin != std::string::npos);
  const auto body = begin + open.size();
  const auto c = parse(text.substr(body, text.find("```", body) - body));
  CHECK(c.model.train == "lora");
  CHECK(c.training.epochs == 2);
  CHECK(c.training.steps == 0);
}

TEST_CASE("run config: booleans") {
  CHECK(!parse("[gradfree]\ncache_a2 = false\n").gradfree.cache_a2);
  CHECK(parse("[gradfree]\ncache_a2 = true\n").gradfree.cache_a2);
  CHECK_THROWS_WITH_AS(parse("[gradfree]\ncache_a2 = 1\n"),
                       Contains("test.toml:2: gradfree.cache_a2: expected a boolean, got an "
                                "integer (1)"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[gradfree]\ncache_a2 = \"true\"\n"),
                       Contains("gradfree.cache_a2: expected a boolean, got a string (\"true\")"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[scheduler]\nclients = 2\nfedavg = [true]\n"),
                       Contains("test.toml:3: scheduler.fedavg: expected a boolean, got an array"),
                       gt::Error);
  // A boolean where another type is expected.
  CHECK_THROWS_WITH_AS(parse("[training]\nsteps = true\n"),
                       Contains("training.steps: expected an integer, got a boolean (true)"),
                       gt::Error);

  auto c = gt::default_run_config();
  gt::apply_override(c, "gradfree.cache_a2=false");
  CHECK(!c.gradfree.cache_a2);
  gt::apply_override(c, "gradfree.cache_a2 = true");
  CHECK(c.gradfree.cache_a2);
  CHECK_THROWS_WITH_AS(gt::apply_override(c, "gradfree.cache_a2=yes"),
                       Contains("override \"gradfree.cache_a2=yes\": gradfree.cache_a2: expected "
                                "a boolean, got \"yes\""),
                       gt::Error);
  CHECK_THROWS_WITH_AS(gt::apply_override(c, "gradfree.cache_a2=0"),
                       Contains("expected a boolean, got an integer (0)"), gt::Error);
  CHECK_THROWS_WITH_AS(gt::apply_override(c, "gradfree.cache_a2=\"false\""),
                       Contains("expected a boolean, got a string"), gt::Error);
  CHECK(c.gradfree.cache_a2);

  const auto keys = gt::run_config_keys();
  const auto it = std::find_if(keys.begin(), keys.end(), [](const gt::ConfigKey& k) {
    return k.name == "gradfree.cache_a2";
  });
  REQUIRE(it != keys.end());
  CHECK(it->type == "boolean");
  CHECK(it->default_value == "true");
}

TEST_CASE("run config: the new sections") {
  const auto c = parse(
      "[strategy]\nkind = \"gradfree\"\nnoise_std = 0.05\n"
      "[gradfree]\ncache_a2 = false\n"
      "[offsite]\nkeep_every = 3\ndistill_steps = 100\nweights = \"int8\"\nupload = \"int4\"\n"
      "[offline]\nkeep_every = 1\n"
      "[emulator]\ndistill_data = \"/pub.jsonl\"\ndistill_lr = 3e-4\ndistill_batch = 4\n"
      "chunk_bytes = 1024\nwork_dir = \"/w\"\n"
      "[scheduler]\nclients = 64\nfedavg = true\nbudget_bytes = 5000000\nfallback = \"offline\"\n"
      "control = \"\"\n");
  CHECK(c.strategy.kind == gt::StrategyKind::gradfree);
  CHECK(c.strategy.noise_std == doctest::Approx(0.05));
  CHECK(c.strategy.quantize_a1 == "none");  // online's knobs are neutral with gradfree
  CHECK(c.strategy.dcor_lambda == 0.0);
  CHECK(!c.gradfree.cache_a2);
  CHECK(c.offsite.keep_every == 3);
  CHECK(c.offsite.distill_steps == 100);
  CHECK(c.offsite.weights == "int8");
  CHECK(c.offsite.upload == "int4");
  CHECK(c.offline.keep_every == 1);
  CHECK(c.offline.weights == "int8");  // the [offline] defaults stay
  CHECK(c.emulator.distill_data == "/pub.jsonl");
  CHECK(c.emulator.distill_lr == doctest::Approx(3e-4));
  CHECK(c.emulator.distill_batch == 4);
  CHECK(c.emulator.chunk_bytes == 1024);
  CHECK(c.emulator.work_dir == "/w");
  CHECK(c.scheduler.clients == 64);
  CHECK(c.scheduler.fedavg);
  CHECK(c.scheduler.budget_bytes == 5000000);
  CHECK(c.scheduler.fallback == gt::StrategyKind::offline);
  CHECK(c.scheduler.control.empty());
  CHECK(gt::plan_uses(c, gt::StrategyKind::gradfree));
  CHECK(gt::plan_uses(c, gt::StrategyKind::offline));  // the fallback, with a budget
  CHECK(!gt::plan_uses(c, gt::StrategyKind::online));

  // The design sections are always allowed, whatever the plan runs.
  const auto split = parse(
      "[strategy]\nkind = \"split\"\n[offline]\nkeep_every = 2\n"
      "[gradfree]\ncache_a2 = false\n[emulator]\ndistill_batch = 2\n");
  CHECK(split.offline.keep_every == 2);
  CHECK(!split.gradfree.cache_a2);

  CHECK_THROWS_WITH_AS(parse("[emulator]\ndistil_lr = 1e-3\n"),
                       Contains("emulator.distil_lr: unknown key; did you mean \"distill_lr\"?"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[schedular]\nclients = 2\n"),
                       Contains("unknown section; did you mean [scheduler]?"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[offline]\nfedavg = true\n"),
                       Contains("did you mean \"scheduler.fedavg\""), gt::Error);
}

TEST_CASE("run config: scheduler.control is \"\" or HOST:PORT") {
  for (const char* ok : {"", "127.0.0.1:9470", "0.0.0.0:0", "localhost:65535", "10.1.2.3:08080",
                         "255.255.255.255:1"}) {
    CAPTURE(ok);
    CHECK(parse(std::string("[scheduler]\ncontrol = \"") + ok + "\"\n").scheduler.control == ok);
  }
  const std::pair<const char*, const char*> bad[] = {
      {"9470", "expected HOST:PORT"},
      {"127.0.0.1", "expected HOST:PORT"},
      {"example.com:80", "the host \"example.com\" is not an IPv4 address or localhost"},
      {"127.0.0:80", "the host \"127.0.0\" is not an IPv4 address or localhost"},
      {"127.0.0.1.1:80", "the host \"127.0.0.1.1\" is not an IPv4"},
      {"256.0.0.1:80", "the host \"256.0.0.1\" is not an IPv4"},
      {"01.0.0.1:80", "the host \"01.0.0.1\" is not an IPv4"},
      {"127.0.0.1:65536", "the port \"65536\" is not in 0-65535"},
      {"127.0.0.1:", "the port \"\" is not in 0-65535"},
      {"127.0.0.1:-1", "the port \"-1\""},
      {"127.0.0.1:80x", "the port \"80x\""},
      {":80", "the host \"\""},
      {"[::1]:80", "the host \"[::1]\" is not an IPv4"},
  };
  for (const auto& [text, message] : bad) {
    const auto& input = text;  // clang 14 cannot capture a structured binding
    CAPTURE(input);
    CHECK_THROWS_WITH_AS(parse(std::string("[scheduler]\ncontrol = \"") + text + "\"\n"),
                         Contains((std::string("test.toml:2: scheduler.control: \"") + text +
                                   "\" is not allowed: " + message)
                                      .c_str()),
                         gt::Error);
  }
  auto c = gt::default_run_config();
  gt::apply_override(c, "scheduler.control=localhost:9000");
  CHECK(c.scheduler.control == "localhost:9000");
  gt::apply_override(c, "scheduler.control=");
  CHECK(c.scheduler.control.empty());
  CHECK_THROWS_WITH_AS(gt::apply_override(c, "scheduler.control=host:1"),
                       Contains("scheduler.control: \"host:1\" is not allowed"), gt::Error);
  const auto keys = gt::run_config_keys();
  const auto it = std::find_if(keys.begin(), keys.end(), [](const gt::ConfigKey& k) {
    return k.name == "scheduler.control";
  });
  REQUIRE(it != keys.end());
  CHECK(it->allowed == "\"\" or HOST:PORT (IPv4 address or localhost, port 0-65535)");
}

TEST_CASE("run config: fedavg needs two clients") {
  CHECK_THROWS_WITH_AS(parse("[scheduler]\nfedavg = true\n"),
                       Contains("test.toml:2: scheduler.fedavg: only used when scheduler.clients "
                                ">= 2 (it is 1); remove it or set it to false"),
                       gt::Error);
  CHECK(parse("[scheduler]\nfedavg = false\n").scheduler.clients == 1);
  CHECK(parse("[scheduler]\nclients = 2\nfedavg = true\n").scheduler.fedavg);
  // An override of clients back to 1 turns fedavg off; fedavg with one client is an error.
  auto c = parse("[scheduler]\nclients = 4\nfedavg = true\n");
  gt::apply_override(c, "scheduler.clients=1");
  CHECK(!c.scheduler.fedavg);
  CHECK_THROWS_WITH_AS(gt::apply_overrides(c, {"scheduler.fedavg=true"}),
                       Contains("scheduler.fedavg: only used when scheduler.clients >= 2"),
                       gt::Error);
  auto d = gt::default_run_config();
  gt::apply_overrides(d, {"scheduler.fedavg=true", "scheduler.clients=3"});
  CHECK(d.scheduler.fedavg);
  CHECK(d.scheduler.clients == 3);
}

TEST_CASE("run config: keys that only apply when the plan uses a strategy") {
  // noise_std: online or gradfree, in any phase or as the budget's fallback.
  CHECK(parse("[strategy]\nnoise_std = 0.1\n").strategy.noise_std == doctest::Approx(0.1));
  CHECK(parse("[strategy]\nkind = \"gradfree\"\nnoise_std = 0.1\n").strategy.noise_std ==
        doctest::Approx(0.1));
  CHECK_THROWS_WITH_AS(parse("[strategy]\nkind = \"offsite\"\nnoise_std = 0.1\n"),
                       Contains("test.toml:3: strategy.noise_std: only used when the plan uses "
                                "online or gradfree (the plan runs offsite); remove it or set it "
                                "to 0.0"),
                       gt::Error);
  const auto fallback = parse(
      "[strategy]\nkind = \"split\"\nnoise_std = 0.1\n"
      "[scheduler]\nbudget_bytes = 1000\n");  // falls back to gradfree
  CHECK(fallback.strategy.noise_std == doctest::Approx(0.1));
  CHECK_THROWS_WITH_AS(parse("[strategy]\nkind = \"split\"\nnoise_std = 0.1\n"
                             "[scheduler]\nbudget_bytes = 1000\nfallback = \"offline\"\n"),
                       Contains("strategy.noise_std: only used when the plan uses online or "
                                "gradfree (the plan runs split and falls back to offline)"),
                       gt::Error);
  // online's knobs with online in a later phase only.
  const auto later = parse(
      "[strategy]\nquantize_a1 = \"int4\"\ndcor_lambda = 0.3\n"
      "[[phase]]\nstrategy = \"offline\"\nsteps = 5\n"
      "[[phase]]\nstrategy = \"online\"\nsteps = 5\n");
  CHECK(later.strategy.kind == gt::StrategyKind::offline);
  CHECK(later.strategy.quantize_a1 == "int4");
  CHECK(later.strategy.dcor_lambda == doctest::Approx(0.3));
  CHECK_THROWS_WITH_AS(parse("[strategy]\nquantize_a1 = \"int4\"\n"
                             "[[phase]]\nstrategy = \"offline\"\nsteps = 5\n"
                             "[[phase]]\nstrategy = \"split\"\nsteps = 5\n"),
                       Contains("test.toml:2: strategy.quantize_a1: only used when the plan uses "
                                "online (the plan runs offline, split)"),
                       gt::Error);
  // micro_batches: split or online only; gradfree, offline, offsite, centralized refuse > 1.
  CHECK(parse("[strategy]\nmicro_batches = 4\n").strategy.micro_batches == 4);
  CHECK(parse("[strategy]\nkind = \"split\"\nmicro_batches = 2\n").strategy.micro_batches == 2);
  CHECK(parse("[strategy]\nmicro_batches = 2\n"
              "[[phase]]\nstrategy = \"gradfree\"\nsteps = 5\n"
              "[[phase]]\nstrategy = \"online\"\nsteps = 5\n")
            .strategy.micro_batches == 2);
  for (const std::string kind : {"gradfree", "offline", "offsite", "centralized"}) {
    CAPTURE(kind);
    CHECK_THROWS_WITH_AS(parse("[strategy]\nkind = \"" + kind + "\"\nmicro_batches = 2\n"),
                         Contains(("test.toml:3: strategy.micro_batches: only used when the plan "
                                   "uses split or online (the plan runs " +
                                   kind + "); remove it or set it to 1")
                                      .c_str()),
                         gt::Error);
    CHECK(
        parse("[strategy]\nkind = \"" + kind + "\"\nmicro_batches = 1\n").strategy.micro_batches ==
        1);
  }
  CHECK_THROWS_WITH_AS(parse("[strategy]\nmicro_batches = 0\n"),
                       Contains("strategy.micro_batches: 0 is out of range (allowed: >= 1)"),
                       gt::Error);
  auto overridden = gt::default_run_config();
  gt::apply_overrides(overridden, {"strategy.micro_batches=3", "strategy.kind=split"});
  CHECK(overridden.strategy.micro_batches == 3);
  gt::apply_override(overridden, "strategy.kind=gradfree");  // made neutral
  CHECK(overridden.strategy.micro_batches == 1);
  // Without online in the plan, online's keys default to neutral.
  const auto none = parse("[[phase]]\nstrategy = \"gradfree\"\nsteps = 5\n");
  CHECK(none.strategy.quantize_a1 == "none");
  CHECK(none.strategy.dcor_lambda == 0.0);

  // The README's key table says when.
  const auto keys = gt::run_config_keys();
  const auto it = std::find_if(keys.begin(), keys.end(), [](const gt::ConfigKey& k) {
    return k.name == "strategy.noise_std";
  });
  REQUIRE(it != keys.end());
  CHECK(it->doc.find("; only used when the plan uses online or gradfree, otherwise 0.0") !=
        std::string::npos);
}

TEST_CASE("run config: overrides that change the plan make keys neutral") {
  auto c = gt::default_run_config();
  gt::apply_override(c, "strategy.noise_std=0.2");
  gt::apply_override(c, "strategy.kind=gradfree");  // noise_std still applies, quantize_* not
  CHECK(c.strategy.noise_std == doctest::Approx(0.2));
  CHECK(c.strategy.quantize_a1 == "none");
  CHECK(c.strategy.dcor_lambda == 0.0);
  gt::apply_override(c, "strategy.kind=offline");
  CHECK(c.strategy.noise_std == 0.0);
  CHECK_NOTHROW(gt::validate_run_config(c, "overridden"));

  // The fallback keeps noise_std until the budget goes.
  auto d = gt::default_run_config();
  gt::apply_overrides(
      d, {"strategy.kind=split", "scheduler.budget_bytes=100", "strategy.noise_std=0.3"});
  CHECK(d.strategy.noise_std == doctest::Approx(0.3));
  gt::apply_override(d, "scheduler.fallback=offsite");
  CHECK(d.strategy.noise_std == 0.0);
  gt::apply_override(d, "strategy.noise_std=0.3");
  gt::apply_override(d, "scheduler.fallback=gradfree");
  gt::apply_override(d, "scheduler.budget_bytes=0");
  CHECK(d.strategy.noise_std == 0.0);

  // An unrelated override does not hide a key that does not apply: validation names it.
  auto e = gt::default_run_config();
  gt::apply_override(e, "strategy.kind=split");
  CHECK_THROWS_WITH_AS(gt::apply_overrides(e, {"strategy.noise_std=0.1", "training.steps=5"}),
                       Contains("strategy.noise_std: only used when the plan uses online or "
                                "gradfree (the plan runs split)"),
                       gt::Error);

  // Every new key can be overridden.
  auto f = gt::default_run_config();
  gt::apply_overrides(
      f, {"offsite.keep_every=4", "offsite.distill_steps=10", "offsite.weights=int8",
          "offsite.upload=int4", "offline.keep_every=2", "offline.distill_steps=5",
          "offline.weights=float32", "offline.upload=full", "emulator.distill_data=pub.jsonl",
          "emulator.distill_lr=1e-3", "emulator.distill_batch=2", "emulator.chunk_bytes=2048",
          "emulator.work_dir=/tmp/w", "scheduler.clients=2", "scheduler.fedavg=true",
          "scheduler.budget_bytes=1000000", "scheduler.fallback=split"});
  CHECK(f.offsite.keep_every == 4);
  CHECK(f.offsite.distill_steps == 10);
  CHECK(f.offsite.weights == "int8");
  CHECK(f.offsite.upload == "int4");
  CHECK(f.offline.keep_every == 2);
  CHECK(f.offline.distill_steps == 5);
  CHECK(f.offline.weights == "float32");
  CHECK(f.offline.upload == "full");
  CHECK(f.emulator.distill_data == "pub.jsonl");  // overrides are taken as written
  CHECK(f.emulator.distill_lr == doctest::Approx(1e-3));
  CHECK(f.emulator.distill_batch == 2);
  CHECK(f.emulator.chunk_bytes == 2048);
  CHECK(f.emulator.work_dir == "/tmp/w");
  CHECK(f.scheduler.clients == 2);
  CHECK(f.scheduler.fedavg);
  CHECK(f.scheduler.budget_bytes == 1000000);
  CHECK(f.scheduler.fallback == gt::StrategyKind::split);
}

TEST_CASE("run config: budget_bytes accepts only integers") {
  auto c = gt::default_run_config();
  CHECK_THROWS_WITH_AS(gt::apply_override(c, "scheduler.budget_bytes=1.5"),
                       Contains("scheduler.budget_bytes: expected an integer, got a float (1.5)"),
                       gt::Error);
}

TEST_CASE("run config: phases") {
  const std::string text =
      "# a plan\n"                // 1
      "[scheduler]\n"             // 2
      "clients = 2\n"             // 3
      "fedavg = true\n"           // 4
      "\n"                        // 5
      "[[phase]]\n"               // 6
      "strategy = \"offline\"\n"  // 7
      "epochs = 1\n"              // 8
      "\n"                        // 9
      "[[phase]]\n"               // 10
      "strategy = \"online\"\n"   // 11
      "steps = 200\n"             // 12
      "\n"                        // 13
      "[training]\n"              // 14
      "batch = 4\n";              // 15
  const auto c = parse(text);
  REQUIRE(c.phases.size() == 2);
  CHECK(c.phases[0].strategy == gt::StrategyKind::offline);
  CHECK(c.phases[0].epochs == 1);
  CHECK(c.phases[0].steps == 0);
  CHECK(c.phases[1].strategy == gt::StrategyKind::online);
  CHECK(c.phases[1].steps == 200);
  CHECK(c.training.steps == 0);  // the phases say how long
  CHECK(c.training.epochs == 0);
  CHECK(c.training.batch == 4);
  CHECK(c.strategy.kind == gt::StrategyKind::offline);  // the plan starts with offline
  const auto plan = gt::run_plan(c);
  REQUIRE(plan.size() == 2);
  CHECK(plan[1].steps == 200);
  CHECK(gt::plan_uses(c, gt::StrategyKind::offline));
  CHECK(gt::plan_uses(c, gt::StrategyKind::online));
  CHECK(!gt::plan_uses(c, gt::StrategyKind::split));
  // A phase's strategy defaults to online; inline tables work too; kind may repeat phase[0].
  const auto inline_plan = parse(
      "phase = [{strategy = \"split\", steps = 3}, {epochs = 2}]\n"
      "[strategy]\nkind = \"split\"\n");
  REQUIRE(inline_plan.phases.size() == 2);
  CHECK(inline_plan.phases[1].strategy == gt::StrategyKind::online);
  CHECK(inline_plan.phases[1].epochs == 2);
  // One phase of centralized is fine: it runs alone.
  CHECK(parse("[[phase]]\nstrategy = \"centralized\"\nsteps = 3\n").strategy.kind ==
        gt::StrategyKind::centralized);
  // A file may set training.steps / epochs to 0 (as to_toml writes them).
  CHECK(parse("[training]\nsteps = 0\nepochs = 0\n[[phase]]\nsteps = 3\n").phases.size() == 1);
}

TEST_CASE("run config: phase errors name the phase and the line") {
  const std::string head = "[model]\nn_in = 1\n[[phase]]\nstrategy = \"offline\"\nsteps = 3\n";
  // head is lines 1-5; the second [[phase]] starts at line 6.
  const std::pair<std::string, const char*> cases[] = {
      {"[[phase]]\nstrategy = \"online\"\nstep = 3\n",
       "test.toml:8: phase[1].step: unknown key; did you mean \"steps\"? (keys of [[phase]]: "
       "strategy, steps, epochs)"},
      {"[[phase]]\nkind = \"online\"\nsteps = 3\n",
       "test.toml:7: phase[1].kind: unknown key; did you mean \"strategy\"?"},
      {"[[phase]]\nbatch = 3\n", "phase[1].batch: unknown key; did you mean \"training.batch\"?"},
      {"[[phase]]\nstrategy = \"gradient\"\nsteps = 3\n",
       "test.toml:7: phase[1].strategy: \"gradient\" is not allowed (allowed: centralized, split, "
       "online, gradfree, offsite, offline, privatize)"},
      {"[[phase]]\nstrategy = \"online\"\nsteps = \"3\"\n",
       "test.toml:8: phase[1].steps: expected an integer, got a string (\"3\")"},
      {"[[phase]]\nstrategy = \"online\"\nsteps = -3\n",
       "test.toml:8: phase[1].steps: -3 is out of range (allowed: >= 0)"},
      {"[[phase]]\nstrategy = \"online\"\nsteps = 3\nepochs = 1\n",
       "test.toml:9: phase[1].epochs: set either steps or epochs, not both (steps = 3, epochs = "
       "1)"},
      {"[[phase]]\nstrategy = \"online\"\n",
       "test.toml:6: phase[1].steps: one of steps and epochs must be > 0"},
      {"[[phase]]\nstrategy = \"centralized\"\nsteps = 3\n",
       "test.toml:7: phase[1].strategy: \"centralized\" cannot be part of a plan of 2 phases (it "
       "has no server session)"},
      {"[training]\nsteps = 10\n",
       "test.toml:7: training.steps: not used with [[phase]] tables: each phase says how long it "
       "runs"},
      {"[training]\nepochs = 1\n", "test.toml:7: training.epochs: not used with [[phase]]"},
      {"[strategy]\nkind = \"online\"\n",
       "test.toml:7: strategy.kind: \"online\", but the plan starts with phase[0].strategy = "
       "\"offline\"; with [[phase]] tables the phases name the strategies (remove "
       "strategy.kind)"},
  };
  for (const auto& [tail, message] : cases) {
    const auto& file_tail = tail;  // clang 14 cannot capture a structured binding
    CAPTURE(file_tail);
    CHECK_THROWS_WITH_AS(parse(head + tail), Contains(message), gt::Error);
  }
  CHECK_THROWS_WITH_AS(parse("[phase]\nsteps = 3\n"),
                       Contains("test.toml:1: phase: expected [[phase]] tables (an array of "
                                "tables), got a table"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("phase = []\n"),
                       Contains("test.toml:1: phase: expected at least one [[phase]] table"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("phase = [3]\n"),
                       Contains("phase[0]: expected a table, got an integer (3)"), gt::Error);
  CHECK_THROWS_WITH_AS(
      parse("[[phases]]\nsteps = 3\n"),
      Contains("test.toml:1: [[phases]]: unknown section; did you mean [[phase]]?"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[[phase]]\nstrategy = \"split\"\nsteps = 1\n[[phase]]\n"
                             "strategy = \"gradfree\"\nsteps = 1\n"
                             "[strategy]\nkind = \"split\"\ndcor_lambda = 0.5\n"),
                       Contains("test.toml:9: strategy.dcor_lambda: only used when the plan uses "
                                "online or privatize (the plan runs split, gradfree)"),
                       gt::Error);
  // A phase without strategy is online, so online's keys apply.
  CHECK(parse("[[phase]]\nstrategy = \"split\"\nsteps = 1\n[[phase]]\nsteps = 1\n"
              "[strategy]\ndcor_lambda = 0.5\n")
            .strategy.dcor_lambda == doctest::Approx(0.5));
}

TEST_CASE("run config: centralized runs alone") {
  CHECK_THROWS_WITH_AS(parse("[strategy]\nkind = \"centralized\"\n[scheduler]\nclients = 2\n"),
                       Contains("test.toml:4: scheduler.clients: 2 clients cannot run "
                                "\"centralized\" (it has no server session)"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[[phase]]\nstrategy = \"centralized\"\nsteps = 3\n"
                             "[scheduler]\nclients = 3\n"),
                       Contains("scheduler.clients: 3 clients cannot run \"centralized\""),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[strategy]\nkind = \"centralized\"\n[scheduler]\n"
                             "budget_bytes = 100\n"),
                       Contains("test.toml:4: scheduler.budget_bytes: a budget cannot switch away "
                                "from \"centralized\""),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[[phase]]\nstrategy = \"centralized\"\nsteps = 3\n"
                             "[[phase]]\nstrategy = \"split\"\nsteps = 3\n"),
                       Contains("test.toml:2: phase[0].strategy: \"centralized\" cannot be part "
                                "of a plan of 2 phases"),
                       gt::Error);
  // In code and with overrides alike.
  auto c = gt::default_run_config();
  gt::apply_override(c, "scheduler.clients=2");
  CHECK_THROWS_WITH_AS(gt::apply_overrides(c, {"strategy.kind=centralized"}),
                       Contains("with overrides: scheduler.clients: 2 clients cannot run"),
                       gt::Error);
  auto d = gt::default_run_config();
  d.phases = {{gt::StrategyKind::split, 3, 0}, {gt::StrategyKind::centralized, 3, 0}};
  d.strategy.kind = gt::StrategyKind::split;
  d.training.steps = 0;
  d.strategy.quantize_a1 = "none";
  d.strategy.dcor_lambda = 0;
  CHECK_THROWS_WITH_AS(gt::validate_run_config(d, "code"),
                       Contains("code: phase[1].strategy: \"centralized\" cannot be part of a "
                                "plan of 2 phases"),
                       gt::Error);
}

TEST_CASE("run config: phases built in code are validated") {
  auto c = gt::default_run_config();
  c.phases = {{gt::StrategyKind::online, 10, 0}};
  CHECK_THROWS_WITH_AS(gt::validate_run_config(c, "code"),
                       Contains("code: training.steps: not used with [[phase]] tables"), gt::Error);
  c.training.steps = 0;
  CHECK_NOTHROW(gt::validate_run_config(c, "code"));
  c.phases[0].steps = -1;
  CHECK_THROWS_WITH_AS(gt::validate_run_config(c, "code"),
                       Contains("code: phase[0].steps: -1 is out of range"), gt::Error);
  c.phases[0].steps = 0;
  CHECK_THROWS_WITH_AS(gt::validate_run_config(c, "code"),
                       Contains("code: phase[0].steps: one of steps and epochs must be > 0"),
                       gt::Error);
  c.phases[0] = {gt::StrategyKind::split, 5, 0};
  c.strategy.quantize_a1 = "none";
  c.strategy.dcor_lambda = 0;
  CHECK_THROWS_WITH_AS(gt::validate_run_config(c, "code"),
                       Contains("strategy.kind: \"online\", but the plan starts with "
                                "phase[0].strategy = \"split\""),
                       gt::Error);
  c.strategy.kind = gt::StrategyKind::split;
  CHECK_NOTHROW(gt::validate_run_config(c, "code"));
}

TEST_CASE("run config: phase overrides") {
  auto c = parse(
      "[[phase]]\nstrategy = \"offline\"\nsteps = 30\n"
      "[[phase]]\nstrategy = \"online\"\nsteps = 30\n");
  gt::apply_override(c, "phase.1.steps=100");
  CHECK(c.phases[1].steps == 100);
  gt::apply_override(c, "phase.0.epochs=2");  // epochs replaces steps and the other way round
  CHECK(c.phases[0].epochs == 2);
  CHECK(c.phases[0].steps == 0);
  gt::apply_override(c, " phase.0.steps = 7 ");
  CHECK(c.phases[0].steps == 7);
  CHECK(c.phases[0].epochs == 0);
  gt::apply_override(c, "phase.0.strategy=offsite");  // the first phase starts the plan
  CHECK(c.phases[0].strategy == gt::StrategyKind::offsite);
  CHECK(c.strategy.kind == gt::StrategyKind::offsite);
  CHECK(c.strategy.quantize_a1 == "int8");
  // Online leaves the plan: its knobs become neutral.
  gt::apply_override(c, "phase.1.strategy=split");
  CHECK(c.phases[1].strategy == gt::StrategyKind::split);
  CHECK(c.strategy.kind == gt::StrategyKind::offsite);
  CHECK(c.strategy.quantize_a1 == "none");
  CHECK(c.strategy.dcor_lambda == 0.0);
  CHECK_NOTHROW(gt::validate_run_config(c, "overridden"));
  CHECK(parse(gt::to_toml(c)) == c);

  const auto before = c;
  const std::pair<const char*, const char*> errors[] = {
      {"phase.2.steps=5",
       "override \"phase.2.steps=5\": phase.2.steps: there are 2 phases (phase.0 to phase.1)"},
      {"phase.0.step=5", "phase.0.step: unknown key; did you mean \"steps\"?"},
      {"phase.x.steps=5", "phase.x.steps: expected phase.<index>.<key>, the index counting from 0"},
      {"phase.steps=5", "expected phase.<index>.<key>"},
      {"phase.-1.steps=5", "expected phase.<index>.<key>"},
      {"phase.0.steps=-5", "phase.0.steps: -5 is out of range (allowed: >= 0)"},
      {"phase.0.steps=abc", "phase.0.steps: expected an integer"},
      {"phase.0.strategy=gradient", "phase.0.strategy: \"gradient\" is not allowed"},
      {"strategy.kind=split",
       "strategy.kind: the [[phase]] tables name the strategies of this plan; change a phase "
       "instead, e.g. phase.0.strategy=split"},
      {"training.steps=20",
       "training.steps: the [[phase]] tables say how long each phase runs; change a phase "
       "instead, e.g. phase.0.steps=20"},
      {"training.epochs=1", "e.g. phase.0.epochs=1"},
  };
  for (const auto& [assignment, message] : errors) {
    const auto& override_text = assignment;  // clang 14 cannot capture a structured binding
    CAPTURE(override_text);
    CHECK_THROWS_WITH_AS(gt::apply_override(c, assignment), Contains(message), gt::Error);
  }
  CHECK(c == before);  // failed overrides change nothing

  auto one = parse("[[phase]]\nstrategy = \"split\"\nsteps = 3\n");
  CHECK_THROWS_WITH_AS(gt::apply_override(one, "phase.1.steps=5"),
                       Contains("phase.1.steps: there is 1 phase (phase.0)"), gt::Error);
  // Phases are checked once all overrides are in.
  CHECK_THROWS_WITH_AS(gt::apply_overrides(c, {"phase.1.strategy=centralized"}),
                       Contains("phase[1].strategy: \"centralized\" cannot be part of a plan"),
                       gt::Error);

  auto d = gt::default_run_config();
  CHECK_THROWS_WITH_AS(gt::apply_override(d, "phase.0.steps=5"),
                       Contains("phase.0.steps: the configuration has no [[phase]] tables"),
                       gt::Error);
  gt::apply_override(d, "strategy.kind=split");  // without phases strategy.kind works as before
  CHECK(d.strategy.kind == gt::StrategyKind::split);
}

TEST_CASE("run config: a local backward needs a privatize phase and runs unpipelined") {
  const std::string base = "[privacy]\nprivatize_steps = 10\nadversary_weight = 1.0\n";
  CHECK(parse(base + "[strategy]\nbackward = \"local\"\n").strategy.backward == "local");
  CHECK_THROWS_WITH_AS(parse("[strategy]\nbackward = \"local\"\n"),
                       Contains("strategy.backward: only used when the plan uses online and "
                                "privatize"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse(base + "[strategy]\nbackward = \"local\"\nmicro_batches = 2\n"),
                       Contains("strategy.micro_batches: 2 micro-batches with strategy.backward"),
                       gt::Error);
}

TEST_CASE("run config: coarsened inputs only where the model owner never runs the adapters") {
  CHECK(gt::default_run_config().privacy.token_clusters == 0);
  CHECK(parse("[privacy]\ntoken_clusters = 512\n").privacy.token_clusters == 512);
  CHECK_THROWS_WITH_AS(parse("[privacy]\ntoken_clusters = -1\n"),
                       Contains("privacy.token_clusters"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[strategy]\nkind = \"split\"\n[privacy]\ntoken_clusters = 512\n"),
                       Contains("privacy.token_clusters: only used when the plan uses"), gt::Error);
  CHECK_THROWS_WITH_AS(
      parse("[privacy]\ntoken_clusters = 512\n[[phase]]\nstrategy = "
            "\"offline\"\nsteps = 4\n[[phase]]\nstrategy = \"online\"\nsteps = 4\n"),
      Contains("privacy.token_clusters: 512 clusters with an offsite or offline "
               "phase"),
      gt::Error);
}

TEST_CASE("run config: a finished run's file still matches after a key is added at its default") {
  auto c = gt::default_run_config();
  const auto text = gt::to_toml(c);
  // An older file without the newest key describes the same run; another value does not.
  const auto line = std::string("token_clusters = 0\n");
  REQUIRE(text.find(line) != std::string::npos);
  auto older = text;
  older.erase(older.find(line), line.size());
  CHECK(gt::same_run_config(older, text));
  gt::apply_overrides(c, {"training.steps=7"});
  CHECK_FALSE(gt::same_run_config(older, gt::to_toml(c)));
  CHECK_FALSE(gt::same_run_config("[bogus]\n", text));
}

TEST_CASE("run config: the privatize phase may leave the output adapter as it is") {
  CHECK(gt::default_run_config().privacy.privatize_output);
  CHECK_FALSE(parse("[privacy]\nprivatize_steps = 10\nadversary_weight = 1.0\nprivatize_output = "
                    "false\n")
                  .privacy.privatize_output);
  CHECK_THROWS_WITH_AS(parse("[privacy]\nprivatize_output = false\n"),
                       Contains("privacy.privatize_output: only used when the plan uses privatize"),
                       gt::Error);
}

TEST_CASE("run config: the privacy secret comes from the OS unless pinned to the seed") {
  CHECK(gt::default_run_config().privacy.secret == "os");
  CHECK(parse("[privacy]\nsecret = \"seed\"\n").privacy.secret == "seed");
  CHECK_THROWS_WITH_AS(parse("[privacy]\nsecret = \"42\"\n"),
                       Contains("privacy.secret: \"42\" is not allowed (allowed: os, seed)"),
                       gt::Error);
}

TEST_CASE("run config: a privatize phase before the plan, neutral where it protects nothing") {
  auto c = parse("[privacy]\nprivatize_steps = 30\nadversary_weight = 1.0\n");
  const auto plan = gt::run_plan(c);
  REQUIRE(plan.size() == 2);
  CHECK(plan[0].strategy == gt::StrategyKind::privatize);
  CHECK(plan[0].steps == 30);
  CHECK(plan[1].strategy == gt::StrategyKind::online);
  CHECK(gt::plan_uses(c, gt::StrategyKind::privatize));
  CHECK(parse(gt::to_toml(c)) == c);
  // Switching the design to split leaves nothing to protect: the phase and every knob that
  // trains a1 go neutral together, whatever order the fields are checked in.
  gt::apply_overrides(c, {"strategy.kind=split"});
  CHECK(c.privacy.privatize_steps == 0);
  CHECK(c.privacy.adversary_weight == 0.0);
  CHECK(c.strategy.dcor_lambda == 0.0);
  CHECK(gt::run_plan(c).size() == 1);
  CHECK_THROWS_WITH_AS(parse("[strategy]\nkind = \"split\"\n[privacy]\nprivatize_steps = 5\n"),
                       Contains("privacy.privatize_steps: only used when the plan uses online or "
                                "gradfree"),
                       gt::Error);
}
