// WireTensor <-> torch::Tensor.
#include "protocols/wire_tensor.hpp"

#include <cstring>

#include "protocols/codec.hpp"

namespace gt {
namespace {

size_t itemsize(WireDtype d) {
  switch (d) {
    case WireDtype::f32:
      return 4;
    case WireDtype::f16:
    case WireDtype::bf16:
      return 2;
    case WireDtype::i64:
      return 8;
  }
  return 0;
}

torch::ScalarType to_scalar(WireDtype d) {
  switch (d) {
    case WireDtype::f16:
      return torch::kHalf;
    case WireDtype::bf16:
      return torch::kBFloat16;
    case WireDtype::i64:
      return torch::kLong;
    default:
      return torch::kFloat;
  }
}

WireDtype from_scalar(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat:
      return WireDtype::f32;
    case torch::kHalf:
      return WireDtype::f16;
    case torch::kBFloat16:
      return WireDtype::bf16;
    case torch::kLong:
      return WireDtype::i64;
    default:
      throw ProtocolError("cannot send tensors of dtype " + std::string(c10::toString(t)));
  }
}

std::string shape_str(const std::vector<int64_t>& s) {
  return c10::str(c10::IntArrayRef(s));
}

}  // namespace

int64_t WireTensor::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

int64_t WireTensor::data_bytes() const {
  return static_cast<int64_t>(payload.size() + 4 * (scale.size() + zero.size()));
}

WireTensor to_wire(const torch::Tensor& x, QuantScheme scheme) {
  auto t = x.detach().to(torch::kCPU).contiguous();
  WireTensor w;
  w.shape = t.sizes().vec();
  w.scheme = scheme;
  if (scheme == QuantScheme::none) {
    w.dtype = from_scalar(t.scalar_type());
    const auto* data = static_cast<const uint8_t*>(t.data_ptr());
    w.payload.assign(data, data + static_cast<size_t>(t.numel()) * itemsize(w.dtype));
    return w;
  }
  auto q = quantize(t, scheme);
  w.dtype = WireDtype::f32;
  w.payload.assign(q.codes.data_ptr<uint8_t>(), q.codes.data_ptr<uint8_t>() + q.codes.numel());
  w.scale.assign(q.scale.data_ptr<float>(), q.scale.data_ptr<float>() + q.scale.numel());
  w.zero.assign(q.zero.data_ptr<float>(), q.zero.data_ptr<float>() + q.zero.numel());
  return w;
}

namespace {

// Checks shape, dtype and the expected shape; returns the rows (all dimensions
// but the last), which quantized tensors carry a scale and zero point for.
int64_t checked_rows(const WireTensor& w, const std::string& name,
                     const std::vector<int64_t>& expected) {
  // Every dimension and every partial product bounded, so numel and rows cannot overflow.
  int64_t numel = 1, rows = 1;
  for (size_t i = 0; i < w.shape.size(); ++i) {
    const auto d = w.shape[i];
    if (d < 0 || d > (int64_t(1) << 40) || __builtin_mul_overflow(numel, d, &numel) ||
        numel > (int64_t(1) << 40))
      throw ProtocolError(name + ": invalid shape " + shape_str(w.shape));
    if (i + 1 < w.shape.size()) rows *= d;  // rows = product of all but the last dimension
  }
  if (itemsize(w.dtype) == 0) throw ProtocolError(name + ": unknown dtype code");
  if (!expected.empty()) {
    bool ok = expected.size() == w.shape.size();
    for (size_t i = 0; ok && i < expected.size(); ++i)
      ok = expected[i] < 0 || expected[i] == w.shape[i];
    if (!ok)
      throw ProtocolError(name + ": shape " + shape_str(w.shape) +
                          " does not match the session's " + shape_str(expected));
  }
  if (w.scheme == QuantScheme::none) {
    const auto want = static_cast<uint64_t>(numel) * itemsize(w.dtype);
    if (w.payload.size() != want)
      throw ProtocolError(name + ": payload has " + std::to_string(w.payload.size()) +
                          " bytes, shape " + shape_str(w.shape) + " needs " + std::to_string(want));
  }
  return rows;
}

}  // namespace

torch::Tensor from_wire(WireTensor&& w, const char* what, const std::vector<int64_t>& expected) {
  if (w.scheme != QuantScheme::none || w.payload.empty())
    return from_wire(static_cast<const WireTensor&>(w), what, expected);
  checked_rows(w, what, expected);
  // The tensor owns the payload's buffer from here (operator new: aligned for any dtype sent).
  auto* payload = new std::vector<uint8_t>(std::move(w.payload));
  return torch::from_blob(
      payload->data(), w.shape, [payload](void*) { delete payload; },
      torch::TensorOptions().dtype(to_scalar(w.dtype)));
}

torch::Tensor from_wire(const WireTensor& w, const char* what,
                        const std::vector<int64_t>& expected) {
  const std::string name(what);
  const int64_t rows = checked_rows(w, name, expected);
  if (w.scheme == QuantScheme::none) {
    auto t = torch::empty(w.shape, torch::TensorOptions().dtype(to_scalar(w.dtype)));
    if (!w.payload.empty()) std::memcpy(t.data_ptr(), w.payload.data(), w.payload.size());
    return t;
  }
  if (w.scheme != QuantScheme::int8 && w.scheme != QuantScheme::int4)
    throw ProtocolError(name + ": unknown quantization scheme");
  if (w.shape.empty()) throw ProtocolError(name + ": quantized tensor without shape");
  QuantizedTensor q;
  q.scheme = w.scheme;
  q.shape = w.shape;
  if (static_cast<int64_t>(w.scale.size()) != rows || static_cast<int64_t>(w.zero.size()) != rows)
    throw ProtocolError(name + ": " + std::to_string(w.scale.size()) + " row scales and " +
                        std::to_string(w.zero.size()) + " zero points for " + std::to_string(rows) +
                        " rows");
  if (static_cast<int64_t>(w.payload.size()) + 4 * 2 * rows !=
      quantized_payload_bytes(w.shape, w.scheme))
    throw ProtocolError(name + ": quantized payload has " + std::to_string(w.payload.size()) +
                        " bytes, wrong for shape " + shape_str(w.shape));
  auto u8 = torch::TensorOptions().dtype(torch::kUInt8);
  q.codes =
      torch::from_blob(const_cast<uint8_t*>(w.payload.data()), {int64_t(w.payload.size())}, u8)
          .clone();
  q.scale = torch::tensor(w.scale, torch::kFloat);
  q.zero = torch::tensor(w.zero, torch::kFloat);
  try {
    return dequantize(q);
  } catch (const std::exception& e) {
    throw ProtocolError(name + ": " + e.what());
  }
}

}  // namespace gt
