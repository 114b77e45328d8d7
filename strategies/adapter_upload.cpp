// See adapter_upload.hpp.
#include "strategies/adapter_upload.hpp"

#include "common/error.hpp"
#include "models/adapter_io.hpp"
#include "protocols/codec.hpp"
#include "protocols/wire_tensor.hpp"

namespace gt {

NamedTensors trainable_adapters(const Segments& seg) {
  NamedTensors out;
  for (auto& [name, t] : adapter_parameters(seg, true)) out[name] = t;
  return out;
}

NamedTensors snapshot_adapters(const Segments& seg) {
  NamedTensors out;
  for (auto& [name, t] : adapter_parameters(seg, true)) out[name] = t.clone();
  return out;
}

AdapterUpload make_adapter_upload(const Segments& seg, const NamedTensors& reference, bool delta,
                                  QuantScheme scheme) {
  AdapterUpload up;
  up.delta = delta;
  for (auto& [name, value] : trainable_adapters(seg)) {
    torch::Tensor v = value;
    if (delta) {
      auto it = reference.find(name);
      if (it == reference.end()) throw Error("no pretrained value of '" + name + "' for a delta");
      v = value - it->second;
    }
    up.tensors.push_back({name, to_wire(v.to(torch::kFloat), scheme)});
  }
  return up;
}

NamedTensors reconstruct_upload(const AdapterUpload& upload, const NamedTensors& reference,
                                const NamedTensors& expected) {
  NamedTensors out;
  for (const auto& t : upload.tensors) {
    auto it = expected.find(t.name);
    if (it == expected.end())
      throw ProtocolError("adapters_up: '" + t.name + "' is not a trainable adapter parameter");
    if (out.count(t.name)) throw ProtocolError("adapters_up: '" + t.name + "' sent twice");
    auto value = from_wire(t.value, t.name.c_str(), it->second.sizes().vec());
    if (!torch::isfinite(value).all().item<bool>())
      throw ProtocolError("adapters_up: '" + t.name + "' contains NaN or infinity");
    if (upload.delta) {
      auto ref = reference.find(t.name);
      if (ref == reference.end())
        throw ProtocolError("adapters_up: no pretrained value of '" + t.name + "' for a delta");
      value = ref->second.to(torch::kFloat) + value.to(ref->second.device());
    }
    // On the device and in the dtype of the parameter it will be assigned to.
    out[t.name] = value.to(it->second.device(), it->second.scalar_type());
  }
  if (out.size() != expected.size())
    throw ProtocolError("adapters_up: " + std::to_string(out.size()) + " of " +
                        std::to_string(expected.size()) + " adapter tensors sent");
  return out;
}

void assign_adapters(const NamedTensors& params, const NamedTensors& values) {
  torch::NoGradGuard no_grad;
  for (auto& [name, value] : values) params.at(name).copy_(value);
}

AdapterUpload average_uploads(const std::vector<AdapterUpload>& uploads,
                              const std::vector<double>& weights) {
  if (uploads.empty() || uploads.size() != weights.size())
    throw Error("FedAvg: need one weight per upload");
  double total = 0;
  for (double w : weights) total += w;
  AdapterUpload avg;
  for (size_t i = 0; i < uploads[0].tensors.size(); ++i) {
    const auto& name = uploads[0].tensors[i].name;
    torch::Tensor sum;
    for (size_t c = 0; c < uploads.size(); ++c) {
      if (uploads[c].delta || uploads[c].tensors.size() != uploads[0].tensors.size() ||
          uploads[c].tensors[i].name != name)
        throw Error("FedAvg: clients hold different adapters");
      auto v = from_wire(uploads[c].tensors[i].value, name.c_str()) * (weights[c] / total);
      sum = sum.defined() ? sum + v : v;
    }
    avg.tensors.push_back({name, to_wire(sum)});
  }
  return avg;
}

}  // namespace gt
