// Unit tests for instruction datasets: WordNet templates and split, JSONL parsing and its
// errors, prompt-masked labels, and a real loss on the embedded model.
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.hpp"
#include "data/gcide.hpp"
#include "data/instructions.hpp"
#include "data/wordnet.hpp"
#include "models/decoder.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/temp_dir.hpp"
#include "tests/test_paths.hpp"

namespace fs = std::filesystem;
using doctest::Contains;
using gt::InstructionDataset;
using gt::InstructionExample;

namespace gt {
// For doctest's messages on failed comparisons (found by ADL).
std::ostream& operator<<(std::ostream& os, const InstructionExample& ex) {
  return os << "{" << nlohmann::json(ex.prompt) << " -> " << nlohmann::json(ex.response) << "}";
}
}  // namespace gt

namespace {

const gt::Tokenizer& model_tokenizer() {
  static const gt::Tokenizer tok = gt::Tokenizer::from_dir(gt::test::model_dir());
  return tok;
}

bool starts_with(const std::string& s, const std::string& p) {
  return s.rfind(p, 0) == 0;
}
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

std::string kind(const InstructionExample& ex) {
  if (starts_with(ex.prompt, "Define the ")) return "define";
  if (starts_with(ex.prompt, "Which word means: ")) return "word for";
  if (ends_with(ex.prompt, " is a kind of")) return "hypernym";
  if (starts_with(ex.prompt, "The opposite of \"")) return "antonym";
  return "?";
}

// A JSONL file under the temp dir, removed with the object.
struct TempFile {
  std::string path;
  explicit TempFile(const std::string& text) {
    path = (fs::temp_directory_path() / ("gt_instructions_" + std::to_string(getpid()) + "_" +
                                         std::to_string(counter++) + ".jsonl"))
               .string();
    std::ofstream(path) << text;
  }
  ~TempFile() { fs::remove(path); }
  static inline int counter = 0;
};

}  // namespace

TEST_CASE("instructions: wordnet split is deterministic, disjoint and capped") {
  const auto a = gt::wordnet_instructions(gt::kDefaultWordnetDir, 0.1, 3000, 300);
  const auto b = gt::wordnet_instructions(gt::kDefaultWordnetDir, 0.1, 3000, 300);
  CHECK(a.train == b.train);
  CHECK(a.valid == b.valid);
  CHECK(a.train.size() == 3000);
  CHECK(a.valid.size() == 300);

  const auto all = gt::wordnet_instructions(gt::kDefaultWordnetDir, 0.1, 0, 0);
  // WordNet 3.0 has ~117k synsets; about a tenth go to valid.
  CHECK(all.train.size() > 90000);
  CHECK(all.valid.size() > 8000);
  CHECK(all.valid.size() < 16000);
  std::set<std::pair<std::string, std::string>> train;
  for (const auto& ex : all.train) train.insert({ex.prompt, ex.response});
  CHECK(train.size() == all.train.size());  // no duplicates
  size_t shared = 0;
  for (const auto& ex : all.valid) shared += train.count({ex.prompt, ex.response});
  CHECK(shared == 0);
  // Caps choose a prefix of the hash order, so capped sets are subsets of the full ones.
  for (size_t i = 0; i < a.train.size(); ++i) CHECK(a.train[i] == all.train[i]);

  const auto none = gt::wordnet_instructions(gt::kDefaultWordnetDir, 0.0, 10, 10);
  CHECK(none.valid.empty());
  CHECK_THROWS_AS(gt::wordnet_instructions(gt::kDefaultWordnetDir, 1.5, 0, 0), gt::Error);
}

TEST_CASE("instructions: wordnet templates are well formed and all four kinds appear") {
  const auto split = gt::wordnet_instructions(gt::kDefaultWordnetDir, 0.1, 3000, 300);
  std::map<std::string, int> kinds;
  for (const auto* part : {&split.train, &split.valid})
    for (const auto& ex : *part) {
      ++kinds[kind(ex)];
      CHECK(ex.prompt.size() > 5);
      CHECK(ex.response.size() > 1);
      CHECK(ex.response[0] == ' ');  // encoded separately: the space belongs to the response
      CHECK(ex.response[1] != ' ');
      CHECK(ex.response.back() != ' ');
      CHECK(ex.prompt.find(";\"") == std::string::npos);  // no example sentences
      CHECK(ex.response.find(";\"") == std::string::npos);
    }
  CHECK(kinds.count("?") == 0);
  for (const char* k : {"define", "word for", "hypernym", "antonym"}) {
    INFO(k);
    CHECK(kinds[k] > 10);
  }

  // Known WordNet facts reach the templates (from the full set, whichever side they fell on).
  const auto all = gt::wordnet_instructions(gt::kDefaultWordnetDir, 0.1, 0, 0);
  std::set<std::pair<std::string, std::string>> examples;
  for (const auto* part : {&all.train, &all.valid})
    for (const auto& ex : *part) examples.insert({ex.prompt, ex.response});
  // Each synset gets one template, so look for any of the forms its hash may have picked.
  const bool dog = examples.count({"A dog is a kind of", " canine"}) ||
                   examples.count({"Define the noun \"dog\":",
                                   " a member of the genus Canis (probably descended from the "
                                   "common wolf) that has been domesticated by man since "
                                   "prehistoric times; occurs in many breeds"}) ||
                   std::any_of(examples.begin(), examples.end(), [](const auto& e) {
                     return e.second == " dog" && starts_with(e.first,
                                                              "Which word means: a "
                                                              "member of the genus Canis");
                   });
  CHECK(dog);
}

TEST_CASE("instructions: JSONL reads both schemas") {
  const auto xs = gt::read_jsonl_instructions(gt::test::fixture("data/sample_instructions.jsonl"));
  REQUIRE(xs.size() == 10);  // one blank line skipped
  CHECK(xs[0] == InstructionExample{"Name a colour of the clear daytime sky:", " blue"});
  CHECK(xs[1] ==
        InstructionExample{"### Instruction:\nGive the plural of the word.\n\n### Input:\nmouse\n\n"
                           "### Response:\n",
                           "mice"});
  CHECK(xs[3] ==
        InstructionExample{"### Instruction:\nSay hello in French.\n\n### Response:\n", "Bonjour"});
  // An empty "input" is left out like a missing one; extra fields are ignored.
  CHECK(xs[7].prompt.find("### Input:") == std::string::npos);
  CHECK(xs[9].response == "Yes");

  TempFile crlf(
      "{\"prompt\": \"a\", \"response\": \" b\"}\r\n\r\n{\"instruction\": \"c\", "
      "\"input\": null, \"output\": \"d\"}\r\n");
  const auto ys = gt::read_jsonl_instructions(crlf.path);
  REQUIRE(ys.size() == 2);
  CHECK(ys[0] == InstructionExample{"a", " b"});
  CHECK(ys[1] == InstructionExample{"### Instruction:\nc\n\n### Response:\n", "d"});
}

TEST_CASE("instructions: JSONL errors name file:line and the problem") {
  const std::string ok = "{\"prompt\": \"p\", \"response\": \" r\"}\n";
  auto check_error = [&](const std::string& bad_line, const std::string& what) {
    TempFile f(ok + "\n" + bad_line + "\n");  // the bad object sits on line 3
    INFO(bad_line);
    CHECK_THROWS_WITH_AS(gt::read_jsonl_instructions(f.path),
                         gt::test::contains(f.path + ":3: " + what), gt::Error);
  };
  check_error("{\"prompt\": \"p\", ", "invalid JSON at column");
  check_error("[\"prompt\", \"response\"]", "not a JSON object (got array)");
  check_error("{\"prompt\": \"p\"}", "missing field \"response\"");
  check_error("{\"response\": \" r\"}", "missing field \"prompt\"");
  check_error("{\"instruction\": \"i\"}", "missing field \"output\"");
  check_error("{\"prompt\": \"p\", \"response\": \"\"}", "field \"response\" is empty");
  check_error("{\"instruction\": \"  \", \"output\": \"o\"}", "field \"instruction\" is empty");
  check_error("{\"prompt\": \"p\", \"response\": 7}",
              "field \"response\" is not a string (got number)");
  check_error("{\"instruction\": \"i\", \"input\": [1], \"output\": \"o\"}",
              "field \"input\" is not a string (got array)");
  check_error("{\"prompt\": \"p\", \"output\": \"o\"}", "mixes the prompt/response");
  check_error("{\"text\": \"t\"}", "expected fields \"prompt\" and \"response\"");

  const std::string missing = "/nonexistent/gt_instructions.jsonl";
  CHECK_THROWS_WITH_AS(gt::read_jsonl_instructions(missing),
                       gt::test::contains(missing + ": cannot open"), gt::Error);
  TempFile empty("\n  \n\n");
  CHECK_THROWS_WITH_AS(gt::read_jsonl_instructions(empty.path),
                       gt::test::contains(empty.path + ": no examples"), gt::Error);
}

TEST_CASE("instructions: labels mask bos, prompt and padding") {
  const auto& tok = model_tokenizer();
  const auto& sp = tok.special();
  REQUIRE(sp.bos >= 0);
  REQUIRE(sp.eos >= 0);
  const std::vector<InstructionExample> xs = {
      {"A dog is a kind of", " canine"},
      {"Define the verb \"abandon\":", " forsake, leave behind"},
      {"Which word means: good?", " good"}};
  InstructionDataset data(xs, tok, 64);
  REQUIRE(data.size() == 3);
  CHECK(data.dropped() == 0);
  auto batch = data.batch({0, 1, 2});
  const auto T = batch.input_ids.size(1);
  CHECK(batch.input_ids.sizes() == torch::IntArrayRef({3, T}));
  CHECK(batch.attention_mask.sizes() == batch.input_ids.sizes());
  CHECK(batch.labels.sizes() == batch.input_ids.sizes());
  int64_t labelled = 0;
  for (int64_t b = 0; b < 3; ++b) {
    const auto prompt = tok.encode(xs[b].prompt);
    auto response = tok.encode(xs[b].response);
    response.push_back(sp.eos);
    const auto P = static_cast<int64_t>(1 + prompt.size());
    const auto n = P + static_cast<int64_t>(response.size());
    auto ids = batch.input_ids[b];
    auto labels = batch.labels[b];
    CHECK(ids[0].item<int64_t>() == sp.bos);
    for (int64_t t = 0; t < T; ++t) {
      const bool real = t < n;
      CHECK(batch.attention_mask[b][t].item<int64_t>() == (real ? 1 : 0));
      if (!real) CHECK(ids[t].item<int64_t>() == (sp.pad >= 0 ? sp.pad : sp.eos));
      if (t < P) {
        if (t > 0) CHECK(ids[t].item<int64_t>() == prompt[t - 1]);
        CHECK(labels[t].item<int64_t>() == -100);
      } else if (real) {
        CHECK(ids[t].item<int64_t>() == response[t - P]);
        CHECK(labels[t].item<int64_t>() == response[t - P]);
        ++labelled;
      } else {
        CHECK(labels[t].item<int64_t>() == -100);
      }
    }
  }
  CHECK(labelled == data.num_response_tokens());
  CHECK(batch.labels.ne(-100).sum().item<int64_t>() == labelled);
  // The longest example has no padding; the batch is as long as it.
  CHECK(batch.attention_mask.sum(1).max().item<int64_t>() == T);
  // Usable wherever the trainer takes a BatchSource.
  const gt::BatchSource& source = data;
  CHECK(source.size() == 3);
  CHECK(source.batch({2, 0}).labels.equal(data.batch({2, 0}).labels));
}

TEST_CASE("instructions: cutting keeps the start and drops examples with no response left") {
  const auto& tok = model_tokenizer();
  const InstructionExample ex{"Define the verb \"abandon\":", " forsake, leave behind"};
  const auto P = static_cast<int64_t>(1 + tok.encode(ex.prompt).size());
  const auto R = static_cast<int64_t>(tok.encode(ex.response).size());
  REQUIRE(R > 2);

  InstructionDataset full({ex}, tok, P + R + 1);
  CHECK(full.num_response_tokens() == R + 1);
  InstructionDataset cut({ex}, tok, P + 2);  // two response tokens, no eos
  REQUIRE(cut.size() == 1);
  CHECK(cut.num_response_tokens() == 2);
  auto b = cut.batch({0});
  CHECK(b.input_ids.size(1) == P + 2);
  CHECK(b.input_ids[0][P + 1].item<int64_t>() == tok.encode(ex.response)[1]);
  CHECK(b.labels[0][P + 1].item<int64_t>() == tok.encode(ex.response)[1]);

  InstructionDataset mixed({ex, {"Hi", " there"}, ex}, tok, P);  // only the short one fits
  CHECK(mixed.size() == 1);
  CHECK(mixed.dropped() == 2);
  CHECK_THROWS_AS(InstructionDataset({ex}, tok, 1), gt::Error);
}

TEST_CASE("instructions: causal LM loss on a batch of the embedded model is finite") {
  const auto& tok = model_tokenizer();
  auto xs = gt::read_jsonl_instructions(gt::test::fixture("data/sample_instructions.jsonl"));
  const auto wn = gt::wordnet_instructions(gt::kDefaultWordnetDir, 0.1, 4, 0);
  xs.insert(xs.end(), wn.train.begin(), wn.train.end());
  InstructionDataset data(xs, tok, 256);
  REQUIRE(data.size() == xs.size());
  auto model = gt::load_decoder(gt::test::model_dir());
  model->eval();
  torch::NoGradGuard no_grad;
  auto batch = data.batch({0, 1, 2, 10, 11, 12, 13});
  auto logits = model->forward(batch.input_ids, batch.attention_mask);
  auto loss = gt::causal_lm_loss(logits, batch.labels).item<double>();
  CHECK(std::isfinite(loss));
  CHECK(loss > 0);
  // The prompt mask changes what is counted: the loss over all tokens differs.
  auto all = gt::causal_lm_loss(logits, gt::labels_from_mask(batch.input_ids, batch.attention_mask))
                 .item<double>();
  CHECK(all != doctest::Approx(loss));
}

TEST_CASE("gcide: dictd paragraphs become clean passages, header and licence skipped") {
  gt::test::TempDir dir;
  const std::string text =
      "00-database-url\n   ftp://ftp.gnu.org/gnu/gcide\n\n"
      "GCIDE is free software; you can redistribute it under the GNU GPL.\n\n"
      "Affect \\Af*fect\"\\, v. t. [imp. & p. p. {Affected}.] [L. affectus.]\n"
      "   1. To act upon; to produce an effect or change upon.\n      [1913 Webster]\n\n"
      "            The climate affected their health and spirits.\n"
      "                                                  --Macaulay.\n      [1913 Webster]\n\n"
      "Ab\n\n";
  const auto plain = dir.write("gcide.txt", text);
  const auto gz = dir.file("gcide.dict.dz");
  {
    gzFile f = gzopen(gz.c_str(), "wb");
    REQUIRE(f);
    gzwrite(f, text.data(), unsigned(text.size()));
    gzclose(f);
  }
  const std::vector<std::string> want{
      "Affect , v. t. 1. To act upon; to produce an effect or change upon.",
      "The climate affected their health and spirits."};
  CHECK(gt::gcide_passages(plain, 0) == want);
  CHECK(gt::gcide_passages(gz, 0) == want);  // dictzip is gzip
  CHECK(gt::gcide_passages(gz, 1).size() == 1);
  CHECK_THROWS_WITH_AS(gt::gcide_passages(dir.file("missing.dz"), 0), Contains("dict-gcide"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(gt::gcide_passages(dir.write("empty.txt", "\n\nAb\n"), 0),
                       Contains("no GCIDE passage"), gt::Error);
  if (!std::filesystem::exists(gt::kGcideDictPath)) {
    MESSAGE("dict-gcide not installed: the real dictionary is not checked");
    return;
  }
  const auto real = gt::gcide_passages(gt::kGcideDictPath, 500);
  CHECK(real.size() == 500);
  for (const auto& p : real) {
    CAPTURE(p);
    CHECK(p.size() >= 20);
    CHECK(p.find("[1913 Webster]") == std::string::npos);
    CHECK(p.find('{') == std::string::npos);
  }
}
