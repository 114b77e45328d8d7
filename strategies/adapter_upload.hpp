// Adapters on the wire: the client's upload when an offline phase ends (full
// values, as Offsite-Tuning sends them, or quantized deltas against the
// pretrained adapters both sides hold), its reconstruction, which the server
// (plugging) and the client (adopting) compute identically, and FedAvg.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "models/segments.hpp"
#include "privacy/quantization.hpp"
#include "protocols/messages.hpp"

namespace gt {

using NamedTensors = std::map<std::string, torch::Tensor>;

// The adapters' trainable parameters by HuggingFace name (detached, shared storage).
NamedTensors trainable_adapters(const Segments& seg);
// Deep copies of the same: the pretrained reference a delta is taken against.
NamedTensors snapshot_adapters(const Segments& seg);

// delta = true sends (value - reference) in `scheme`; every name must be in `reference`.
AdapterUpload make_adapter_upload(const Segments& seg, const NamedTensors& reference, bool delta,
                                  QuantScheme scheme);
// The values an upload stands for, checked against `expected` (names and shapes
// of the receiver's parameters); throws ProtocolError naming the bad tensor.
NamedTensors reconstruct_upload(const AdapterUpload& upload, const NamedTensors& reference,
                                const NamedTensors& expected);
// Copies values into same-named parameters (no autograd).
void assign_adapters(const NamedTensors& params, const NamedTensors& values);

// FedAvg: the weighted mean of full-value uploads (weights > 0, e.g. sample counts).
AdapterUpload average_uploads(const std::vector<AdapterUpload>& uploads,
                              const std::vector<double>& weights);

}  // namespace gt
