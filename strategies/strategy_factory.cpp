// See strategy_factory.hpp.
#include "strategies/strategy_factory.hpp"

#include "common/error.hpp"
#include "strategies/gradfree_client.hpp"
#include "strategies/offline_client.hpp"
#include "strategies/privatize_client.hpp"
#include "strategies/split_client.hpp"

namespace gt {
namespace {

std::unique_ptr<ClientStrategy> with_noise(std::unique_ptr<ClientStrategy> s,
                                           const StrategySettings& settings) {
  if (settings.noise_std <= 0) return s;
  return std::make_unique<GaussianNoise>(std::move(s), settings.noise_std, settings.seed);
}

std::unique_ptr<ClientStrategy> with_gradient_noise(std::unique_ptr<ClientStrategy> s,
                                                    const StrategySettings& settings) {
  if (settings.g2_noise <= 0) return s;
  // Its own stream, apart from a1's noise: a seed the a1 noise never uses.
  return std::make_unique<GradientNoise>(std::move(s), settings.g2_noise,
                                         settings.seed ^ 0x6732'6e6f'6973'6521ULL);
}

}  // namespace

bool is_client_strategy(const std::string& name) {
  return name == "split" || name == "online" || name == "gradfree" || needs_emulator(name);
}

bool needs_emulator(const std::string& name) {
  return name == "offsite" || name == "offline" || name == "privatize";
}

std::string emulator_recipe(const std::string& name, const StrategySettings& settings) {
  if (needs_emulator(name)) return name;
  if (name == "online" && settings.local_backward) return "privatize";
  return "";
}

std::unique_ptr<ClientStrategy> make_client_strategy(const std::string& name,
                                                     std::shared_ptr<ClientModel> model,
                                                     const StrategySettings& settings,
                                                     Backbone emulator) {
  if (!model->privacy)
    model->privacy = std::make_shared<PrivacyObjective>(
        model->seg.input->embed->token_embedding(), model->seg.cfg.hidden_size, settings.privacy);
  if (name == "split")
    return std::make_unique<SplitClient>(model, "split", false, settings.micro_batches);
  if (name == "online") {
    if (settings.local_backward && !emulator)
      throw Error("online: a local backward needs the privatize phase's emulator");
    return std::make_unique<WireQuantization>(
        with_gradient_noise(
            with_noise(std::make_unique<SplitClient>(model, "online", true, settings.micro_batches,
                                                     settings.local_backward ? emulator : nullptr),
                       settings),
            settings),
        settings.online);
  }
  if (name == "gradfree")
    return with_noise(std::make_unique<GradfreeClient>(model, settings.gradfree_cache), settings);
  if (needs_emulator(name)) {
    if (!emulator) throw Error(name + ": needs an emulator from the emulator builder");
    if (name == "privatize")
      return std::make_unique<PrivatizeClient>(model, emulator, settings.privatize_output);
    return std::make_unique<OfflineClient>(model, emulator, name);
  }
  throw Error("unknown client strategy '" + name +
              "' (known: split, online, gradfree, offsite, offline, privatize)");
}

}  // namespace gt
