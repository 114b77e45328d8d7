// Multiple-choice tasks scored the way lm-eval-harness scores them: the log-likelihood of each
// choice as a continuation of the context; acc and acc_norm. Items come from WordNet
// (data/wordnet_tasks.hpp) or from a user's JSONL file.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/tokenizer.hpp"

namespace gt {

// Choices are continuations of the context, used verbatim: one that continues the context's
// line should start with a space (" canine"), as lm-eval's target delimiter does.
struct McItem {
  std::string context;
  std::vector<std::string> choices;
  int64_t answer = 0;  // index into choices
  // Where the item comes from, for reports and tests; never scored. WordNet: the synset's
  // offset + pos ("02084071n", the string its split hashes); JSONL: "path:line".
  std::string id = {};
};

struct McTask {
  std::string name;
  std::vector<McItem> train, valid, test;
};

struct McScore {
  std::string task;
  size_t items = 0;
  double acc = 0, acc_norm = 0;
  std::string correct;  // per item in order, '1' when acc counted it right, else '0'
                        // (what confidence intervals resample)
};

// (B, T) input ids and 0/1 attention mask (CPU, int64) -> (B, T, V) logits, any device/dtype.
using LogitsFn = std::function<torch::Tensor(const torch::Tensor& input_ids,
                                             const torch::Tensor& attention_mask)>;

// (B, T) input ids, 0/1 attention mask and labels (-100 where not scored) -> (B, T - 1)
// log p(labels[b, t + 1] | ids[b, ..t]) as float, any value where the label is -100. What a
// model computes at the labelled positions only (OutputAdapter::label_log_probs).
using LogProbFn =
    std::function<torch::Tensor(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                const torch::Tensor& labels)>;
// The same from a function that computes every position's logits (tests, references).
LogProbFn log_probs_from_logits(LogitsFn logits);

// Scores every (item, choice) pair, lm-eval style, without gradients:
// - sequence = [bos] + encode(context) + encode(choice): context and continuation encoded
//   separately and concatenated (lm-eval 0.3; what InstructionDataset trains on). Trailing
//   whitespace of the context moves to the start of the choice first, as lm-eval's
//   _encode_pair does. bos is left out where the tokenizer has none. For our WordNet contexts
//   (ending in a non-space) and choices (" word"), the GPT-2 pre-tokenizer splits at that
//   boundary anyway, so this equals lm-eval 0.4's encode(context + choice) minus the context.
// - log-likelihood = sum over the choice's tokens of log p(token | everything before it).
// - a sequence longer than max_len loses tokens from the left (lm-eval's truncation); choice
//   tokens with no predecessor left in the window are not counted.
// - acc: the choice with the highest log-likelihood (the first on ties) is the answer.
//   acc_norm: log-likelihood divided by the choice's length in bytes, leading whitespace not
//   counted (lm-eval divides by len(choice) without its target delimiter; bytes = characters
//   for ASCII).
// Requests are sorted by length (longest first) and batched `batch` sequences at a time with
// right padding (pad id, else eos, else 0). Throws gt::Error for an item with no choices or an
// answer out of range, naming the task and item, and for logits of the wrong shape.
McScore score_mc(const std::string& task, const std::vector<McItem>& items,
                 const LogProbFn& log_probs, const Tokenizer& tok, int64_t batch = 32,
                 int64_t max_len = 64);
McScore score_mc(const std::string& task, const std::vector<McItem>& items, const LogitsFn& logits,
                 const Tokenizer& tok, int64_t batch = 32, int64_t max_len = 64);

// Per item: the summed log-likelihood of each choice, as score_mc computes it.
std::vector<std::vector<double>> mc_loglikelihoods(const std::vector<McItem>& items,
                                                   const LogProbFn& log_probs, const Tokenizer& tok,
                                                   int64_t batch = 32, int64_t max_len = 64);
std::vector<std::vector<double>> mc_loglikelihoods(const std::vector<McItem>& items,
                                                   const LogitsFn& logits, const Tokenizer& tok,
                                                   int64_t batch = 32, int64_t max_len = 64);

// JSONL, one object per line (blank lines skipped), lm-eval style:
//   {"context": "...", "choices": [" a", " b", ...], "answer": 0}
// "query" or "question" may name the context, "gold" or "label" the answer (one of each).
// Choices: at least two non-empty, distinct strings, used verbatim. Other fields are ignored.
// Throws gt::Error naming file:line and the problem (invalid JSON, not an object, missing /
// duplicated / empty / wrongly typed field, answer out of range), or the file when it is
// missing or holds no items.
std::vector<McItem> read_jsonl_multiple_choice(const std::string& path);

}  // namespace gt
