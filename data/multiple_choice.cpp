// lm-eval-style multiple-choice scoring and the JSONL reader for user tasks.
#include "data/multiple_choice.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "data/jsonl.hpp"

namespace gt {
namespace {

// One (item, choice) sequence; tokens [scored_from, ids.size()) belong to the choice.
struct Request {
  size_t item = 0, choice = 0;
  std::vector<int64_t> ids;
  size_t scored_from = 0;
};

Request make_request(const McItem& item, size_t index, size_t choice, const Tokenizer& tok,
                     int64_t max_len) {
  std::string context = item.context, continuation = item.choices[choice];
  // lm-eval's _encode_pair: the context's trailing whitespace belongs to the continuation.
  const auto end = context.find_last_not_of(" \t\n\r");
  const size_t keep = end == std::string::npos ? 0 : end + 1;
  continuation = context.substr(keep) + continuation;
  context.resize(keep);

  Request r{index, choice, {}, 0};
  if (tok.special().bos >= 0) r.ids.push_back(tok.special().bos);
  const auto ctx = tok.encode(context);
  r.ids.insert(r.ids.end(), ctx.begin(), ctx.end());
  size_t ctx_len = r.ids.size();
  const auto cont = tok.encode(continuation);
  r.ids.insert(r.ids.end(), cont.begin(), cont.end());
  const auto max = static_cast<size_t>(max_len);
  if (r.ids.size() > max) {  // cut from the left, as lm-eval does
    const size_t drop = r.ids.size() - max;
    r.ids.erase(r.ids.begin(), r.ids.begin() + static_cast<std::ptrdiff_t>(drop));
    ctx_len = ctx_len > drop ? ctx_len - drop : 0;
  }
  r.scored_from = std::max<size_t>(ctx_len, 1);  // the first token has nothing to predict it
  return r;
}

void check_items(const std::string& task, const std::vector<McItem>& items) {
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& it = items[i];
    const std::string where = (task.empty() ? "" : task + " ") + "item " + std::to_string(i) +
                              (it.id.empty() ? "" : " (" + it.id + ")");
    if (it.choices.empty()) throw Error(where + ": no choices");
    if (it.answer < 0 || it.answer >= static_cast<int64_t>(it.choices.size()))
      throw Error(where + ": answer " + std::to_string(it.answer) + " is out of range for " +
                  std::to_string(it.choices.size()) + " choices");
  }
}

// Summed log-probabilities of the scored tokens of each request in `batch`.
std::vector<double> score_batch(const std::vector<const Request*>& batch,
                                const LogProbFn& log_probs, int64_t pad_id) {
  size_t T = 0;
  for (const auto* r : batch) T = std::max(T, r->ids.size());
  const auto B = static_cast<int64_t>(batch.size());
  std::vector<double> out(batch.size(), 0.0);
  if (T < 2) return out;  // nothing is predicted
  const std::vector<int64_t> shape = {B, static_cast<int64_t>(T)};
  auto ids = torch::full(shape, pad_id, torch::kLong);
  auto mask = torch::zeros(shape, torch::kLong);
  auto labels = torch::full(shape, int64_t(-100), torch::kLong);  // the choice's tokens only
  auto ids_a = ids.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<int64_t, 2>();
  auto labels_a = labels.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b)
    for (size_t t = 0; t < batch[b]->ids.size(); ++t) {
      ids_a[b][t] = batch[b]->ids[t];
      mask_a[b][t] = 1;
      if (t >= batch[b]->scored_from) labels_a[b][t] = batch[b]->ids[t];
    }
  auto lp = log_probs(ids, mask, labels);
  if (lp.dim() != 2 || lp.size(0) != B || lp.size(1) != static_cast<int64_t>(T) - 1)
    throw Error("multiple choice: the log-probability function returned shape " +
                std::string(c10::str(lp.sizes())) + " for input (" + std::to_string(B) + ", " +
                std::to_string(T) + ")");
  lp = lp.to(torch::kCPU, torch::kDouble);
  auto lp_a = lp.accessor<double, 2>();
  for (int64_t b = 0; b < B; ++b)
    for (size_t t = batch[b]->scored_from; t < batch[b]->ids.size(); ++t)
      out[b] += lp_a[b][static_cast<int64_t>(t) - 1];
  return out;
}

size_t argmax(const std::vector<double>& xs) {
  return static_cast<size_t>(std::max_element(xs.begin(), xs.end()) - xs.begin());
}

// lm-eval divides by len(choice) without its target delimiter (the leading space).
double choice_length(const std::string& choice) {
  const auto first = choice.find_first_not_of(" \t\n\r");
  return first == std::string::npos ? 1.0 : double(choice.size() - first);
}

}  // namespace

LogProbFn log_probs_from_logits(LogitsFn logits_fn) {
  return [fn = std::move(logits_fn)](const torch::Tensor& ids, const torch::Tensor& mask,
                                     const torch::Tensor& labels) {
    const auto B = ids.size(0), T = ids.size(1);
    auto logits = fn(ids, mask);
    if (logits.dim() != 3 || logits.size(0) != B || logits.size(1) != T)
      throw Error("multiple choice: the logits function returned shape " +
                  std::string(c10::str(logits.sizes())) + " for input (" + std::to_string(B) +
                  ", " + std::to_string(T) + ")");
    // log p(label) = its logit - logsumexp, without a (B, T, V) log_softmax copy.
    auto lg = logits.slice(1, 0, T - 1).to(torch::kFloat);
    auto next = labels.slice(1, 1).clamp_min(0).to(lg.device()).unsqueeze(-1);
    return (lg.gather(2, next).squeeze(-1) - lg.logsumexp(-1)).to(torch::kCPU);
  };
}

std::vector<std::vector<double>> mc_loglikelihoods(const std::vector<McItem>& items,
                                                   const LogitsFn& logits, const Tokenizer& tok,
                                                   int64_t batch, int64_t max_len) {
  return mc_loglikelihoods(items, log_probs_from_logits(logits), tok, batch, max_len);
}

McScore score_mc(const std::string& task, const std::vector<McItem>& items, const LogitsFn& logits,
                 const Tokenizer& tok, int64_t batch, int64_t max_len) {
  return score_mc(task, items, log_probs_from_logits(logits), tok, batch, max_len);
}

std::vector<std::vector<double>> mc_loglikelihoods(const std::vector<McItem>& items,
                                                   const LogProbFn& log_probs, const Tokenizer& tok,
                                                   int64_t batch, int64_t max_len) {
  if (batch < 1)
    throw Error("multiple choice: batch must be at least 1, got " + std::to_string(batch));
  if (max_len < 2)
    throw Error("multiple choice: max length must be at least 2, got " + std::to_string(max_len));
  check_items("", items);
  torch::NoGradGuard no_grad;
  std::vector<Request> requests;
  std::vector<std::vector<double>> out(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    out[i].assign(items[i].choices.size(), 0.0);
    for (size_t c = 0; c < items[i].choices.size(); ++c) {
      requests.push_back(make_request(items[i], i, c, tok, max_len));
    }
  }
  // Longest first, as lm-eval orders them: batches of similar lengths pad little.
  std::vector<const Request*> order;
  for (const auto& r : requests) order.push_back(&r);
  std::stable_sort(order.begin(), order.end(), [](const Request* a, const Request* b) {
    return a->ids.size() > b->ids.size();
  });
  const auto& sp = tok.special();
  const int64_t pad_id = sp.pad >= 0 ? sp.pad : (sp.eos >= 0 ? sp.eos : 0);
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch)) {
    const auto stop = std::min(order.size(), start + static_cast<size_t>(batch));
    const std::vector<const Request*> chunk(order.begin() + static_cast<std::ptrdiff_t>(start),
                                            order.begin() + static_cast<std::ptrdiff_t>(stop));
    const auto lls = score_batch(chunk, log_probs, pad_id);
    for (size_t k = 0; k < chunk.size(); ++k) out[chunk[k]->item][chunk[k]->choice] = lls[k];
  }
  return out;
}

McScore score_mc(const std::string& task, const std::vector<McItem>& items,
                 const LogProbFn& log_probs, const Tokenizer& tok, int64_t batch, int64_t max_len) {
  check_items(task, items);  // before any model call, naming the task
  const auto lls = mc_loglikelihoods(items, log_probs, tok, batch, max_len);
  McScore score;
  score.task = task;
  score.items = items.size();
  size_t hits = 0, hits_norm = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    std::vector<double> norm(lls[i].size());
    for (size_t c = 0; c < norm.size(); ++c)
      norm[c] = lls[i][c] / choice_length(items[i].choices[c]);
    const auto answer = static_cast<size_t>(items[i].answer);
    const bool right = argmax(lls[i]) == answer;
    hits += right;
    score.correct += right ? '1' : '0';
    hits_norm += argmax(norm) == answer;
  }
  if (!items.empty()) {
    score.acc = double(hits) / double(items.size());
    score.acc_norm = double(hits_norm) / double(items.size());
  }
  return score;
}

namespace {

// The one field among `names` that the object has; "" when none. Two of them is an error.
std::string pick_field(const nlohmann::json& j, std::initializer_list<const char*> names,
                       const std::function<Error(const std::string&)>& bad) {
  std::string found;
  for (const char* n : names)
    if (j.contains(n)) {
      if (!found.empty()) throw bad("has both \"" + found + "\" and \"" + n + "\"");
      found = n;
    }
  return found;
}

std::vector<std::string> read_choices(const nlohmann::json& j,
                                      const std::function<Error(const std::string&)>& bad) {
  const auto it = j.find("choices");
  if (it == j.end()) throw bad("missing field \"choices\"");
  if (!it->is_array())
    throw bad(std::string("field \"choices\" is not an array (got ") + it->type_name() + ")");
  if (it->size() < 2)
    throw bad("field \"choices\" needs at least 2 choices, got " + std::to_string(it->size()));
  std::vector<std::string> choices;
  for (size_t c = 0; c < it->size(); ++c) {
    const auto& v = (*it)[c];
    const auto label = "choice " + std::to_string(c);
    if (!v.is_string())
      throw bad(label + " is not a string (got " + std::string(v.type_name()) + ")");
    auto s = v.get<std::string>();
    if (is_blank(s)) throw bad(label + " is empty");
    for (size_t d = 0; d < choices.size(); ++d)
      if (choices[d] == s)
        throw bad("choices " + std::to_string(d) + " and " + std::to_string(c) + " are the same");
    choices.push_back(std::move(s));
  }
  return choices;
}

McItem parse_item(const nlohmann::json& j, const std::function<Error(const std::string&)>& bad) {
  if (!j.is_object()) throw bad(std::string("not a JSON object (got ") + j.type_name() + ")");
  McItem item;
  const auto ctx = pick_field(j, {"context", "query", "question"}, bad);
  if (ctx.empty()) throw bad("missing field \"context\" (or \"query\" / \"question\")");
  const auto& c = j.at(ctx);
  if (!c.is_string())
    throw bad("field \"" + ctx + "\" is not a string (got " + std::string(c.type_name()) + ")");
  item.context = c.get<std::string>();
  if (is_blank(item.context)) throw bad("field \"" + ctx + "\" is empty");
  item.choices = read_choices(j, bad);
  const auto ans = pick_field(j, {"answer", "gold", "label"}, bad);
  if (ans.empty()) throw bad("missing field \"answer\" (or \"gold\" / \"label\")");
  const auto& a = j.at(ans);
  if (!a.is_number_integer())
    throw bad("field \"" + ans + "\" is not an integer (got " + std::string(a.type_name()) + ")");
  item.answer = a.get<int64_t>();
  if (item.answer < 0 || item.answer >= static_cast<int64_t>(item.choices.size()))
    throw bad("field \"" + ans + "\" = " + std::to_string(item.answer) + " is out of range for " +
              std::to_string(item.choices.size()) + " choices");
  return item;
}

}  // namespace

std::vector<McItem> read_jsonl_multiple_choice(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw error_at(path, "cannot open multiple-choice file");
  std::vector<McItem> out;
  std::string line;
  for (size_t lineno = 1; std::getline(in, line); ++lineno) {
    if (is_blank(line)) continue;
    const auto where = path + ":" + std::to_string(lineno);
    const std::function<Error(const std::string&)> bad = [&](const std::string& what) {
      return error_at(where, what);
    };
    const auto j = parse_jsonl_line(line, where);
    out.push_back(parse_item(j, bad));
    out.back().id = where;
  }
  if (out.empty()) throw error_at(path, "no items (the file is empty or has only blank lines)");
  return out;
}

}  // namespace gt
