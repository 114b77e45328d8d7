// gtune eval-ppl: token-level loss and perplexity of a model on a text file.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "apps/commands.hpp"
#include "common/error.hpp"
#include "data/lm_eval.hpp"
#include "models/decoder.hpp"

namespace gt::cli {

void add_eval_ppl(CLI::App& app) {
  struct Options {
    std::string model = GT_DEFAULT_MODEL_DIR, text;
    int64_t max_len = 256, batch = 8;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "eval-ppl", "Token-level loss and perplexity on a text file (one document per line)");
  cmd->add_option("--model", opt->model, "HuggingFace model directory")->capture_default_str();
  cmd->add_option("--text", opt->text,
                  "UTF-8 text file; each non-empty line is scored as one sequence")
      ->required();
  cmd->add_option("--max-len", opt->max_len, "tokens per sequence (longer lines are cut)")
      ->capture_default_str()
      ->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--batch", opt->batch, "sequences per forward pass")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->callback([opt] {
    std::ifstream in(opt->text);
    if (!in) throw error_at(opt->text, "cannot open text file");
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) lines.push_back(line);
    if (lines.empty()) throw error_at(opt->text, "no non-empty lines to score");
    auto model = load_decoder(opt->model, torch::kFloat);
    model->eval();
    auto tokenizer = Tokenizer::from_dir(opt->model);
    LmDataset data(lines, tokenizer, opt->max_len);
    auto score = evaluate_lm([&](const torch::Tensor& ids,
                                 const torch::Tensor& mask) { return model->forward(ids, mask); },
                             data, opt->batch, "eval-ppl");
    std::printf("sequences %zu  tokens %lld  loss %.4f  perplexity %.3f\n", data.size(),
                static_cast<long long>(score.tokens), score.loss, score.perplexity);
  });
}

}  // namespace gt::cli
