// Per-token int8/int4/int2 quantization: round-trip error bounds, the int4 and int2 byte layouts,
// the straight-through gradient, payload sizes and the input/size errors.
#include <cmath>
#include <limits>
#include <vector>

#include "common/error.hpp"
#include "privacy/quantization.hpp"
#include "tests/doctest_torch.hpp"

namespace {

using gt::QuantScheme;

// Largest |x - x_hat| per row, divided by that row's step: must be <= 1/2 (+ rounding).
void check_round_trip(const torch::Tensor& x, QuantScheme scheme) {
  const auto q = gt::quantize(x, scheme);
  const auto y = gt::dequantize(q);
  REQUIRE(y.sizes() == x.sizes());
  CHECK((y.scalar_type() == torch::kFloat32));
  const int64_t rows = gt::quantized_rows(q.shape);
  const auto xf = x.to(torch::kFloat32).reshape({rows, -1});
  const auto err = (y.reshape({rows, -1}) - xf).abs();
  const auto bound = q.scale.view({rows, 1}) * (0.5 + 1e-4) + 1e-6;
  CHECK((err <= bound).all().item<bool>());
  // Extremes are representable exactly: lo is code 0, hi is the top code.
  CHECK(torch::allclose(y.reshape({rows, -1}).amin(1), xf.amin(1), 0, 1e-6));
}

}  // namespace

TEST_CASE("quantization: scheme names and bits") {
  for (auto s : {QuantScheme::none, QuantScheme::int8, QuantScheme::int4, QuantScheme::int2})
    CHECK(gt::parse_quant_scheme(gt::to_string(s)) == s);
  CHECK(gt::bits(QuantScheme::none) == 32);
  CHECK(gt::bits(QuantScheme::int8) == 8);
  CHECK(gt::bits(QuantScheme::int4) == 4);
  CHECK(gt::bits(QuantScheme::int2) == 2);
  CHECK(gt::is_quant_scheme(3));
  CHECK(!gt::is_quant_scheme(4));
  CHECK_THROWS_WITH_AS(gt::parse_quant_scheme("int3"),
                       gt::test::contains("allowed: none, int8, int4, int2"), gt::Error);
  CHECK_THROWS_AS(gt::parse_quant_scheme("INT8"), gt::Error);
}

TEST_CASE("quantization: round trip within half a step") {
  torch::manual_seed(1);
  const std::vector<std::vector<int64_t>> shapes{{2, 5, 7}, {3, 1}, {4, 9}, {11}};
  for (auto scheme : {QuantScheme::int8, QuantScheme::int4, QuantScheme::int2}) {
    for (const auto& shape : shapes) {
      CAPTURE(gt::to_string(scheme));
      CAPTURE(shape.size());
      const auto x = torch::randn(shape) * 3 + 1;
      check_round_trip(x, scheme);
      check_round_trip(x.to(torch::kHalf), scheme);
      check_round_trip(x.to(torch::kBFloat16), scheme);
    }
  }
}

TEST_CASE("quantization: constant rows decode exactly") {
  // Row 0 constant, row 1 constant negative, row 2 an ordinary range.
  const auto x = torch::tensor({{2.5f, 2.5f, 2.5f}, {-7.f, -7.f, -7.f}, {0.f, 1.f, 2.f}});
  for (auto scheme : {QuantScheme::int8, QuantScheme::int4}) {
    const auto q = gt::quantize(x, scheme);
    const auto y = gt::dequantize(q);
    CHECK(torch::equal(y.slice(0, 0, 2), x.slice(0, 0, 2)));
    CHECK(q.zero[0].item<float>() == 2.5f);
    CHECK(q.scale[0].item<float>() > 0);
  }
  // A (3, 1) tensor is three one-element rows: exact too.
  const auto col = torch::tensor({{1.25f}, {-3.f}, {1e30f}});
  CHECK(torch::equal(gt::dequantize(gt::quantize(col, QuantScheme::int4)), col));
}

TEST_CASE("quantization: code byte counts and metadata sizes") {
  const auto x = torch::randn({2, 5, 7});  // numel 35, rows 10
  const auto q8 = gt::quantize(x, QuantScheme::int8);
  CHECK((q8.codes.scalar_type() == torch::kUInt8));
  CHECK(q8.codes.is_contiguous());
  CHECK(q8.codes.numel() == 70);
  const auto q4 = gt::quantize(x, QuantScheme::int4);
  CHECK(q4.codes.numel() == 35);  // ceil(70 / 2)
  CHECK(gt::quantize(torch::randn({4, 9}), QuantScheme::int4).codes.numel() == 18);
  CHECK(gt::quantize(torch::randn({3, 3}), QuantScheme::int4).codes.numel() == 5);  // odd
  const auto q2 = gt::quantize(x, QuantScheme::int2);
  CHECK(q2.codes.numel() == 18);  // ceil(70 / 4)
  CHECK(gt::quantize(torch::randn({4, 9}), QuantScheme::int2).codes.numel() == 9);
  CHECK(gt::quantize(torch::randn({3, 3}), QuantScheme::int2).codes.numel() == 3);  // 9 codes
  for (const auto* q : {&q8, &q4, &q2}) {
    CHECK(q->shape == std::vector<int64_t>{2, 5, 7});
    CHECK((q->scale.scalar_type() == torch::kFloat32));
    CHECK((q->zero.scalar_type() == torch::kFloat32));
    CHECK(q->scale.sizes() == torch::IntArrayRef{10});
    CHECK(q->zero.sizes() == torch::IntArrayRef{10});
  }
}

TEST_CASE("quantization: int4 packing order by hand") {
  // Row 0 = [0, 15, 5]: lo 0, hi 15, scale (15 - 0) / 15 = 1, codes 0, 15, 5.
  // Row 1 = [0, 30, 14]: lo 0, hi 30, scale 30 / 15 = 2, codes 0, 15, 7.
  // Flattened codes 0, 15, 5, 0, 15, 7; byte k = code[2k] | code[2k+1] << 4:
  //   0 | 15 << 4 = 0xF0;  5 | 0 << 4 = 0x05;  15 | 7 << 4 = 0x7F.
  const auto x = torch::tensor({{0.f, 15.f, 5.f}, {0.f, 30.f, 14.f}});
  const auto q = gt::quantize(x, QuantScheme::int4);
  REQUIRE(q.codes.numel() == 3);
  const auto* b = q.codes.data_ptr<uint8_t>();
  CHECK(b[0] == 0xF0);
  CHECK(b[1] == 0x05);
  CHECK(b[2] == 0x7F);
  CHECK(q.scale[0].item<float>() == 1.f);
  CHECK(q.scale[1].item<float>() == 2.f);
  CHECK(torch::equal(gt::dequantize(q), x));  // every value sits on a code
  // Odd count: [3, 9, 12] alone -> lo 3, hi 12, scale 9/15, codes 0, 10, 15;
  // bytes 0 | 10 << 4 = 0xA0, then 15 with a zero pad nibble = 0x0F.
  const auto q2 = gt::quantize(torch::tensor({3.f, 9.f, 12.f}), QuantScheme::int4);
  REQUIRE(q2.codes.numel() == 2);
  CHECK(q2.codes[0].item<uint8_t>() == 0xA0);
  CHECK(q2.codes[1].item<uint8_t>() == 0x0F);
  // int8 on the same row: scale 9/255, codes 0, 170, 255, one per byte.
  const auto q3 = gt::quantize(torch::tensor({3.f, 9.f, 12.f}), QuantScheme::int8);
  CHECK(torch::equal(q3.codes, torch::tensor({0, 170, 255}, torch::kUInt8)));
}

TEST_CASE("quantization: int2 packing order by hand") {
  // One row [0, 3, 1, 2, 3]: lo 0, hi 3, scale 3 / 3 = 1, codes 0, 3, 1, 2, 3; byte k =
  // c[4k] | c[4k+1] << 2 | c[4k+2] << 4 | c[4k+3] << 6: 0 | 12 | 16 | 128 = 0x9C, then 3
  // with three zero pad codes = 0x03.
  const auto x = torch::tensor({0.f, 3.f, 1.f, 2.f, 3.f});
  auto q = gt::quantize(x, QuantScheme::int2);
  REQUIRE(q.codes.numel() == 2);
  CHECK(q.codes[0].item<uint8_t>() == 0x9C);
  CHECK(q.codes[1].item<uint8_t>() == 0x03);
  CHECK(torch::equal(gt::dequantize(q), x));  // every value sits on a code
  // Codes run on across rows. Row 1 = [3, 10, 16, 13]: lo 3, hi 16, scale 13/3, codes 0,
  // round(1.62) = 2, 3, round(2.31) = 2.
  q = gt::quantize(torch::tensor({{0.f, 3.f, 1.f, 2.f}, {3.f, 10.f, 16.f, 13.f}}),
                   QuantScheme::int2);
  REQUIRE(q.codes.numel() == 2);
  CHECK(q.codes[0].item<uint8_t>() == 0x9C);
  CHECK(q.codes[1].item<uint8_t>() == (0 | 2 << 2 | 3 << 4 | 2 << 6));
}

TEST_CASE("quantization: straight-through gradient") {
  torch::manual_seed(2);
  for (auto scheme : {QuantScheme::int8, QuantScheme::int4, QuantScheme::int2}) {
    const auto x = torch::randn({3, 4, 6}, torch::requires_grad());
    const auto y = gt::fake_quantize(x, scheme);
    // Forward is exactly what the receiver decodes.
    CHECK(torch::equal(y.detach(), gt::dequantize(gt::quantize(x.detach(), scheme))));
    const auto upstream = torch::randn({3, 4, 6});
    y.backward(upstream);
    REQUIRE(x.grad().defined());
    CHECK(torch::equal(x.grad(), upstream));
  }
  // Through a downstream op too: d(sum(w * fq(x)))/dx = w.
  const auto x = torch::randn({5, 8}, torch::requires_grad());
  const auto w = torch::randn({5, 8});
  (gt::fake_quantize(x, QuantScheme::int4) * w).sum().backward();
  CHECK(torch::equal(x.grad(), w));
  // Half input stays half; none is the identity on the same tensor.
  const auto h = torch::randn({2, 3}).to(torch::kHalf);
  CHECK((gt::fake_quantize(h, QuantScheme::int8).scalar_type() == torch::kHalf));
  CHECK(gt::fake_quantize(x, QuantScheme::none).is_same(x));
}

TEST_CASE("quantization: payload bytes match the real tensors") {
  const std::vector<std::vector<int64_t>> shapes{{2, 5, 7}, {3, 1}, {4, 9}, {3, 3}, {1}};
  for (auto scheme : {QuantScheme::int8, QuantScheme::int4, QuantScheme::int2}) {
    for (const auto& shape : shapes) {
      const auto q = gt::quantize(torch::randn(shape), scheme);
      const int64_t real = q.codes.numel() * q.codes.element_size() +
                           q.scale.numel() * q.scale.element_size() +
                           q.zero.numel() * q.zero.element_size();
      CHECK(gt::quantized_payload_bytes(shape, scheme) == real);
    }
  }
  CHECK(gt::quantized_payload_bytes({2, 5, 7}, QuantScheme::none) == 280);  // 70 fp32 values
  CHECK(gt::quantized_payload_bytes({8, 128, 768}, QuantScheme::int4) == 393216 + 8 * 1024);
  CHECK(gt::quantized_payload_bytes({8, 128, 768}, QuantScheme::int2) == 196608 + 8 * 1024);
  CHECK_THROWS_AS(gt::quantized_payload_bytes({}, QuantScheme::int8), gt::Error);
  CHECK_THROWS_AS(gt::quantized_payload_bytes({2, -1}, QuantScheme::int8), gt::Error);
  const int64_t big = int64_t{1} << 40;
  CHECK_THROWS_AS(gt::quantized_payload_bytes({big, big}, QuantScheme::int8), gt::Error);
}

TEST_CASE("quantization: bad input is rejected") {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (float bad : {inf, -inf, nan}) {
    auto x = torch::randn({3, 5});
    x[1][2] = bad;  // in the middle of a row, not at an edge
    CHECK_THROWS_WITH_AS(gt::quantize(x, QuantScheme::int8), gt::test::contains("non-finite"),
                         gt::Error);
    CHECK_THROWS_AS(gt::fake_quantize(x, QuantScheme::int4), gt::Error);
  }
  CHECK_THROWS_AS(gt::quantize(torch::randn({3}), QuantScheme::none), gt::Error);
  CHECK_THROWS_AS(gt::quantize(torch::ones({3}, torch::kLong), QuantScheme::int8), gt::Error);
  CHECK_THROWS_AS(gt::quantize(torch::tensor(1.f), QuantScheme::int8), gt::Error);
  // Empty tensors are fine: no codes, per-row metadata still there.
  const auto q = gt::quantize(torch::randn({4, 0}), QuantScheme::int4);
  CHECK(q.codes.numel() == 0);
  CHECK(q.scale.numel() == 4);
  CHECK(gt::dequantize(q).sizes() == torch::IntArrayRef{4, 0});
}

TEST_CASE("quantization: dequantize validates sizes") {
  const auto good = gt::quantize(torch::randn({4, 9}), QuantScheme::int4);
  REQUIRE_NOTHROW(gt::dequantize(good));
  auto q = good;
  q.codes = good.codes.slice(0, 0, 17);
  CHECK_THROWS_WITH_AS(gt::dequantize(q), gt::test::contains("needs 18 code bytes, got 17"),
                       gt::Error);
  q = good;
  q.scheme = QuantScheme::int8;  // int8 would need 36 bytes
  CHECK_THROWS_AS(gt::dequantize(q), gt::Error);
  q = good;
  q.scale = good.scale.slice(0, 0, 3);
  CHECK_THROWS_WITH_AS(gt::dequantize(q), gt::test::contains("scale"), gt::Error);
  q = good;
  q.zero = good.zero.to(torch::kDouble);
  CHECK_THROWS_WITH_AS(gt::dequantize(q), gt::test::contains("zero"), gt::Error);
  q = good;
  q.codes = good.codes.to(torch::kInt);
  CHECK_THROWS_AS(gt::dequantize(q), gt::Error);
  q = good;
  q.shape = {4, 10};
  CHECK_THROWS_AS(gt::dequantize(q), gt::Error);
  q = good;
  q.shape = {};
  CHECK_THROWS_AS(gt::dequantize(q), gt::Error);
  q = good;
  q.shape = {-4, -9};
  CHECK_THROWS_AS(gt::dequantize(q), gt::Error);
  q = good;
  q.scheme = QuantScheme::none;
  CHECK_THROWS_AS(gt::dequantize(q), gt::Error);
}
