// The TOML run configuration: defaults, the example files, round trips through to_toml,
// command-line overrides, and one check per class of error that it names the key at fault.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "common/error.hpp"
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
  CHECK_NOTHROW(gt::validate_run_config(c, "defaults"));
  // An empty file is the defaults.
  CHECK(parse("") == c);
  CHECK(std::string(gt::to_string(gt::parse_strategy_kind("split"))) == "split");
  CHECK_THROWS_WITH_AS(gt::parse_strategy_kind("gradient"), Contains("allowed: centralized"),
                       gt::Error);
}

TEST_CASE("run config: example files load and their model path exists") {
  const std::pair<const char*, gt::StrategyKind> examples[] = {
      {"online", gt::StrategyKind::online},
      {"split", gt::StrategyKind::split},
      {"centralized", gt::StrategyKind::centralized}};
  for (const auto& [name, kind] : examples) {
    CAPTURE(name);
    const std::string path = source_path(std::string("config/examples/") + name + ".toml");
    const auto c = gt::load_run_config(path);
    CHECK(c.source == path);
    CHECK(c.strategy.kind == kind);
    CHECK(fs::is_directory(c.model.path));
    CHECK(fs::exists(fs::path(c.model.path) / "config.json"));
    CHECK(c.training.steps > 0);
    CHECK(c.training.steps * c.training.batch <= c.data.train_examples);
    if (kind != gt::StrategyKind::online) {
      CHECK(c.strategy.quantize_a1 == "none");
      CHECK(c.strategy.dcor_lambda == 0.0);
    }
  }
  CHECK(gt::load_run_config(source_path("config/examples/online.toml")).strategy.quantize_a1 ==
        "int8");
}

TEST_CASE("run config: to_toml round trip") {
  auto c = gt::default_run_config();
  c.model.path = "/models/with \"quotes\" and \\ backslash\tand tab";
  c.model.train = "lora";
  c.model.lora_alpha = 12.5;
  c.model.lora_targets = {"q_proj", "k_proj", "fc2"};
  c.strategy.quantize_g1 = "int4";
  c.strategy.dcor_lambda = 0.123456789012345;
  c.optimizer = {"sgd", 3e-4, 0.01, 0.9, 1.0};
  c.training.steps = 0;
  c.training.epochs = 2;
  c.training.seed = 1234567890123ULL;
  c.data.kind = "jsonl";
  c.data.path = "data/train.jsonl";
  c.data.valid_fraction = 1.0 / 3.0;
  c.run = {"my-run.1", "runs/x", 2};
  for (const auto& cfg : {gt::default_run_config(), c}) {
    const std::string text = gt::to_toml(cfg);
    CAPTURE(text);
    const auto back = gt::parse_run_config(text, "round-trip.toml", "");
    CHECK(back == cfg);
    const std::string again = gt::to_toml(back);  // the same text but the source line
    CHECK(again.substr(again.find('\n')) == text.substr(text.find('\n')));
  }
  const auto online = gt::load_run_config(source_path("config/examples/online.toml"));
  CHECK(parse(gt::to_toml(online)) == online);
  CHECK(!(online == gt::default_run_config()));
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
  CHECK_THROWS_WITH_AS(gt::apply_override(c, "strategy.kind=gradfree"),
                       Contains("strategy.kind: \"gradfree\" is not allowed (allowed: "
                                "centralized, split, online)"),
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
  };
  for (const auto& [text, message] : cases) {
    CAPTURE(text);
    CHECK_THROWS_WITH_AS(parse(text), Contains(message), gt::Error);
  }
}

TEST_CASE("run config: enum strings") {
  CHECK_THROWS_WITH_AS(parse("[strategy]\nquantize_a1 = \"int3\"\n"),
                       Contains("test.toml:2: strategy.quantize_a1: \"int3\" is not allowed "
                                "(allowed: none, int8, int4)"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[model]\ndtype = \"float16\"\n"),
                       Contains("model.dtype: \"float16\" is not allowed (allowed: float32, "
                                "bfloat16)"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[model]\ntrain = \"frozen\"\n"), Contains("model.train"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[optimizer]\nname = \"adam\"\n"), Contains("optimizer.name"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[data]\nkind = \"csv\"\n"), Contains("data.kind"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[strategy]\nkind = \"offsite\"\n"), Contains("strategy.kind"),
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
                       Contains("test.toml:3: strategy.quantize_a1: only used when strategy.kind "
                                "= \"online\" (it is \"split\")"),
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
                                     "[run]\nout = \"out\"\n");
  const auto c = gt::load_run_config(path);
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
  CHECK(keys.size() == 35);
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
