// See strategy_factory.hpp.
#include "strategies/strategy_factory.hpp"

#include "common/error.hpp"
#include "strategies/gradfree_client.hpp"
#include "strategies/offline_client.hpp"
#include "strategies/split_client.hpp"

namespace gt {
namespace {

std::unique_ptr<ClientStrategy> with_noise(std::unique_ptr<ClientStrategy> s,
                                           const StrategySettings& settings) {
  if (settings.noise_std <= 0) return s;
  return std::make_unique<GaussianNoise>(std::move(s), settings.noise_std, settings.seed);
}

}  // namespace

bool is_client_strategy(const std::string& name) {
  return name == "split" || name == "online" || name == "gradfree" || needs_emulator(name);
}

bool needs_emulator(const std::string& name) {
  return name == "offsite" || name == "offline";
}

std::unique_ptr<ClientStrategy> make_client_strategy(const std::string& name,
                                                     std::shared_ptr<ClientModel> model,
                                                     const StrategySettings& settings,
                                                     Backbone emulator) {
  if (name == "split")
    return std::make_unique<SplitClient>(model, "split", 0, settings.micro_batches);
  if (name == "online")
    return std::make_unique<WireQuantization>(
        with_noise(std::make_unique<SplitClient>(model, "online", settings.dcor_lambda,
                                                 settings.micro_batches),
                   settings),
        settings.online);
  if (name == "gradfree")
    return with_noise(std::make_unique<GradfreeClient>(model, settings.gradfree_cache), settings);
  if (needs_emulator(name)) {
    if (!emulator) throw Error(name + ": needs an emulator from the emulator builder");
    return std::make_unique<OfflineClient>(model, emulator, name);
  }
  throw Error("unknown client strategy '" + name +
              "' (known: split, online, gradfree, offsite, offline)");
}

}  // namespace gt
