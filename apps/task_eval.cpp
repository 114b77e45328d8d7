// See task_eval.hpp.
#include "apps/task_eval.hpp"

#include <spdlog/spdlog.h>

#include "data/multiple_choice.hpp"
#include "data/wordnet_tasks.hpp"
#include "models/device.hpp"
#include "models/tokenizer.hpp"

namespace gt::cli {
namespace {

// The full model through a client's cut: input adapter -> backbone -> output adapter, the
// head at the choices' tokens only (unless run.label_only_logits is off).
LogProbFn log_probs_of(Segments seg) {  // a copy: modules are shared, the holders not const
  return [seg](const torch::Tensor& cpu_ids, const torch::Tensor& cpu_mask,
               const torch::Tensor& labels) mutable {
    torch::NoGradGuard no_grad;
    const auto ids = cpu_ids.to(seg.device()), mask = cpu_mask.to(seg.device());
    auto ctx = make_attention_context(seg.cfg, mask, seg.dtype);
    auto a2 = seg.backbone->forward(seg.input->forward(ids, mask, ctx), ctx);
    return seg.output->label_log_probs(a2, ctx, labels);
  };
}

nlohmann::json score_json(const McScore& s) {
  return {{"acc", s.acc}, {"acc_norm", s.acc_norm}, {"items", s.items}, {"correct", s.correct}};
}

}  // namespace

nlohmann::json evaluate_tasks(const RunConfig& cfg, const std::vector<ClientSide>& clients,
                              bool show_progress) {
  const auto& e = cfg.evaluation;
  if (e.tasks.empty()) return nullptr;
  auto tokenizer = Tokenizer::from_dir(cfg.model.path);
  auto pretrained_model = load_decoder(cfg.model.path, parse_dtype(cfg.model.dtype));
  auto pretrained = split_model(pretrained_model, {cfg.model.n_in, cfg.model.n_out});
  to_device(pretrained, parse_device(cfg.run.device));
  set_compute_options(pretrained, cfg.run.packed_batches, cfg.run.label_only_logits);
  auto out = nlohmann::json::array();
  for (const auto& name : e.tasks) {
    auto task = wordnet_mc_task(name, cfg.data.wordnet_dir, size_t(e.items));
    if (show_progress) spdlog::info("evaluation: {} ({} test items)", name, task.test.size());
    nlohmann::json row = {
        {"task", name},
        {"zero_shot", score_json(score_mc(name, task.test, log_probs_of(pretrained), tokenizer))},
        {"tuned", nlohmann::json::array()}};
    for (const auto& c : clients) {
      auto j = score_json(score_mc(name, task.test, log_probs_of(c.seg()), tokenizer));
      j["client"] = c.name;
      row["tuned"].push_back(j);
    }
    out.push_back(row);
  }
  return {{"items", e.items}, {"tasks", out}};
}

}  // namespace gt::cli
