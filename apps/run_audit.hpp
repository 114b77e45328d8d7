// What a simulation can measure after the run that no party could measure alone: membership
// inference on the adapters an offsite/offline client returned (the server holds them; only
// the simulation knows which examples were members), and each client's memory.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "apps/parties.hpp"

namespace gt::cli {

// The training examples a client's first `steps` steps used: the client draws batches from
// epoch_order(shard, seed, 0), then epoch 1, ... (actors/client.cpp), so they are known here.
std::vector<size_t> trained_examples(size_t shard_size, uint64_t seed, int64_t steps,
                                     int64_t batch);

// Per client: [{client, auc, advantage, members, non_members}], members being up to
// `max_samples` examples the client trained on and non-members as many of its held-out ones,
// scored with the pretrained model as reference (privacy/attacks/membership.hpp).
nlohmann::json membership_report(const RunConfig& cfg, const std::vector<ClientSide>& clients,
                                 int64_t steps_per_client, size_t max_samples = 128);

// The memory a client holds for tuning: {parameters_bytes (its adapters), gradient_bytes
// (trainable ones), optimizer_bytes (optimizer state), emulator_bytes (given), total_bytes}.
// Activations are not counted.
nlohmann::json client_memory(const ClientSide& client, int64_t emulator_bytes);

}  // namespace gt::cli
