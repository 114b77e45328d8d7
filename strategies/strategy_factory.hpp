// Builds a client strategy by name, with its wrappers: what `online`,
// `gradfree`, `offsite` ... mean on the client, in one place.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "protocols/compression.hpp"
#include "strategies/client_strategy.hpp"
#include "strategies/wire_quantization.hpp"

namespace gt {

// How an offline design returns its adapters.
struct UploadFormat {
  bool delta = false;                      // (tuned - pretrained) instead of values
  QuantScheme scheme = QuantScheme::none;  // of what is sent
};

struct StrategySettings {
  WireSchemes online;  // online's wire quantization
  // The privacy objective a client model gets when it has none yet (ClientModel::privacy):
  // what privatize and online train against. Clients made by apps/ set it from the config.
  PrivacyOptions privacy;
  double noise_std = 0;  // Gaussian noise on a1 (online, gradfree)
  double g2_noise = 0;   // relative Gaussian noise on g2 rows (online)
  uint64_t seed = 0;     // of the noise
  bool gradfree_cache = true;
  int64_t micro_batches = 1;  // split and online: pipelined steps (client_strategy.hpp)
  // online: the client estimates g1 through the privatize phase's emulator and sends no g2
  bool local_backward = false;
  bool privatize_output = true;  // privatize: the output adapter trains too (privatize_client.hpp)
  Compression compression = Compression::none;  // of every message, both ways
  std::map<std::string, UploadFormat> uploads{{"offsite", {}},
                                              {"offline", {true, QuantScheme::int8}}};
};

// Client strategies this factory knows (centralized runs without a server and is not one).
bool is_client_strategy(const std::string& name);
// Whether the strategy trains against an emulator it must download first (offsite, offline,
// and privatize, whose stand-in backbone it is).
bool needs_emulator(const std::string& name);
// The builder recipe whose emulator `name` needs under these settings ("" = none): its own for
// those above, and the privatize phase's for online with a local backward.
std::string emulator_recipe(const std::string& name, const StrategySettings& settings);
// Throws gt::Error for an unknown name, or a missing emulator where one is needed. Gives
// `model` a privacy objective from settings.privacy when it has none.
std::unique_ptr<ClientStrategy> make_client_strategy(const std::string& name,
                                                     std::shared_ptr<ClientModel> model,
                                                     const StrategySettings& settings,
                                                     Backbone emulator = nullptr);

}  // namespace gt
