// The one tensor codec: dtype, shape, quantization scheme and its parameters,
// payload bytes. What a party sends is exactly what the receiver decodes.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "privacy/quantization.hpp"

namespace gt {

enum class WireDtype : uint8_t { f32 = 0, f16 = 1, bf16 = 2, i64 = 3 };

struct WireTensor {
  WireDtype dtype =
      WireDtype::f32;  // of the payload when scheme == none; f32 after dequantization otherwise
  QuantScheme scheme = QuantScheme::none;
  std::vector<int64_t> shape;
  std::vector<float> scale, zero;  // per row, quantized schemes only
  std::vector<uint8_t> payload;    // raw little-endian values, or quantization codes

  int64_t numel() const;
  // Bytes of values + quantization parameters (what the data costs, without framing).
  int64_t data_bytes() const;
};

// Encodes `x` (detached, moved to CPU). With a quantized scheme the values are
// per-token quantized (privacy/quantization.hpp); otherwise sent in `x`'s dtype.
WireTensor to_wire(const torch::Tensor& x, QuantScheme scheme = QuantScheme::none);

// Decodes and validates (payload size against shape, dtype and scheme; row
// parameters; shape against `expected_shape` where given: -1 matches any size).
// Throws gt::ProtocolError (protocols/codec.hpp) naming `what` and the problem.
torch::Tensor from_wire(const WireTensor& w, const char* what,
                        const std::vector<int64_t>& expected_shape = {});
// The same, taking `w` over: an unquantized tensor then keeps the payload's
// memory instead of copying it (the receiver's path, bench/bench_codec).
torch::Tensor from_wire(WireTensor&& w, const char* what,
                        const std::vector<int64_t>& expected_shape = {});

}  // namespace gt
