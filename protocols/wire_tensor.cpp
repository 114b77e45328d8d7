// WireTensor <-> torch::Tensor.
#include "protocols/wire_tensor.hpp"

#include <cstring>

#include "common/error.hpp"
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
  return static_cast<int64_t>(rows.size() + payload.size() + 4 * (scale.size() + zero.size()));
}

namespace {

// The rows of x to send: (rows, cols) with rows = all dimensions but the last.
// Returns the bitmap, or an empty one where every row goes (or packing would not pay).
std::vector<uint8_t> row_bitmap(const torch::Tensor& x, const torch::Tensor& rows_sent) {
  if (!rows_sent.defined()) return {};
  const auto want = x.sizes().slice(0, x.dim() - 1);
  if (x.dim() < 2 || rows_sent.sizes() != want)
    throw Error("to_wire: rows_sent has shape " + c10::str(rows_sent.sizes()) + ", expected " +
                c10::str(want));
  const auto keep = rows_sent.detach().to(torch::kCPU).reshape(-1).ne(0).contiguous();
  const int64_t n = keep.numel(), kept = keep.sum().item<int64_t>();
  if (kept == n || n > kMaxRowsPerSentRow * kept) return {};
  std::vector<uint8_t> bits(static_cast<size_t>((n + 7) / 8), 0);
  const auto* k = keep.data_ptr<bool>();
  for (int64_t r = 0; r < n; ++r)
    if (k[r]) bits[r / 8] |= static_cast<uint8_t>(1u << (r % 8));
  return bits;
}

// The bitmap as a bool tensor of `n` rows.
torch::Tensor bitmap_mask(const std::vector<uint8_t>& bits, int64_t n) {
  auto mask = torch::empty({n}, torch::kBool);
  auto* m = mask.data_ptr<bool>();
  for (int64_t r = 0; r < n; ++r) m[r] = (bits[r / 8] >> (r % 8)) & 1;
  return mask;
}

}  // namespace

WireTensor to_wire(const torch::Tensor& x, QuantScheme scheme, const torch::Tensor& rows_sent) {
  WireTensor w;
  w.shape = x.sizes().vec();
  w.scheme = scheme;
  w.rows = row_bitmap(x, rows_sent);
  auto t = x.detach().to(torch::kCPU);
  if (!w.rows.empty())
    t = t.reshape({-1, w.shape.back()}).index({bitmap_mask(w.rows, t.numel() / w.shape.back())});
  t = t.contiguous();
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

// What a checked message holds: its rows (all dimensions but the last), its columns
// (the last dimension) and the rows it sends.
struct Layout {
  int64_t rows = 1, cols = 1, sent = 1;
};

// Checks shape, dtype, row bitmap and the expected shape, and the payload of an
// unquantized tensor.
Layout checked_layout(const WireTensor& w, const std::string& name,
                      const std::vector<int64_t>& expected) {
  // Every dimension and every partial product bounded, so numel and rows cannot overflow.
  int64_t numel = 1;
  Layout l;
  for (size_t i = 0; i < w.shape.size(); ++i) {
    const auto d = w.shape[i];
    if (d < 0 || d > (int64_t(1) << 40) || __builtin_mul_overflow(numel, d, &numel) ||
        numel > (int64_t(1) << 40))
      throw ProtocolError(name + ": invalid shape " + shape_str(w.shape));
    if (i + 1 < w.shape.size()) l.rows *= d;
  }
  if (!w.shape.empty()) l.cols = w.shape.back();
  l.sent = l.rows;
  if (itemsize(w.dtype) == 0) throw ProtocolError(name + ": unknown dtype code");
  if (!expected.empty()) {
    bool ok = expected.size() == w.shape.size();
    for (size_t i = 0; ok && i < expected.size(); ++i)
      ok = expected[i] < 0 || expected[i] == w.shape[i];
    if (!ok)
      throw ProtocolError(name + ": shape " + shape_str(w.shape) +
                          " does not match the session's " + shape_str(expected));
  }
  if (!w.rows.empty()) {
    if (w.shape.size() < 2)
      throw ProtocolError(name + ": a row bitmap needs rank >= 2, shape is " + shape_str(w.shape));
    if (static_cast<int64_t>(w.rows.size()) != (l.rows + 7) / 8)
      throw ProtocolError(name + ": row bitmap has " + std::to_string(w.rows.size()) + " bytes, " +
                          std::to_string(l.rows) + " rows need " +
                          std::to_string((l.rows + 7) / 8));
    if (l.rows % 8 && (w.rows.back() >> (l.rows % 8)))
      throw ProtocolError(name + ": row bitmap marks rows past the last one");
    l.sent = 0;
    for (auto b : w.rows) l.sent += __builtin_popcount(b);
    if (l.rows > kMaxRowsPerSentRow * l.sent)
      throw ProtocolError(name + ": " + std::to_string(l.sent) + " of " + std::to_string(l.rows) +
                          " rows sent; at most " + std::to_string(kMaxRowsPerSentRow) +
                          " rows may unpack from each");
  }
  if (w.scheme == QuantScheme::none) {
    const auto want = static_cast<uint64_t>(l.sent * l.cols) * itemsize(w.dtype);
    if (w.payload.size() != want)
      throw ProtocolError(name + ": payload has " + std::to_string(w.payload.size()) +
                          " bytes, shape " + shape_str(w.shape) + " with " +
                          std::to_string(l.sent) + " rows sent needs " + std::to_string(want));
  }
  return l;
}

// The rows sent (sent x cols, or the whole shape when every row is sent), decoded.
torch::Tensor decode_rows(const WireTensor& w, const std::string& name, const Layout& l) {
  const auto shape = w.rows.empty() ? w.shape : std::vector<int64_t>{l.sent, l.cols};
  if (w.scheme == QuantScheme::none) {
    auto t = torch::empty(shape, torch::TensorOptions().dtype(to_scalar(w.dtype)));
    if (!w.payload.empty()) std::memcpy(t.data_ptr(), w.payload.data(), w.payload.size());
    return t;
  }
  if (w.scheme != QuantScheme::int8 && w.scheme != QuantScheme::int4 &&
      w.scheme != QuantScheme::int2)
    throw ProtocolError(name + ": unknown quantization scheme");
  if (w.shape.empty()) throw ProtocolError(name + ": quantized tensor without shape");
  QuantizedTensor q;
  q.scheme = w.scheme;
  q.shape = shape;
  const int64_t rows = l.sent;
  if (static_cast<int64_t>(w.scale.size()) != rows || static_cast<int64_t>(w.zero.size()) != rows)
    throw ProtocolError(name + ": " + std::to_string(w.scale.size()) + " row scales and " +
                        std::to_string(w.zero.size()) + " zero points for " + std::to_string(rows) +
                        " rows sent");
  if (static_cast<int64_t>(w.payload.size()) + 4 * 2 * rows !=
      quantized_payload_bytes(shape, w.scheme))
    throw ProtocolError(name + ": quantized payload has " + std::to_string(w.payload.size()) +
                        " bytes, wrong for shape " + shape_str(w.shape) + " with " +
                        std::to_string(rows) + " rows sent");
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

// Rows left out come back as zeros.
torch::Tensor unpack_rows(const WireTensor& w, const Layout& l, const torch::Tensor& sent) {
  auto full = torch::zeros({l.rows, l.cols}, sent.options());
  full.index_put_({bitmap_mask(w.rows, l.rows)}, sent);
  return full.view(w.shape);
}

}  // namespace

torch::Tensor from_wire(WireTensor&& w, const char* what, const std::vector<int64_t>& expected) {
  if (w.scheme != QuantScheme::none || w.payload.empty() || !w.rows.empty())
    return from_wire(static_cast<const WireTensor&>(w), what, expected);
  checked_layout(w, what, expected);
  // The tensor owns the payload's buffer from here (operator new: aligned for any dtype sent).
  auto* payload = new std::vector<uint8_t>(std::move(w.payload));
  return torch::from_blob(
      payload->data(), w.shape, [payload](void*) { delete payload; },
      torch::TensorOptions().dtype(to_scalar(w.dtype)));
}

torch::Tensor from_wire(const WireTensor& w, const char* what,
                        const std::vector<int64_t>& expected) {
  const std::string name(what);
  const auto layout = checked_layout(w, name, expected);
  auto sent = decode_rows(w, name, layout);
  return w.rows.empty() ? sent : unpack_rows(w, layout, sent);
}

}  // namespace gt
