// Unit tests for multiple-choice tasks: the WordNet tasks (determinism, choices, splits,
// templates), lm-eval-style scoring with scripted models, the JSONL reader and its errors, and a
// zero-shot run of the embedded model.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>

#include "common/error.hpp"
#include "data/instructions.hpp"
#include "data/multiple_choice.hpp"
#include "data/wordnet.hpp"
#include "data/wordnet_tasks.hpp"
#include "models/decoder.hpp"
#include "models/segments.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/temp_dir.hpp"
#include "tests/test_paths.hpp"

using gt::McItem;
using gt::McTask;

namespace {

const gt::Tokenizer& model_tokenizer() {
  static const gt::Tokenizer tok = gt::Tokenizer::from_dir(gt::test::model_dir());
  return tok;
}

// Every split of every task, built once for the whole test binary.
const std::vector<McTask>& all_tasks() {
  static const std::vector<McTask> tasks = gt::wordnet_mc_tasks(gt::kDefaultWordnetDir, 0);
  return tasks;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool same(const McItem& a, const McItem& b) {
  return a.context == b.context && a.choices == b.choices && a.answer == b.answer && a.id == b.id;
}
bool same(const std::vector<McItem>& a, const std::vector<McItem>& b, size_t n) {
  if (a.size() < n || b.size() < n) return false;
  for (size_t i = 0; i < n; ++i)
    if (!same(a[i], b[i])) return false;
  return true;
}

std::vector<const McItem*> find_items(const McTask& t, const std::string& context) {
  std::vector<const McItem*> out;
  for (const auto* split : {&t.train, &t.valid, &t.test})
    for (const auto& it : *split)
      if (it.context == context) out.push_back(&it);
  return out;
}

// Logits that are 0 everywhere except `boost` on token `favourite` (if >= 0) at every position.
gt::LogitsFn scripted_model(int64_t vocab, int64_t favourite = -1, double boost = 20) {
  return [=](const torch::Tensor& ids, const torch::Tensor&) {
    auto logits = torch::zeros({ids.size(0), ids.size(1), vocab});
    if (favourite >= 0) logits.select(2, favourite).fill_(boost);
    return logits;
  };
}

int64_t single_token(const std::string& text) {
  const auto ids = model_tokenizer().encode(text);
  REQUIRE(ids.size() == 1);
  return ids[0];
}

}  // namespace

TEST_CASE("wordnet tasks: names, and an unknown name lists them") {
  const auto& names = gt::wordnet_mc_task_names();
  CHECK(names == std::vector<std::string>{"definition_to_word", "word_to_hypernym",
                                          "adjective_antonym", "example_cloze"});
  CHECK_THROWS_WITH_AS(gt::wordnet_mc_task("synonyms", gt::kDefaultWordnetDir, 10),
                       doctest::Contains("unknown WordNet task \"synonyms\" (known: "
                                         "definition_to_word, word_to_hypernym, "
                                         "adjective_antonym, example_cloze)"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(gt::wordnet_mc_task("example_cloze", "/nonexistent", 10),
                       doctest::Contains("wordnet-base"), gt::Error);
}

TEST_CASE("wordnet tasks: built twice they are identical, capped sets are prefixes") {
  const auto a = gt::wordnet_mc_tasks(gt::kDefaultWordnetDir, 300);
  const auto b = gt::wordnet_mc_tasks(gt::kDefaultWordnetDir, 300);
  const auto& full = all_tasks();
  REQUIRE(a.size() == 4);
  for (size_t t = 0; t < a.size(); ++t) {
    INFO(a[t].name);
    CHECK(a[t].name == full[t].name);
    CHECK(a[t].train.size() == 300);
    CHECK(a[t].valid.size() == 300);
    CHECK(a[t].test.size() == 300);
    CHECK(same(a[t].train, b[t].train, 300));
    CHECK(same(a[t].valid, b[t].valid, 300));
    CHECK(same(a[t].test, b[t].test, 300));
    CHECK(same(a[t].train, full[t].train, 300));
    CHECK(same(a[t].test, full[t].test, 300));
  }
  // One task alone equals its part of the whole set.
  const auto one = gt::wordnet_mc_task("adjective_antonym", gt::kDefaultWordnetDir, 300);
  CHECK(same(one.test, a[2].test, 300));
  CHECK(same(one.train, a[2].train, 300));
}

TEST_CASE("wordnet tasks: four distinct choices, none a synonym, answer position hashed") {
  for (const auto& task : all_tasks()) {
    INFO(task.name);
    std::map<int64_t, size_t> positions;
    size_t n = 0;
    for (const auto* split : {&task.train, &task.valid, &task.test})
      for (const auto& it : *split) {
        ++n;
        REQUIRE(it.choices.size() == 4);
        REQUIRE(it.answer >= 0);
        REQUIRE(it.answer < 4);
        ++positions[it.answer];
        std::set<std::string> distinct;
        for (const auto& c : it.choices) {
          CHECK(c.size() > 1);
          CHECK(c[0] == ' ');
          CHECK(c[1] != ' ');
          distinct.insert(lower(c));
        }
        CHECK(distinct.size() == 4);
      }
    for (int64_t p = 0; p < 4; ++p) {  // roughly uniform
      INFO("position " << p << ": " << positions[p] << " of " << n);
      CHECK(double(positions[p]) / double(n) > 0.22);
      CHECK(double(positions[p]) / double(n) < 0.28);
    }
  }
  // Synonyms (the synset's other words) are never distractors: check via the synset itself.
  std::map<std::string, gt::Synset> adj;
  for (auto& s : gt::read_wordnet(gt::kDefaultWordnetDir, "adj")) adj[s.offset + s.pos] = s;
  const auto& antonyms = all_tasks()[2];
  for (const auto& it : antonyms.test) {
    const auto& s = adj.at(it.id);
    for (size_t c = 0; c < 4; ++c)
      for (const auto& w : s.words) CHECK(lower(it.choices[c]) != " " + lower(w));
  }
}

TEST_CASE("wordnet tasks: splits are disjoint by synset and test is held out of training") {
  std::set<std::pair<std::string, std::string>> instruction_train;
  for (const auto& ex : gt::wordnet_instructions(gt::kDefaultWordnetDir, 0.05, 0, 0).train)
    instruction_train.insert({ex.prompt, ex.response});
  for (const auto& task : all_tasks()) {
    INFO(task.name);
    MESSAGE(task.name << ": train " << task.train.size() << ", valid " << task.valid.size()
                      << ", test " << task.test.size());
    CHECK(task.test.size() >= 200);
    CHECK(task.valid.size() >= 200);
    std::set<std::string> ids[3];
    std::set<std::string> seen;  // context + answer of train and valid
    const std::vector<McItem>* splits[3] = {&task.train, &task.valid, &task.test};
    for (int s = 0; s < 3; ++s)
      for (const auto& it : *splits[s]) {
        REQUIRE(it.id.size() > 1);
        ids[s].insert(it.id);
        const double u = gt::wordnet_split_point(it.id.substr(0, it.id.size() - 1), it.id.back());
        if (s == 0) CHECK(u >= 0.10);
        if (s == 1) CHECK((u >= 0.05 && u < 0.10));
        if (s == 2) CHECK(u < 0.05);
        const auto key = it.context + '\0' + it.choices[it.answer];
        if (s < 2) seen.insert(key);
        if (s == 2) CHECK(seen.count(key) == 0);  // no held-out item repeats a training one
        // Test items never appear in instruction training data at the default fraction.
        if (s == 2) CHECK(instruction_train.count({it.context, it.choices[it.answer]}) == 0);
      }
    for (int s = 0; s < 3; ++s) CHECK(ids[s].size() == splits[s]->size());  // one item per synset
    for (const auto& id : ids[2]) CHECK((ids[0].count(id) == 0 && ids[1].count(id) == 0));
    for (const auto& id : ids[1]) CHECK(ids[0].count(id) == 0);
  }
}

TEST_CASE("wordnet tasks: templates, cloze blanks and known facts") {
  const auto& t = all_tasks();
  for (const auto* split : {&t[0].test, &t[0].train})
    for (const auto& it : *split) {
      CHECK(it.context.rfind("Which word means: ", 0) == 0);
      CHECK(it.context.size() > 27);  // a definition between the two
      CHECK(it.context.substr(it.context.size() - 9) == "?\nAnswer:");
    }
  for (const auto& it : t[3].test) {
    CHECK(it.context.find("___") != std::string::npos);
    const auto answer = lower(it.choices[it.answer].substr(1));
    CHECK(lower(it.context).find(answer) == std::string::npos);
    CHECK(it.context.substr(it.context.size() - 20) == "\nThe missing word is");
  }
  // Known WordNet facts, in whichever split their synset fell. A cue word with several
  // senses has an item per sense; no item offers another sense's answer as a distractor.
  auto check_fact = [](const McTask& task, const std::string& context, const std::string& answer,
                       const std::set<std::string>& never_distractors) {
    INFO(context);
    std::set<std::string> answers;
    for (const auto* it : find_items(task, context)) {
      answers.insert(it->choices[it->answer]);
      for (size_t c = 0; c < it->choices.size(); ++c)
        if (c != static_cast<size_t>(it->answer))
          CHECK(never_distractors.count(it->choices[c]) == 0);
    }
    CHECK(answers.count(answer) == 1);
  };
  check_fact(t[1], "A dog is a kind of", " canine",
             {" canine", " domestic animal", " animal", " carnivore", " mammal", " chap"});
  check_fact(t[2], "The opposite of \"good\" is", " bad", {" bad", " evil", " badness"});
}

TEST_CASE("multiple choice: score_mc with a scripted model that favours one token") {
  const auto& tok = model_tokenizer();
  const auto V = tok.vocab_size();
  const auto cat = single_token(" cat");
  for (const char* w : {" dog", " bird", " fish"}) single_token(w);
  const std::vector<McItem> items = {
      {"The animal that purrs is", {" dog", " cat", " bird", " fish"}, 1},  // right
      {"The animal that barks is", {" dog", " cat", " bird", " fish"}, 0},  // wrong
      {"A pet:", {" cat", " fish"}, 0},                                     // right
      {"A bird:", {" fish", " bird", " cat"}, 1}};                          // wrong
  const auto s = gt::score_mc("scripted", items, scripted_model(V, cat), tok, 3, 64);
  CHECK(s.task == "scripted");
  CHECK(s.items == 4);
  CHECK(s.acc == doctest::Approx(0.5));
  CHECK(s.acc_norm == doctest::Approx(0.5));

  // Uniform logits: each scored token costs log V, so the log-likelihood counts the choice's
  // tokens exactly; the scripted model also checks the layout (bos first, right padding).
  std::vector<std::vector<int64_t>> seen;
  const gt::LogitsFn uniform = [&](const torch::Tensor& ids, const torch::Tensor& mask) {
    for (int64_t b = 0; b < ids.size(0); ++b) {
      CHECK(ids[b][0].item<int64_t>() == tok.special().bos);
      const auto m = mask[b];
      const auto n = m.sum().item<int64_t>();
      CHECK(m.slice(0, 0, n).eq(1).all().item<bool>());
      CHECK(m.slice(0, n).eq(0).all().item<bool>());
    }
    seen.push_back({ids.size(0), ids.size(1)});
    return torch::zeros({ids.size(0), ids.size(1), V});
  };
  const std::vector<McItem> mixed = {{"Hello", {" world", " there, my dear friend"}, 0},
                                     {"Question: why?\nAnswer: ", {"because", " no"}, 1}};
  const auto lls = gt::mc_loglikelihoods(mixed, uniform, tok, 2, 64);
  CHECK(seen.size() == 2);  // 4 sequences, 2 per batch
  const double logv = std::log(double(V));
  CHECK(lls[0][0] == doctest::Approx(-double(tok.encode(" world").size()) * logv));
  CHECK(lls[0][1] == doctest::Approx(-double(tok.encode(" there, my dear friend").size()) * logv));
  // The context's trailing space moves to the choice, as lm-eval does.
  CHECK(lls[1][0] == doctest::Approx(-double(tok.encode(" because").size()) * logv));
}

TEST_CASE("multiple choice: acc and acc_norm differ where lengths differ") {
  const auto& tok = model_tokenizer();
  const auto V = tok.vocab_size();
  // Uniform logits: the one-token choice has the highest log-likelihood, the long choice the
  // highest per byte.
  const std::string longer = " the considerably longer answer";
  const auto n = static_cast<double>(tok.encode(longer).size());
  REQUIRE(n < double(longer.size() - 1));  // fewer tokens than bytes
  const std::vector<McItem> items = {{"Pick one:", {" a", longer}, 1}};
  const auto s = gt::score_mc("lengths", items, scripted_model(V), tok);
  CHECK(s.acc == 0.0);
  CHECK(s.acc_norm == 1.0);
  const std::vector<McItem> flipped = {{"Pick one:", {" a", longer}, 0}};
  const auto f = gt::score_mc("lengths", flipped, scripted_model(V), tok);
  CHECK(f.acc == 1.0);
  CHECK(f.acc_norm == 0.0);
}

TEST_CASE("multiple choice: long sequences are cut from the left") {
  const auto& tok = model_tokenizer();
  const auto V = tok.vocab_size();
  std::string context;
  for (int i = 0; i < 40; ++i) context += "word ";
  context += "end";
  int64_t longest = 0;
  const gt::LogitsFn uniform = [&](const torch::Tensor& ids, const torch::Tensor&) {
    longest = std::max(longest, ids.size(1));
    return torch::zeros({ids.size(0), ids.size(1), V});
  };
  const std::vector<McItem> items = {{context, {" one", " two three four"}, 0}};
  const auto lls = gt::mc_loglikelihoods(items, uniform, tok, 8, 16);
  CHECK(longest == 16);
  const double logv = std::log(double(V));
  CHECK(lls[0][0] == doctest::Approx(-double(tok.encode(" one").size()) * logv));
  CHECK(lls[0][1] == doctest::Approx(-double(tok.encode(" two three four").size()) * logv));
  // A choice longer than the window: only tokens with a predecessor in it count.
  const auto cut = gt::mc_loglikelihoods({{"x", {" a b c d e f g h i j"}, 0}}, uniform, tok, 8, 4);
  CHECK(cut[0][0] == doctest::Approx(-3 * logv));
}

TEST_CASE("multiple choice: bad items, arguments and logits are errors") {
  const auto& tok = model_tokenizer();
  const auto V = tok.vocab_size();
  CHECK_THROWS_WITH_AS(gt::score_mc("t", {{"c", {" a", " b"}, 2, "x:3"}}, scripted_model(V), tok),
                       "t item 0 (x:3): answer 2 is out of range for 2 choices", gt::Error);
  CHECK_THROWS_WITH_AS(gt::score_mc("t", {{"c", {" a"}, 0}, {"c", {}, 0}}, scripted_model(V), tok),
                       "t item 1: no choices", gt::Error);
  CHECK_THROWS_AS(gt::score_mc("t", {{"c", {" a"}, 0}}, scripted_model(V), tok, 0), gt::Error);
  CHECK_THROWS_AS(gt::score_mc("t", {{"c", {" a"}, 0}}, scripted_model(V), tok, 4, 1), gt::Error);
  const gt::LogitsFn flat = [](const torch::Tensor& ids, const torch::Tensor&) {
    return torch::zeros({ids.size(0), ids.size(1)});
  };
  CHECK_THROWS_WITH_AS(gt::score_mc("t", {{"c", {" a"}, 0}}, flat, tok),
                       doctest::Contains("logits function returned shape"), gt::Error);
  const auto none = gt::score_mc("empty", {}, scripted_model(V), tok);
  CHECK(none.items == 0);
  CHECK(none.acc == 0.0);
}

TEST_CASE("multiple choice: JSONL reads lm-eval style items") {
  gt::test::TempDir dir;
  const auto path =
      dir.write("mc.jsonl",
                "{\"context\": \"2 + 2 =\", \"choices\": [\" 3\", \" 4\", \" 5\"], \"answer\": 1}\n"
                "\n"
                "{\"query\": \"Sky colour:\", \"choices\": [\" blue\", \" green\"], \"gold\": 0, "
                "\"extra\": 7}\n"
                "{\"question\": \"Q?\", \"choices\": [\"yes\", \"no\"], \"label\": 1}\n");
  const auto items = gt::read_jsonl_multiple_choice(path);
  REQUIRE(items.size() == 3);
  CHECK(items[0].context == "2 + 2 =");
  CHECK(items[0].choices == std::vector<std::string>{" 3", " 4", " 5"});
  CHECK(items[0].answer == 1);
  CHECK(items[0].id == path + ":1");
  CHECK(items[1].context == "Sky colour:");
  CHECK(items[1].answer == 0);
  CHECK(items[1].id == path + ":3");
  CHECK(items[2].choices == std::vector<std::string>{"yes", "no"});
  CHECK(items[2].answer == 1);
}

TEST_CASE("multiple choice: JSONL errors name file:line and the problem") {
  gt::test::TempDir dir;
  const std::string good = "{\"context\": \"c\", \"choices\": [\" a\", \" b\"], \"answer\": 0}\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"context\": \"c\",", "invalid JSON at column"},
      {"[1, 2]", "not a JSON object (got array)"},
      {"{\"choices\": [\" a\", \" b\"], \"answer\": 0}",
       "missing field \"context\" (or \"query\" / \"question\")"},
      {"{\"context\": \"c\", \"query\": \"q\", \"choices\": [\" a\", \" b\"], \"answer\": 0}",
       "has both \"context\" and \"query\""},
      {"{\"context\": 3, \"choices\": [\" a\", \" b\"], \"answer\": 0}",
       "field \"context\" is not a string (got number)"},
      {"{\"question\": \" \", \"choices\": [\" a\", \" b\"], \"answer\": 0}",
       "field \"question\" is empty"},
      {"{\"context\": \"c\", \"answer\": 0}", "missing field \"choices\""},
      {"{\"context\": \"c\", \"choices\": \" a\", \"answer\": 0}",
       "field \"choices\" is not an array (got string)"},
      {"{\"context\": \"c\", \"choices\": [\" a\"], \"answer\": 0}",
       "field \"choices\" needs at least 2 choices, got 1"},
      {"{\"context\": \"c\", \"choices\": [\" a\", 2], \"answer\": 0}",
       "choice 1 is not a string (got number)"},
      {"{\"context\": \"c\", \"choices\": [\"\", \" b\"], \"answer\": 0}", "choice 0 is empty"},
      {"{\"context\": \"c\", \"choices\": [\" a\", \" b\", \" a\"], \"answer\": 0}",
       "choices 0 and 2 are the same"},
      {"{\"context\": \"c\", \"choices\": [\" a\", \" b\"]}",
       "missing field \"answer\" (or \"gold\" / \"label\")"},
      {"{\"context\": \"c\", \"choices\": [\" a\", \" b\"], \"answer\": \"0\"}",
       "field \"answer\" is not an integer (got string)"},
      {"{\"context\": \"c\", \"choices\": [\" a\", \" b\"], \"label\": 1.5}",
       "field \"label\" is not an integer (got number)"},
      {"{\"context\": \"c\", \"choices\": [\" a\", \" b\"], \"gold\": 2}",
       "field \"gold\" = 2 is out of range for 2 choices"},
      {"{\"context\": \"c\", \"choices\": [\" a\", \" b\"], \"answer\": -1}",
       "field \"answer\" = -1 is out of range for 2 choices"},
      {"{\"context\": \"c\", \"choices\": [\" a\", \" b\"], \"answer\": 0, \"label\": 0}",
       "has both \"answer\" and \"label\""},
  };
  for (const auto& [line, why] : cases) {
    const auto& bad_line = line;  // clang 14 cannot capture a structured binding
    INFO(bad_line);
    const auto path = dir.write("bad.jsonl", good + line + "\n" + good);
    CHECK_THROWS_WITH_AS(gt::read_jsonl_multiple_choice(path),
                         gt::test::contains(path + ":2: " + why), gt::Error);
  }
  const auto missing = dir.file("missing.jsonl");
  CHECK_THROWS_WITH_AS(gt::read_jsonl_multiple_choice(missing),
                       gt::test::contains(missing + ": cannot open multiple-choice file"),
                       gt::Error);
  const auto empty = dir.write("empty.jsonl", "\n  \n");
  CHECK_THROWS_WITH_AS(gt::read_jsonl_multiple_choice(empty),
                       gt::test::contains(empty + ": no items"), gt::Error);
}

TEST_CASE("multiple choice: zero-shot accuracy of the embedded model on the wordnet tasks") {
  const auto t0 = std::chrono::steady_clock::now();
  const auto tasks = gt::wordnet_mc_tasks(gt::kDefaultWordnetDir, 100);
  const auto t1 = std::chrono::steady_clock::now();
  MESSAGE("building the WordNet tasks (100 per split): "
          << std::chrono::duration<double>(t1 - t0).count() << " s");
  auto model = gt::load_decoder(gt::test::model_dir());
  model->eval();
  const gt::LogitsFn logits = [&](const torch::Tensor& ids, const torch::Tensor& mask) {
    return model->forward(ids, mask);
  };
  for (const auto& task : tasks) {
    REQUIRE(task.test.size() == 100);
    const auto start = std::chrono::steady_clock::now();
    const auto s = gt::score_mc(task.name, task.test, logits, model_tokenizer());
    const auto secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    MESSAGE(task.name << ": acc " << s.acc << ", acc_norm " << s.acc_norm << " on " << s.items
                      << " test items (" << secs << " s)");
    CHECK(s.items == 100);
    CHECK((s.acc >= 0 && s.acc <= 1));
    CHECK((s.acc_norm >= 0 && s.acc_norm <= 1));
    // Measured 0.37 here (0.36 on 500 items): the model knows some definitions. The items and
    // the model are fixed, so this only moves if either does.
    if (task.name == "definition_to_word") CHECK(s.acc > 0.25);
  }
}

TEST_CASE("multiple choice: the head at the choices' tokens only scores as the full logits do") {
  const std::vector<gt::McItem> items = {
      {"a domesticated carnivorous mammal:", {" dog", " the sea", " running quickly"}, 0},
      {"the opposite of hot is", {" cold", " warm"}, 0},
      {"x", {" a b c d e f g h i j k l", " z"}, 1},  // cut from the left at max_len 8
  };
  auto model = gt::load_decoder(gt::test::model_dir());
  model->eval();
  const gt::LogitsFn logits = [&](const torch::Tensor& ids, const torch::Tensor& mask) {
    return model->forward(ids, mask);
  };
  auto seg = gt::split_model(model, {1, 1});
  const gt::LogProbFn label_only = [&](const torch::Tensor& ids, const torch::Tensor& mask,
                                       const torch::Tensor& labels) {
    const auto ctx = gt::make_attention_context(seg.cfg, mask, torch::kFloat);
    const auto a2 = seg.backbone->forward(seg.input->forward(ids, mask, ctx), ctx);
    return seg.output->label_log_probs(a2, ctx, labels);
  };
  for (int64_t max_len : {64, 8}) {
    const auto expected = gt::mc_loglikelihoods(items, logits, model_tokenizer(), 2, max_len);
    const auto got = gt::mc_loglikelihoods(items, label_only, model_tokenizer(), 2, max_len);
    REQUIRE(got.size() == expected.size());
    for (size_t i = 0; i < got.size(); ++i)
      for (size_t c = 0; c < got[i].size(); ++c) {
        INFO("max_len " << max_len << " item " << i << " choice " << c);
        CHECK(got[i][c] < 0);
        CHECK(got[i][c] == doctest::Approx(expected[i][c]).epsilon(1e-5));
      }
  }
  const gt::LogProbFn wrong = [](const torch::Tensor& ids, const torch::Tensor&,
                                 const torch::Tensor&) { return torch::zeros({ids.size(0)}); };
  CHECK_THROWS_WITH_AS(gt::score_mc("t", items, wrong, model_tokenizer()),
                       doctest::Contains("the log-probability function returned shape"), gt::Error);
}
