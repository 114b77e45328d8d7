// Per-token affine quantization with tensor ops only (no per-element loops), so it
// runs at memory speed on CPU and GPU; int4 / int2 codes are packed two / four per byte.
#include "privacy/quantization.hpp"

#include <sstream>

#include "common/error.hpp"

namespace gt {
namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? "," : "") << shape[i];
  s << ']';
  return s.str();
}

// Element count of a shape that may come off the wire: rank >= 1, no negative
// dimension, no int64 overflow.
int64_t checked_numel(const std::vector<int64_t>& shape, const char* where) {
  if (shape.empty()) throw Error(std::string(where) + ": shape must have rank >= 1");
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n))
      throw Error(std::string(where) + ": invalid shape " + shape_string(shape));
  }
  return n;
}

// a * b for sizes, throwing instead of wrapping (shapes may be hostile).
int64_t checked_mul(int64_t a, int64_t b, const char* where) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) throw Error(std::string(where) + ": size overflows int64");
  return r;
}

int64_t codes_per_byte(QuantScheme scheme) {
  return 8 / bits(scheme);
}

int64_t code_bytes(int64_t numel, QuantScheme scheme) {
  const auto per = codes_per_byte(scheme);
  return numel / per + (numel % per ? 1 : 0);
}

int64_t levels(QuantScheme scheme) {
  return (int64_t{1} << bits(scheme)) - 1;
}

// Codes of `bits` bits, 8 / bits per byte: byte k holds code[per*k + j] at bit j * bits;
// a short tail pads with 0.
torch::Tensor pack_codes(torch::Tensor codes, int bits) {
  const int64_t per = 8 / bits;
  if (per == 1) return codes.contiguous();
  if (const auto tail = codes.numel() % per)
    codes = torch::cat({codes, torch::zeros({per - tail}, codes.options())});
  auto groups = codes.view({-1, per});
  auto bytes = groups.select(1, 0).clone();
  for (int64_t j = 1; j < per; ++j)
    bytes.bitwise_or_(torch::bitwise_left_shift(groups.select(1, j), j * bits));
  return bytes;
}

torch::Tensor unpack_codes(const torch::Tensor& bytes, int bits, int64_t numel) {
  const int64_t per = 8 / bits;
  if (per == 1) return bytes;
  std::vector<torch::Tensor> parts;
  for (int64_t j = 0; j < per; ++j)
    parts.push_back(torch::bitwise_right_shift(bytes, j * bits).bitwise_and((1 << bits) - 1));
  return torch::stack(parts, 1).view(-1).slice(0, 0, numel);
}

bool has_codes(QuantScheme scheme) {
  return scheme == QuantScheme::int8 || scheme == QuantScheme::int4 || scheme == QuantScheme::int2;
}

}  // namespace

QuantScheme parse_quant_scheme(const std::string& name) {
  if (name == "none") return QuantScheme::none;
  if (name == "int8") return QuantScheme::int8;
  if (name == "int4") return QuantScheme::int4;
  if (name == "int2") return QuantScheme::int2;
  throw Error("unknown quantization scheme '" + name + "' (allowed: none, int8, int4, int2)");
}

const char* to_string(QuantScheme scheme) {
  switch (scheme) {
    case QuantScheme::none:
      return "none";
    case QuantScheme::int8:
      return "int8";
    case QuantScheme::int4:
      return "int4";
    case QuantScheme::int2:
      return "int2";
  }
  return "invalid";
}

int bits(QuantScheme scheme) {
  switch (scheme) {
    case QuantScheme::none:
      return 32;
    case QuantScheme::int8:
      return 8;
    case QuantScheme::int4:
      return 4;
    case QuantScheme::int2:
      return 2;
  }
  throw Error("invalid quantization scheme " + std::to_string(static_cast<int>(scheme)));
}

bool is_quant_scheme(uint8_t code) {
  return code <= static_cast<uint8_t>(QuantScheme::int2);
}

int64_t quantized_rows(const std::vector<int64_t>& shape) {
  checked_numel(shape, "quantized_rows");
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i)
    rows = checked_mul(rows, shape[i], "quantized_rows");
  return rows;
}

QuantizedTensor quantize(const torch::Tensor& x, QuantScheme scheme) {
  if (!has_codes(scheme))
    throw Error(std::string("quantize: scheme ") + to_string(scheme) + " has no codes");
  if (!x.defined()) throw Error("quantize: undefined tensor");
  if (!x.is_floating_point())
    throw Error(std::string("quantize: expected a floating-point tensor, got ") +
                c10::toString(x.scalar_type()));
  if (x.dim() < 1) throw Error("quantize: expected rank >= 1, got a scalar");
  torch::NoGradGuard no_grad;

  QuantizedTensor q;
  q.scheme = scheme;
  q.shape = x.sizes().vec();
  const int64_t rows = quantized_rows(q.shape), cols = q.shape.back();
  const auto f32 = x.options().dtype(torch::kFloat32);
  if (x.numel() == 0) {  // nothing to encode; keep per-row metadata consistent
    q.codes = torch::empty({0}, x.options().dtype(torch::kUInt8));
    q.scale = torch::ones({rows}, f32);
    q.zero = torch::zeros({rows}, f32);
    return q;
  }

  // fp32 math whatever the input precision, so fp16/bf16 rows get the same codes.
  const auto xf = x.detach().to(torch::kFloat32).reshape({rows, cols});
  auto [lo, hi] = torch::aminmax(xf, /*dim=*/1, /*keepdim=*/true);  // NaN propagates
  if (!torch::logical_and(torch::isfinite(lo), torch::isfinite(hi)).all().item<bool>())
    throw Error("quantize: input has non-finite values (NaN or Inf)");

  const auto L = static_cast<double>(levels(scheme));
  // hi/L - lo/L rather than (hi - lo)/L: hi - lo overflows for |x| near FLT_MAX.
  // A zero step (constant row, or a range that underflows) becomes 1: codes are then 0
  // and the row decodes to lo exactly.
  auto scale = hi.div(L).sub_(lo.div(L));
  scale = torch::where(scale > 0, scale, torch::ones_like(scale));
  // x - lo may overflow to +inf near FLT_MAX; inf / scale clamps to the top code.
  auto codes = (xf - lo).div_(scale).round_().clamp_(0, L).to(torch::kUInt8).view(-1);
  q.codes = pack_codes(codes, bits(scheme));
  q.scale = scale.view(-1).contiguous();
  q.zero = lo.view(-1).contiguous();
  return q;
}

torch::Tensor dequantize(const QuantizedTensor& q) {
  if (!has_codes(q.scheme))
    throw Error(std::string("dequantize: scheme ") + to_string(q.scheme) + " has no codes");
  const int64_t numel = checked_numel(q.shape, "dequantize");
  const int64_t rows = quantized_rows(q.shape), cols = q.shape.back();
  const int64_t want = code_bytes(numel, q.scheme);
  const std::string what =
      std::string("dequantize: ") + to_string(q.scheme) + " shape " + shape_string(q.shape) + " ";
  if (!q.codes.defined() || q.codes.scalar_type() != torch::kUInt8)
    throw Error(what + "needs uint8 codes");
  if (q.codes.numel() != want)
    throw Error(what + "needs " + std::to_string(want) + " code bytes, got " +
                std::to_string(q.codes.numel()));
  for (const auto* t : {&q.scale, &q.zero}) {
    const char* name = t == &q.scale ? "scale" : "zero";
    if (!t->defined() || t->scalar_type() != torch::kFloat32 || t->numel() != rows)
      throw Error(what + "needs " + std::to_string(rows) + " float32 " + name + " values, got " +
                  (t->defined() ? std::to_string(t->numel()) + " " + c10::toString(t->scalar_type())
                                : std::string("none")));
    if (t->device() != q.codes.device())
      throw Error(what + "has codes and " + name + " on different devices");
  }

  auto codes = unpack_codes(q.codes.reshape(-1), bits(q.scheme), numel);
  // x_hat = code * scale + zero, per row.
  auto x = codes.to(torch::kFloat32).view({rows, cols});
  x = torch::addcmul(q.zero.view({rows, 1}), x, q.scale.view({rows, 1}));
  return x.view(q.shape);
}

namespace {
// Straight-through estimator: the receiver sees the quantized value, but rounding has
// zero gradient almost everywhere, so backward passes the upstream gradient unchanged.
struct FakeQuantize : torch::autograd::Function<FakeQuantize> {
  static torch::Tensor forward(torch::autograd::AutogradContext*, const torch::Tensor& x,
                               QuantScheme scheme) {
    return dequantize(quantize(x, scheme)).to(x.scalar_type());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext*,
                                                 torch::autograd::variable_list grads) {
    return {grads[0], torch::Tensor()};
  }
};
}  // namespace

torch::Tensor fake_quantize(const torch::Tensor& x, QuantScheme scheme) {
  if (scheme == QuantScheme::none) return x;
  return FakeQuantize::apply(x, scheme);
}

int64_t quantized_payload_bytes(const std::vector<int64_t>& shape, QuantScheme scheme) {
  const int64_t numel = checked_numel(shape, "quantized_payload_bytes");
  const char* where = "quantized_payload_bytes";
  if (scheme == QuantScheme::none) return checked_mul(numel, 4, where);
  bits(scheme);  // rejects an out-of-range enum value
  const int64_t meta = checked_mul(quantized_rows(shape), 8, where);
  int64_t total = 0;
  if (__builtin_add_overflow(code_bytes(numel, scheme), meta, &total))
    throw Error(std::string(where) + ": size overflows int64");
  return total;
}

}  // namespace gt
