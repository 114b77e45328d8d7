// See shadow_client.hpp.
#include "apps/shadow_client.hpp"

#include <spdlog/spdlog.h>

#include <memory>

#include "apps/parties.hpp"
#include "data/lm_dataset.hpp"
#include "models/emulator.hpp"
#include "strategies/emulator_distillation.hpp"
#include "strategies/privatize_client.hpp"

namespace gt::cli {

Segments shadow_adapters(const RunConfig& cfg, const BatchSource& public_text, uint64_t seed,
                         DecoderLM& model, bool show_progress) {
  auto seg = load_adapter_model(cfg, model);
  coarsen_client_inputs(cfg, seg);  // public: the shadow coarsens exactly as the client does
  auto shadow = std::make_shared<ClientModel>();
  shadow->seg = seg;
  shadow->grad_clip = cfg.optimizer.grad_clip;
  shadow->optimizer =
      make_optimizer(cfg.optimizer, unique_parameters({seg.input.get(), seg.output.get()}));
  shadow->privacy = std::make_shared<PrivacyObjective>(
      seg.input->embed->token_embedding(), seg.cfg.hidden_size, privacy_options(cfg, seed));
  if (!shadow->privacy->active()) return seg;

  // Each phase that trains a1 against the objective, against the backbone it used there.
  EmulatorOptions emu;
  emu.keep_every = cfg.offsite.keep_every;
  // The client's step counts (a curious server sees them); epochs over its data size.
  const auto phases = phase_orders(
      cfg, cfg.data.train_examples > 0 ? size_t(cfg.data.train_examples) : public_text.size());
  int64_t total = 0;
  for (const auto& p : phases)
    if (p.strategy == "privatize" || p.strategy == "online") total += p.steps;
  if (total == 0) return seg;
  std::unique_ptr<Progress> progress;
  if (show_progress) progress = std::make_unique<Progress>("attacker's shadow privatizes", total);
  int64_t done = 0, epoch = 0;
  auto order = epoch_order(public_text.size(), seed, epoch);
  size_t cursor = 0;
  double last_loss = 0;
  Backbone emulator{nullptr};  // built once, from the pretrained adapters, as the builder does
  for (const auto& p : phases) {
    if (p.strategy != "privatize" && p.strategy != "online") continue;
    // Online trains a1 through the real backbone, or through the emulator with a local backward.
    Backbone stand_in = seg.backbone;
    if (p.strategy == "privatize" || cfg.strategy.backward == "local") {
      if (!emulator) {
        emulator = build_emulator(seg, emu);
        if (cfg.offsite.distill_steps > 0) {  // as the builder distils, on the attacker's text
          DistillOptions d{cfg.offsite.distill_steps, cfg.emulator.distill_lr,
                           cfg.emulator.distill_batch, seed};
          distill_emulator(emulator, seg, public_text, d);
        }
      }
      stand_in = emulator;
    }
    PrivatizeClient client(shadow, stand_in, cfg.privacy.privatize_output);
    for (int64_t step = 0; step < p.steps; ++step) {
      StepInput in;
      while (int64_t(in.samples.size()) < cfg.training.batch) {
        if (cursor == order.size())
          order = epoch_order(public_text.size(), seed, ++epoch), cursor = 0;
        in.samples.push_back(order[cursor++]);
      }
      in.batch = public_text.batch(in.samples);
      last_loss = std::get<StepOutcome>(client.begin_step(in)).loss;
      if (progress) progress->update(++done, "loss " + std::to_string(last_loss).substr(0, 6));
    }
  }
  if (progress) progress->finish("");
  spdlog::info("attacker: shadow client privatized over {} steps of public text (loss {:.3f})",
               total, last_loss);
  for (auto& p : seg.input->parameters()) p.requires_grad_(false);
  for (auto& p : seg.output->parameters()) p.requires_grad_(false);
  return seg;
}

}  // namespace gt::cli
