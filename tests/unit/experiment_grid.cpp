// gtune experiment's grid file and its report: parsing with clear errors, the cells it expands
// to, and rows, deltas, CSV, Markdown and plot data computed from results.json documents.
#include <doctest/doctest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.hpp"
#include "config/run_config.hpp"
#include "data/instructions.hpp"
#include "data/mc_instructions.hpp"
#include "experiment/experiment_config.hpp"
#include "experiment/experiment_report.hpp"
#include "experiment/frontier.hpp"

using doctest::Contains;

namespace {

const char* kGrid = R"(
[experiment]
base = "runs/base.toml"
set = ["attacker.enabled=true"]
tasks = ["all", "word_to_hypernym"]
seeds = [0, 7]
baseline = "central"
undefended = "split"
quick = ["training.steps=2"]

[[design]]
name = "central"
set = ["strategy.kind=centralized"]

[[design]]
name = "split"
set = ["strategy.kind=split"]
)";

std::string source_path(const std::string& rel) {
  return std::string(GT_FIXTURES_DIR) + "/../../" + rel;
}

gt::ExperimentConfig parse(const std::string& text) {
  return gt::parse_experiment_config(text, "grid.toml", "/cfg");
}

}  // namespace

TEST_CASE("experiment grid: parses and expands designs x tasks x seeds") {
  const auto cfg = parse(kGrid);
  CHECK(cfg.base == "/cfg/runs/base.toml");  // relative to the file
  CHECK(cfg.designs.size() == 2);
  CHECK(cfg.baseline == "central");
  const auto cells = gt::experiment_cells(cfg, false);
  REQUIRE(cells.size() == 2 * 2 * 2);
  CHECK(cells[0].id == "central.all.s0");
  CHECK(cells[1].id == "central.all.s7");
  CHECK(cells[2].id == "central.word_to_hypernym.s0");
  CHECK(cells[7].id == "split.word_to_hypernym.s7");
  // Common set, design set, then the task and seed; quick only with --quick.
  const std::vector<std::string> want{"attacker.enabled=true",
                                      "strategy.kind=split",
                                      "data.kind=wordnet_tasks",
                                      "data.tasks=word_to_hypernym",
                                      "evaluation.tasks=word_to_hypernym",
                                      "training.seed=7"};
  CHECK(cells[7].overrides == want);
  CHECK(gt::experiment_cells(cfg, true)[7].overrides.back() == "training.steps=2");
  CHECK(gt::cell_tasks("all").size() == 4);
}

TEST_CASE("experiment grid: bad files are refused with file, line and key") {
  const std::string design = "[[design]]\nname = \"a\"\n";
  CHECK_THROWS_WITH_AS(parse("[experiment]\nbase = \"b.toml\"\nbogus = 1\n" + design),
                       Contains("grid.toml:3: experiment.bogus: unknown key"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[experiment]\nbase = \"b.toml\"\ntasks = [\"nope\"]\n" + design),
                       Contains("experiment.tasks: unknown task \"nope\""), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[experiment]\nbase = \"b.toml\"\nseeds = []\n" + design),
                       Contains("needs at least one seed"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[experiment]\nbase = \"b.toml\"\nseeds = [-1]\n" + design),
                       Contains("integers >= 0"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[experiment]\nbase = \"b.toml\"\n"), Contains("no [[design]]"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse(design), Contains("experiment.base"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[experiment]\nbase = \"b.toml\"\n" + design + design),
                       Contains("design \"a\" is defined twice"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[experiment]\nbase = \"b.toml\"\n[[design]]\nname = \"a b\"\n"),
                       Contains("design[0].name"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[experiment]\nbase = \"b.toml\"\nbaseline = \"x\"\n" + design),
                       Contains("experiment.baseline: \"x\" is not a [[design]] name"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[experiment]\nbase = \"b.toml\"\nset = \"x=1\"\n" + design),
                       Contains("experiment.set: expected an array of strings"), gt::Error);
  CHECK_THROWS_WITH_AS(parse("[experiment\n"), Contains("grid.toml:1: TOML syntax error"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse("[other]\n"), Contains("unknown table"), gt::Error);
  CHECK_THROWS_WITH_AS(gt::load_experiment_config("/nonexistent/grid.toml"),
                       Contains("/nonexistent/grid.toml"), gt::Error);
}

TEST_CASE("experiment grid: a sweep expands into one design per value, in order") {
  const auto cfg = parse(R"(
[experiment]
base = "b.toml"
[[design]]
name = "split"
[[sweep]]
name = "adv"
key = "privacy.adversary_weight"
values = [0, 0.5, "2"]
set = ["strategy.noise_std=0"]
quick = ["training.steps=1"]
)");
  REQUIRE(cfg.designs.size() == 4);
  CHECK(cfg.designs[0].name == "split");
  CHECK(cfg.designs[0].sweep.empty());
  CHECK(cfg.designs[1].name == "adv-0");
  CHECK(cfg.designs[2].name == "adv-0.5");
  CHECK(cfg.designs[3].name == "adv-2");
  CHECK(cfg.designs[2].sweep == "adv");
  CHECK(cfg.designs[2].sweep_value == "0.5");
  // The sweep's own overrides, then its knob.
  CHECK(cfg.designs[2].sets ==
        std::vector<std::string>{"strategy.noise_std=0", "privacy.adversary_weight=0.5"});
  CHECK(cfg.designs[3].quick == std::vector<std::string>{"training.steps=1"});
  const auto sweeps = gt::frontier_sweeps(cfg);
  REQUIRE(sweeps.size() == 1);
  CHECK(sweeps[0].designs == std::vector<std::string>{"adv-0", "adv-0.5", "adv-2"});
  CHECK(sweeps[0].values == std::vector<std::string>{"0", "0.5", "2"});

  const std::string head = "[experiment]\nbase = \"b.toml\"\n[[sweep]]\nname = \"s\"\n";
  CHECK_THROWS_WITH_AS(parse(head + "values = [1]\n"), Contains("needs a name, a key and values"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(parse(head + "key = \"noise\"\nvalues = [1]\n"),
                       Contains("sweep[0].key: \"noise\": expected section.key"), gt::Error);
  CHECK_THROWS_WITH_AS(parse(head + "key = \"a.b\"\nvalues = []\n"),
                       Contains("sweep[0].values: expected a non-empty array"), gt::Error);
  CHECK_THROWS_WITH_AS(parse(head + "key = \"a.b\"\nvalues = [\"x y\"]\n"),
                       Contains("makes a bad design name"), gt::Error);
  CHECK_THROWS_WITH_AS(parse(head + "key = \"a.b\"\nvalues = [[1]]\n"),
                       Contains("expected strings, numbers or booleans"), gt::Error);
  CHECK_THROWS_WITH_AS(parse(head + "key = \"a.b\"\nvalues = [1, 1]\n"),
                       Contains("design \"s-1\" is defined twice"), gt::Error);
  CHECK_THROWS_WITH_AS(parse(head + "key = \"a.b\"\nvalues = [1]\nbogus = 2\n"),
                       Contains("sweep[0].bogus: unknown key"), gt::Error);
}

TEST_CASE(
    "experiment grid: the example grids compare, wire, frontier and frontier-privatize are valid") {
  for (const char* name : {"compare", "wire", "frontier", "frontier-privatize"}) {
    CAPTURE(name);
    const auto cfg =
        gt::load_experiment_config(source_path("config/examples/" + std::string(name) + ".toml"));
    CHECK(cfg.designs.size() >= 3);
    CHECK_FALSE(cfg.quick.empty());
    // Every run of the grid is a valid run configuration.
    for (const auto& cell : gt::experiment_cells(cfg, true)) {
      CAPTURE(cell.id);
      auto run = gt::load_run_config(cfg.base);
      CHECK_NOTHROW(gt::apply_overrides(run, cell.overrides));
    }
  }
}

namespace {

// A results.json as gtune simulate writes it, with the fields the report reads.
nlohmann::json results(const std::string& strategy, double acc, double rouge_a1, double rouge_g2,
                       double worst = 0.95) {
  nlohmann::json j;
  j["phases"] = {{{"strategies", {strategy}}}};
  j["totals"] = {{"steps", 10},
                 {"clients", 1},
                 {"wall_seconds", 2.5},
                 {"eval_loss_after", 4.0},
                 {"step_bytes_up", 1000},
                 {"step_bytes_down", 3000},
                 {"all_bytes",
                  {{{"kind", "activations_up"}, {"bytes", 1000}},
                   {{"kind", "activations_down"}, {"bytes", 3000}},
                   {{"kind", "activations_up.eval"}, {"bytes", 999}}}}};
  j["client_memory"] = {{"total_bytes", 2000000}};
  // Per-item outcomes with the stated accuracy: the first round(acc * 50) of 50 items right.
  std::string correct(50, '0');
  for (int i = 0; i < int(std::lround(acc * 50)); ++i) correct[size_t(i)] = '1';
  nlohmann::json tuned = {{"acc", acc}, {"acc_norm", acc}, {"correct", correct}};
  nlohmann::json task = {{"task", "word_to_hypernym"},
                         {"zero_shot", {{"acc", 0.5}}},
                         {"tuned", nlohmann::json::array({tuned})}};
  j["tasks"] = {{"tasks", nlohmann::json::array({task})}};
  if (rouge_a1 >= 0) {
    j["attacks"]["scores"] = {
        {{"attack", "learned_inversion_a1"}, {"rouge_l", rouge_a1}},
        {{"attack", "gradient_matching"}, {"rouge_l", rouge_g2}},
        // The adaptive attacker has its own column; it never counts as the best attack.
        {{"attack", "adaptive_inversion_a1"}, {"rouge_l", 0.99}}};
    j["attacks"]["worst_step"][strategy] = {
        {"step", 10}, {"attack", "gradient_matching"}, {"rouge_l", worst}};
    j["attacks"]["worst_step_adaptive"][strategy] = {
        {"step", 0}, {"attack", "adaptive_inversion_a1"}, {"rouge_l", 0.99}};
  }
  return j;
}

}  // namespace

TEST_CASE("experiment report: rows, deltas, CSV, Markdown and plot points") {
  const auto cfg = parse(kGrid);
  const auto cells = gt::experiment_cells(cfg, false);
  gt::CellMeasurement m{true, "", 30.0, 512.0};
  auto rows = gt::experiment_rows(cells[0], results("centralized", 0.70, -1, -1), m);
  auto split = gt::experiment_rows(cells[4], results("split", 0.62, 0.8, 0.9), m);
  REQUIRE(rows.size() == 1);
  REQUIRE(split.size() == 1);
  CHECK(rows[0].best_rouge_l == 1.0);  // centralized hands over the raw text
  CHECK(split[0].best_attack == "gradient_matching");
  CHECK(split[0].best_rouge_l == doctest::Approx(0.9));
  CHECK(split[0].a1_rouge_l == doctest::Approx(0.8));  // only attacks that read a1
  CHECK(split[0].learned_a1_rouge_l == doctest::Approx(0.8));
  CHECK(split[0].worst_step == 10);
  CHECK(split[0].worst_step_rouge_l == doctest::Approx(0.95));
  CHECK(split[0].adaptive_rouge_l == doctest::Approx(0.99));
  CHECK(split[0].correct.size() == 50);
  CHECK(split[0].bytes_up_per_step == doctest::Approx(100));
  CHECK(split[0].bytes_down_per_step == doctest::Approx(300));
  CHECK(split[0].bytes_total == 4000);  // evaluation traffic left out
  CHECK(split[0].client_mb == doctest::Approx(2.0));
  // cells[0] is seed 0 of "all"; make the split row comparable.
  split[0].seed = rows[0].seed;
  split[0].train_task = rows[0].train_task;
  rows.push_back(split[0]);
  auto failed = gt::failed_rows(cells[5], {false, "exit status 1", 3.0, 0});
  rows.insert(rows.end(), failed.begin(), failed.end());
  gt::fill_deltas(rows, "central");
  CHECK(rows[0].delta_points == doctest::Approx(0.0));
  CHECK(rows[1].delta_points == doctest::Approx(-8.0));
  CHECK(std::isnan(rows[2].delta_points));

  const auto csv = gt::results_csv(rows);
  CHECK(csv.find("design,train_task,task,seed,strategy,accuracy") == 0);
  CHECK(csv.find("split,all,word_to_hypernym,0,split,0.6200") != std::string::npos);
  CHECK(csv.find("\"failed: exit status 1\"") == std::string::npos);  // no comma: unquoted
  CHECK(csv.find("failed: exit status 1") != std::string::npos);

  gt::ReportContext ctx{"t",     "gtune experiment",   "cpu", "today", "central",
                        "split", {"central", "split"}, {}};
  const auto md = gt::report_markdown(rows, ctx);
  INFO(md);
  // Accuracy with its bootstrap interval (one seed: the items resampled), the worst step and
  // the adaptive attacker in their own columns; a design has no interval against itself.
  CHECK(md.find("| split | split | 0.620 [0.") != std::string::npos);
  CHECK(md.find("| – | -8.0 | gradient_matching | 0.900 | 0.950 | 0.990 | 0.800 |") !=
        std::string::npos);
  CHECK(md.find("Attacker strength: the learned inversion of a1 recovers ROUGE-L F1 0.800") !=
        std::string::npos);
  CHECK(md.find("**not met**") != std::string::npos);
  CHECK(md.find("## Failed runs") != std::string::npos);
  CHECK(md.find("## Generated definitions") == std::string::npos);  // no run generated
  const auto points = gt::plot_points(rows, ctx.designs);
  CHECK(points.find("\"split\" 0.6200 0.9500 4000") != std::string::npos);  // the worst step
  CHECK(gt::plot_script("points.dat", ".").find("accuracy_vs_bytes.png") != std::string::npos);
}

TEST_CASE("task instructions: contexts and right answers, tasks interleaved") {
  gt::McTask a{"a", {}, {}, {}}, b{"b", {}, {}, {}};
  a.train = {{"a1?", {" x", " y"}, 1}, {"a2?", {" x", " y"}, 0}, {"a3?", {" x", " y"}, 0}};
  b.train = {{"b1?", {" p", " q"}, 0}};
  a.valid = {{"av?", {" x", " y"}, 0}};
  const auto split = gt::mc_instructions({a, b}, 0, 0);
  REQUIRE(split.train.size() == 4);
  CHECK((split.train[0] == gt::InstructionExample{"a1?", " y"}));
  CHECK((split.train[1] == gt::InstructionExample{"b1?", " p"}));
  CHECK((split.train[2] == gt::InstructionExample{"a2?", " x"}));
  CHECK(split.valid.size() == 1);
  CHECK(gt::mc_instructions({a, b}, 2, 0).train.size() == 2);
}

TEST_CASE("experiment report: the frontier names the most private point within 1.5 points") {
  const auto cfg = parse(R"(
[experiment]
base = "b.toml"
undefended = "split"
[[design]]
name = "split"
[[sweep]]
name = "adv"
key = "privacy.adversary_weight"
values = [0, 1, 2]
)");
  gt::CellMeasurement m{true, "", 30.0, 512.0};
  std::vector<gt::ExperimentRow> rows;
  const auto add = [&](const std::string& design, double acc, double worst) {
    gt::ExperimentCell cell{design + ".all.s0", design, "all", 0, {}};
    for (auto& r : gt::experiment_rows(cell, results("online", acc, 0.5, 0.5, worst), m))
      rows.push_back(r);
  };
  add("split", 0.60, 0.95);
  add("adv-0", 0.62, 0.90);  // more accurate, leaks
  add("adv-1", 0.58, 0.40);  // -2 points: outside 1.5
  add("adv-2", 0.60, 0.70);  // the trade: within 1.5 points, the least leak among those
  gt::ReportContext ctx{
      "t", "cmd", "cpu", "today", "", "split", {"split", "adv-0", "adv-1", "adv-2"}, {}};
  ctx.sweeps = gt::frontier_sweeps(cfg);
  CHECK(gt::best_trade(rows, ctx) == "adv-2");
  CHECK(gt::best_trade(rows, ctx, 3.0) == "adv-1");  // a looser budget buys more privacy
  CHECK(gt::best_trade(rows, ctx, -5.0).empty());    // nothing gains 5 points
  const auto md = gt::frontier_markdown(rows, ctx);
  INFO(md);
  CHECK(md.find("| adv | `privacy.adversary_weight = 1` | 0.580 [") != std::string::npos);
  CHECK(md.find("| 0.400 | gradient_matching |") != std::string::npos);
  CHECK(md.find("Best trade: **adv-2**") != std::string::npos);
  CHECK(gt::report_markdown(rows, ctx).find("![frontier](frontier.png)") != std::string::npos);
  // One gnuplot block per sweep, then the other designs; the script draws each block.
  const auto points = gt::frontier_points(rows, ctx);
  CHECK(points.find("0.9000 0.6200 \"0\"\n0.4000 0.5800 \"1\"\n0.7000 0.6000 \"2\"\n\n\n") !=
        std::string::npos);
  CHECK(points.find("# other designs\n0.9500 0.6000 \"split\"\n") != std::string::npos);
  const auto script = gt::frontier_plot_script("frontier.dat", ".", ctx);
  CHECK(script.find("frontier.png") != std::string::npos);
  CHECK(script.find("index 1 using 1:2 with points") != std::string::npos);
  ctx.sweeps.clear();
  CHECK(gt::frontier_markdown(rows, ctx).empty());
  CHECK(gt::frontier_plot_script("frontier.dat", ".", ctx).empty());
}

TEST_CASE("experiment report: generated definitions' ROUGE-L per design") {
  const auto cfg = parse(kGrid);
  const auto cells = gt::experiment_cells(cfg, false);
  gt::CellMeasurement m{true, "", 30.0, 512.0};
  auto j = results("split", 0.62, 0.8, 0.9);
  j["generation"] = {{"examples", 64},
                     {"pretrained", {{"rouge_l", 0.07}}},
                     {"tuned", nlohmann::json::array({{{"client", "c0"}, {"rouge_l", 0.25}}})}};
  auto rows = gt::experiment_rows(cells[4], j, m);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].generation_rouge_l == doctest::Approx(0.25));
  CHECK(rows[0].pretrained_generation_rouge_l == doctest::Approx(0.07));
  CHECK(gt::results_csv(rows).find(",0.2500,0.0700,ok") != std::string::npos);
  gt::ReportContext ctx{"t", "gtune experiment", "cpu", "today", "", "", {rows[0].design}, {}};
  const auto md = gt::report_markdown(rows, ctx);
  INFO(md);
  CHECK(md.find("## Generated definitions") != std::string::npos);
  CHECK(md.find("| " + rows[0].design + " | 0.070 | 0.250 | +0.180 |") != std::string::npos);
}
