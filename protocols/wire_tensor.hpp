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
  std::vector<int64_t> shape;  // of the whole tensor, rows left out included
  // Which rows (all dimensions but the last) are sent: bit r % 8 of byte r / 8. Empty: all
  // of them. The rows left out (a batch's padded positions) decode as zeros.
  std::vector<uint8_t> rows;
  std::vector<float> scale, zero;  // per row sent, quantized schemes only
  std::vector<uint8_t> payload;    // the rows sent: raw little-endian values, or quantization codes

  int64_t numel() const;  // of the whole tensor
  // Bytes of values + quantization parameters + row bitmap (what the data costs, without
  // framing).
  int64_t data_bytes() const;
};

// A tensor unpacks to at most this many times the rows it sends; beyond that `to_wire`
// sends every row (and `from_wire` refuses such a message: it would be an amplifier).
inline constexpr int64_t kMaxRowsPerSentRow = 256;

// Encodes `x` (detached, moved to CPU). With a quantized scheme the values are
// per-token quantized (privacy/quantization.hpp); otherwise sent in `x`'s dtype.
// `rows_sent`, where given, has x's shape without the last dimension (e.g. the (B, T)
// attention mask of a (B, T, C) activation): rows where it is 0 are left out. The
// receiver sees zeros there, so leave out only rows whose values nobody uses (padding).
WireTensor to_wire(const torch::Tensor& x, QuantScheme scheme = QuantScheme::none,
                   const torch::Tensor& rows_sent = {});

// Decodes and validates (payload size against shape, rows, dtype and scheme; row
// parameters; shape against `expected_shape` where given: -1 matches any size).
// Throws gt::ProtocolError (protocols/codec.hpp) naming `what` and the problem.
torch::Tensor from_wire(const WireTensor& w, const char* what,
                        const std::vector<int64_t>& expected_shape = {});
// The same, taking `w` over: an unquantized tensor with every row sent then keeps the
// payload's memory instead of copying it (the receiver's path, bench/bench_codec).
torch::Tensor from_wire(WireTensor&& w, const char* what,
                        const std::vector<int64_t>& expected_shape = {});

}  // namespace gt
