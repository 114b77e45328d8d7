// Per-token asymmetric affine quantization of wire tensors (int8, int4, int2) and its
// straight-through fake-quantization for training.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace gt {

enum class QuantScheme : uint8_t { none = 0, int8 = 1, int4 = 2, int2 = 3 };

QuantScheme parse_quant_scheme(const std::string& name);  // "none" | "int8" | "int4" | "int2"
const char* to_string(QuantScheme scheme);
int bits(QuantScheme scheme);  // 32 for none (fp32), 8, 4, 2
// Whether a byte off the wire names a scheme (any of the above).
bool is_quant_scheme(uint8_t code);

// A quantized tensor as the wire codec carries it. A "row" is one token: the last
// dimension; rows = product of all other dimensions (1 for rank 1).
//   lo = min(x_r), hi = max(x_r), scale = (hi - lo) / (2^bits - 1), zero = lo
//   code = clamp(round((x - lo) / scale), 0, 2^bits - 1), x_hat = code * scale + zero
// A constant row (hi == lo) gets scale 1 and codes 0, so it decodes exactly.
struct QuantizedTensor {
  QuantScheme scheme = QuantScheme::int8;
  std::vector<int64_t> shape;  // original shape, rank >= 1
  // uint8, contiguous, 1-D. int8: one code per byte (numel bytes); int4 / int2: two / four
  // codes per byte over the row-major flattening, lowest bits first, ceil(numel * bits / 8)
  // bytes.
  torch::Tensor codes;
  torch::Tensor scale, zero;  // float32, (rows)
};

// x: floating point (float32/16/bf16; computed in fp32), rank >= 1; scheme != none.
// Throws gt::Error for non-finite values. Results live on x's device.
QuantizedTensor quantize(const torch::Tensor& x, QuantScheme scheme);

// float32 in the original shape; throws gt::Error when codes/scale/zero do not fit shape.
torch::Tensor dequantize(const QuantizedTensor& q);

// Forward: dequantize(quantize(x)) in x's dtype (what the receiver sees); backward:
// identity (straight-through estimator). scheme none returns x itself.
torch::Tensor fake_quantize(const torch::Tensor& x, QuantScheme scheme);

// Wire payload bytes for a tensor of this shape: codes + 4-byte scale + 4-byte zero per
// row; for none, the plain fp32 payload (4 bytes per element).
int64_t quantized_payload_bytes(const std::vector<int64_t>& shape, QuantScheme scheme);

// Number of rows (tokens) of a shape: the product of all but the last dimension.
int64_t quantized_rows(const std::vector<int64_t>& shape);

}  // namespace gt
