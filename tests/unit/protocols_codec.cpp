// The wire codec: exact tensor and message round trips, quantized error bounds, the
// documented byte layout, and ProtocolError (never a crash) for every malformed input.
#include <sys/resource.h>

#include <array>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "common/error.hpp"
#include "protocols/codec.hpp"
#include "protocols/messages.hpp"
#include "protocols/wire_tensor.hpp"
#include "tests/doctest_torch.hpp"

namespace {

using gt::QuantScheme;
using Bytes = std::vector<uint8_t>;

template <class T>
T round_trip(const T& m) {
  return gt::decode(gt::encode(m));
}

template <class T>
T decode_bytes(const Bytes& bytes, size_t max_bytes = gt::kDefaultMaxMessageBytes) {
  return gt::decode(gt::Encoded<T>{bytes}, max_bytes);
}

// Calls f(T{}) for every message type of the protocol.
template <class F>
void for_each_message(F&& f) {
  f(gt::SessionHello{});
  f(gt::SessionAccept{});
  f(gt::ForwardRequest{});
  f(gt::ForwardReply{});
  f(gt::BackwardRequest{});
  f(gt::BackwardReply{});
  f(gt::SessionBye{});
  f(gt::DataUpload{});
}

void check_same(const gt::Header& a, const gt::Header& b) {
  CHECK(a.protocol_version == b.protocol_version);
  CHECK(a.session == b.session);
  CHECK(a.step == b.step);
}

void check_same(const gt::WireTensor& a, const gt::WireTensor& b) {
  CHECK((a.dtype == b.dtype));
  CHECK((a.scheme == b.scheme));
  CHECK(a.shape == b.shape);
  CHECK(a.scale == b.scale);
  CHECK(a.zero == b.zero);
  CHECK(a.payload == b.payload);
}

gt::Header header(uint64_t session, int64_t step) {
  return gt::Header{gt::kProtocolVersion, session, step};
}

gt::ForwardRequest forward_request(int64_t B, int64_t T, int64_t H,
                                   QuantScheme scheme = QuantScheme::none) {
  gt::ForwardRequest m;
  m.header = header(7, 3);
  m.activations = gt::to_wire(torch::randn({B, T, H}), scheme);
  m.attention_mask = gt::to_wire(torch::ones({B, T}, torch::kLong));
  return m;
}

// Decodes `bytes` as T and, when that succeeds, every tensor of it with from_wire.
// Returns 0 for success, 1 for ProtocolError, 2 for any other exception.
template <class T>
int decode_outcome(const Bytes& bytes) {
  try {
    auto m = decode_bytes<T>(bytes);
    if constexpr (std::is_same_v<T, gt::ForwardRequest>) {
      gt::from_wire(m.activations, "a1");
      gt::from_wire(m.attention_mask, "mask");
    }
    return 0;
  } catch (const gt::ProtocolError&) {
    return 1;
  } catch (...) {
    return 2;
  }
}

int64_t max_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

}  // namespace

TEST_CASE("codec: raw tensors round trip exactly in f32, f16, bf16 and i64") {
  torch::manual_seed(1);
  const auto f = torch::randn({3, 4, 5});
  const std::vector<std::pair<torch::Tensor, gt::WireDtype>> cases{
      {f, gt::WireDtype::f32},
      {f.to(torch::kHalf), gt::WireDtype::f16},
      {f.to(torch::kBFloat16), gt::WireDtype::bf16},
      {torch::randint(-(int64_t(1) << 50), int64_t(1) << 50, {4, 7}, torch::kLong),
       gt::WireDtype::i64},
      {f.transpose(0, 2), gt::WireDtype::f32},                      // non-contiguous
      {f.to(torch::kHalf).slice(2, 0, 5, 2), gt::WireDtype::f16},   // strided
      {torch::empty({0, 5}), gt::WireDtype::f32},                   // empty
      {torch::empty({2, 0, 3}, torch::kLong), gt::WireDtype::i64},  // empty
      {torch::tensor(2.5f), gt::WireDtype::f32},                    // scalar
  };
  for (const auto& [x, dtype] : cases) {
    const auto sizes = x.sizes();  // clang 14 cannot capture a structured binding
    CAPTURE(sizes);
    const auto w = gt::to_wire(x);
    CHECK((w.dtype == dtype));
    CHECK((w.scheme == QuantScheme::none));
    CHECK(w.shape == x.sizes().vec());
    CHECK(w.payload.size() == size_t(x.numel() * x.element_size()));
    CHECK(w.data_bytes() == int64_t(w.payload.size()));
    const auto y = gt::from_wire(w, "x", x.sizes().vec());
    CHECK((y.scalar_type() == x.scalar_type()));
    CHECK(torch::equal(y, x));
    // And through a whole message.
    gt::BackwardRequest m;
    m.gradient = w;
    CHECK(torch::equal(gt::from_wire(round_trip(m).gradient, "g2"), x));
  }
  CHECK(!f.transpose(0, 2).is_contiguous());
  CHECK(!f.slice(2, 0, 5, 2).is_contiguous());
}

TEST_CASE("codec: int8, int4 and int2 tensors round trip within half a step per row") {
  torch::manual_seed(2);
  for (auto scheme : {QuantScheme::int8, QuantScheme::int4, QuantScheme::int2}) {
    for (const auto& x : {torch::randn({3, 5, 16}) * 3, torch::randn({3, 7}) + 10,
                          torch::randn({2, 9}).to(torch::kHalf), torch::randn({4, 6}).t()}) {
      CAPTURE(gt::to_string(scheme));
      CAPTURE(x.sizes());
      const auto w = gt::to_wire(x, scheme);
      const int64_t cols = x.size(-1), rows = x.numel() / cols;
      REQUIRE(w.scale.size() == size_t(rows));
      REQUIRE(w.zero.size() == size_t(rows));
      CHECK((w.scheme == scheme));
      CHECK(int64_t(w.payload.size()) == (x.numel() * gt::bits(scheme) + 7) / 8);
      CHECK(w.data_bytes() == gt::quantized_payload_bytes(w.shape, scheme));
      const auto y = round_trip(gt::ForwardReply{{}, w}).activations;
      const auto xh = gt::from_wire(y, "a2", x.sizes().vec());
      CHECK((xh.scalar_type() == torch::kFloat));
      const auto err = (xh - x.to(torch::kFloat)).abs().reshape({rows, cols});
      const auto step = torch::tensor(w.scale).view({rows, 1});
      CHECK((err <= step * (0.5 + 1e-4) + 1e-6).all().item<bool>());
      CHECK((step > 0).all().item<bool>());
    }
    // Empty tensors keep their per-row parameters consistent.
    for (const auto& shape : {std::vector<int64_t>{0, 4}, std::vector<int64_t>{2, 0}}) {
      CAPTURE(shape);
      const auto w = gt::to_wire(torch::empty(shape), scheme);
      CHECK(gt::from_wire(round_trip(gt::BackwardReply{{}, w}).gradient, "g1").sizes().vec() ==
            shape);
    }
  }
}

TEST_CASE("codec: rows left out (padding) decode as zeros, the rows sent as without packing") {
  torch::manual_seed(3);
  const auto x = torch::randn({3, 5, 16}) * 2;
  const auto mask =
      torch::tensor({{1, 1, 1, 0, 0}, {1, 1, 1, 1, 1}, {1, 0, 0, 0, 0}}, torch::kLong);
  const auto keep = mask.to(torch::kBool).unsqueeze(-1);
  for (auto scheme : {QuantScheme::none, QuantScheme::int8, QuantScheme::int4, QuantScheme::int2}) {
    CAPTURE(gt::to_string(scheme));
    const auto full = gt::to_wire(x, scheme);
    const auto packed = gt::to_wire(x, scheme, mask);
    CHECK(packed.shape == x.sizes().vec());
    CHECK(packed.rows == std::vector<uint8_t>{0b11100111, 0b00000111});  // rows 0-2, 5-10
    if (scheme != QuantScheme::none) CHECK(packed.scale.size() == 9);
    CHECK(packed.data_bytes() == 2 + gt::quantized_payload_bytes({9, 16}, scheme));
    // Through a whole message: the rows sent decode exactly as unpacked, the others as 0.
    const auto y =
        gt::from_wire(round_trip(gt::ForwardReply{{}, packed}).activations, "a2", {3, 5, 16});
    const auto y_full = gt::from_wire(full, "a2");
    CHECK(torch::equal(y, torch::where(keep, y_full, torch::zeros_like(y_full))));
  }
  // The take-over path gives the same.
  auto packed = gt::to_wire(x, QuantScheme::none, mask);
  CHECK(torch::equal(gt::from_wire(std::move(packed), "a1"), x * keep));
  // Every row sent: no bitmap. Packing would not pay: every row sent too.
  CHECK(gt::to_wire(x, QuantScheme::none, torch::ones({3, 5})).rows.empty());
  auto sparse = torch::zeros({16, 16});
  sparse[0][0] = 1;  // 256 rows for 1 sent: still packed
  CHECK(gt::to_wire(torch::randn({16, 16, 2}), QuantScheme::none, sparse).rows.size() == 32);
  auto too_sparse = torch::zeros({16, 17});
  too_sparse[0][0] = 1;  // 272 rows for 1 sent: more than 256 per row sent
  CHECK(gt::to_wire(torch::randn({16, 17, 2}), QuantScheme::none, too_sparse).rows.empty());
  // A mask of the wrong shape is the sender's bug.
  CHECK_THROWS_WITH_AS(gt::to_wire(x, QuantScheme::int8, torch::ones({3, 4})),
                       gt::test::contains("rows_sent has shape [3, 4], expected [3, 5]"),
                       gt::Error);
  // A received bitmap that contradicts the tensor is a ProtocolError.
  using W = gt::WireTensor;
  const auto good = gt::to_wire(x, QuantScheme::int8, mask);
  const auto rejects = [](W w, const char* part, auto&& edit) {
    edit(w);
    CHECK_THROWS_WITH_AS(gt::from_wire(w, "a1"), gt::test::contains(part), gt::ProtocolError);
  };
  rejects(good, "row bitmap has 1 bytes, 15 rows need 2", [](W& w) { w.rows.pop_back(); });
  rejects(good, "marks rows past the last one", [](W& w) { w.rows[1] |= 0x80; });
  rejects(good, "9 row scales and 9 zero points for 10 rows sent",
          [](W& w) { w.rows[1] |= 1 << 3; });
  rejects(good, "needs rank >= 2", [](W& w) { w.shape = {240}; });
  const auto raw = gt::to_wire(x, QuantScheme::none, mask);
  rejects(raw, "with 8 rows sent needs 512", [](W& w) { w.rows[0] &= 0xFE; });
  W hollow;  // 1 row sent of 4096: an amplifier
  hollow.shape = {4096, 1 << 20};
  hollow.rows.assign(512, 0);
  hollow.rows[0] = 1;
  rejects(hollow, "1 of 4096 rows sent; at most 256", [](W&) {});
}

TEST_CASE("codec: every message type decodes to the fields it was encoded from") {
  torch::manual_seed(3);
  const std::string odd_name("cl\0ient-\xc3\xa9", 10);  // embedded NUL, UTF-8

  gt::SessionHello hello;
  hello.header = header(0xFEDCBA9876543210ull, -5);
  hello.client_name = odd_name;
  hello.strategy = "";
  hello.model_type = "opt";
  hello.num_layers = 6, hello.hidden_size = 1 << 20, hello.n_in = 2, hello.n_out = 3;
  hello.backward = false, hello.quant_a2 = 1, hello.quant_g1 = 2;
  const auto h = round_trip(hello);
  check_same(h.header, hello.header);
  CHECK(h.client_name == odd_name);
  CHECK(h.strategy.empty());
  CHECK(h.model_type == "opt");
  auto scalars = [](const gt::SessionHello& x) {
    return std::make_tuple(x.num_layers, x.hidden_size, x.n_in, x.n_out, x.backward, x.quant_a2,
                           x.quant_g1);
  };
  CHECK((scalars(h) == scalars(hello)));

  gt::SessionAccept accept{header(1, 0), "server \"main\""};
  const auto a = round_trip(accept);
  check_same(a.header, accept.header);
  CHECK(a.server_name == accept.server_name);

  for (bool keep : {false, true}) {
    auto fwd = forward_request(2, 3, 4, QuantScheme::int8);
    fwd.header = header(2, int64_t(1) << 50);
    fwd.keep_graph = keep;
    const auto f = round_trip(fwd);
    check_same(f.header, fwd.header);
    check_same(f.activations, fwd.activations);
    check_same(f.attention_mask, fwd.attention_mask);
    CHECK(f.keep_graph == keep);
  }

  const gt::ForwardReply frep{header(3, 1), gt::to_wire(torch::randn({2, 3, 4}))};
  check_same(round_trip(frep).header, frep.header);
  check_same(round_trip(frep).activations, frep.activations);
  const gt::BackwardRequest breq{header(4, 2), gt::to_wire(torch::randn({1, 2, 3}, torch::kHalf))};
  check_same(round_trip(breq).header, breq.header);
  check_same(round_trip(breq).gradient, breq.gradient);
  const gt::BackwardReply brep{header(5, 3), gt::to_wire(torch::randn({2, 5}), QuantScheme::int4)};
  check_same(round_trip(brep).header, brep.header);
  check_same(round_trip(brep).gradient, brep.gradient);
  check_same(round_trip(gt::SessionBye{header(6, 9)}).header, header(6, 9));

  gt::DataUpload up{header(8, 4), gt::to_wire(torch::randint(0, 500, {2, 6}, torch::kLong)),
                    gt::to_wire(torch::ones({2, 6}, torch::kLong)),
                    gt::to_wire(torch::full({2, 6}, -100, torch::kLong))};
  const auto u = round_trip(up);
  check_same(u.header, up.header);
  check_same(u.input_ids, up.input_ids);
  check_same(u.attention_mask, up.attention_mask);
  check_same(u.labels, up.labels);
}

// Encoded size of a ForwardRequest (cereal portable binary, little endian):
//   1                 archive header: cereal's endianness byte
// + 4                 message tag
// + 4 + 8 + 8 + 4 + 4 header: protocol_version (u32), session (u64), step (i64), micro and
//                     micros (u32)
// + per tensor:       1 dtype + 1 scheme + 5 length prefixes of 8 bytes (shape, rows, scale,
//                     zero, payload) + 8 * rank (shape) + (rows + 7) / 8 (row bitmap, only when
//                     rows are left out) + 4 * rows * 2 (scale + zero, quantized only) + payload
// + 1                 keep_graph
// With a raw fp32 a1 (B, T, H) and an int64 mask (B, T):
//   bytes = B*T*H*4 + B*T*8 + 158,  158 = 1 + 4 + 28 + (42 + 24) + (42 + 16) + 1.
TEST_CASE("codec: a ForwardRequest costs its payloads plus a fixed overhead") {
  constexpr int64_t kTensorFraming = 1 + 1 + 5 * 8;
  constexpr int64_t kHeader = 4 + 8 + 8 + 4 + 4;
  constexpr int64_t kLayoutOverhead =
      1 + 4 + kHeader + (kTensorFraming + 8 * 3) + (kTensorFraming + 8 * 2) + 1;
  static_assert(kLayoutOverhead == 158);
  const std::vector<std::array<int64_t, 3>> shapes{{1, 1, 1}, {2, 5, 96}, {3, 17, 64}};
  std::vector<int64_t> overheads;
  for (auto [B, T, H] : shapes) {
    const auto m = forward_request(B, T, H);
    const auto n = int64_t(gt::encode(m).bytes.size());
    overheads.push_back(n - (B * T * H * 4 + B * T * 8));
    CHECK(n == m.activations.data_bytes() + m.attention_mask.data_bytes() + kLayoutOverhead);
    // Quantized a1: codes plus a scale and a zero per token.
    const auto q = forward_request(B, T, H, QuantScheme::int8);
    CHECK(int64_t(gt::encode(q).bytes.size()) ==
          B * T * H + B * T * 8 + B * T * 8 + kLayoutOverhead);
  }
  CHECK(overheads[0] == overheads[1]);
  CHECK(overheads[1] == overheads[2]);
  CHECK(overheads[0] == kLayoutOverhead);
  // The same layout for the other messages.
  CHECK(gt::encode(gt::SessionBye{}).bytes.size() == 1 + 4 + kHeader);
  CHECK(gt::encode(gt::SessionAccept{{}, "abc"}).bytes.size() == 1 + 4 + kHeader + 8 + 3);
  // A packed a1 pays its row bitmap: (B * T + 7) / 8 bytes.
  auto packed = forward_request(2, 5, 8);
  packed.activations = gt::to_wire(torch::randn({2, 5, 8}), QuantScheme::none,
                                   torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 0, 0, 0}}));
  CHECK(int64_t(gt::encode(packed).bytes.size()) == 7 * 8 * 4 + 2 + 2 * 5 * 8 + kLayoutOverhead);
}

TEST_CASE("codec: version mismatch, trailing bytes, wrong tag and size limit are rejected") {
  for_each_message([](auto m) {
    using T = decltype(m);
    CAPTURE(gt::message_kind<T>());
    m.header.protocol_version = 99;
    const auto bad = gt::encode(m);
    CHECK_THROWS_WITH_AS(gt::decode(bad), gt::test::contains("protocol version 99"),
                         gt::ProtocolError);
    m.header.protocol_version = gt::kProtocolVersion;
    auto bytes = gt::encode(m).bytes;
    CHECK_NOTHROW(decode_bytes<T>(bytes, bytes.size()));
    CHECK_THROWS_WITH_AS(decode_bytes<T>(bytes, bytes.size() - 1),
                         gt::test::contains("exceeds the limit"), gt::ProtocolError);
    bytes.push_back(0);
    CHECK_THROWS_WITH_AS(decode_bytes<T>(bytes), gt::test::contains("trailing"), gt::ProtocolError);
  });
  // Replies and requests with the same body layout are told apart by the tag.
  const auto reply = gt::encode(gt::ForwardReply{{}, gt::to_wire(torch::ones({1, 2, 3}))}).bytes;
  CHECK_THROWS_WITH_AS(decode_bytes<gt::ForwardRequest>(reply), gt::test::contains("wrong tag"),
                       gt::ProtocolError);
  CHECK_THROWS_WITH_AS(decode_bytes<gt::BackwardRequest>(reply), gt::test::contains("wrong tag"),
                       gt::ProtocolError);
  CHECK_NOTHROW(decode_bytes<gt::ForwardReply>(reply));
}

TEST_CASE("codec: every truncation of a valid message is a ProtocolError") {
  // Counts the prefixes of `bytes` that decode as T to a ProtocolError (all must).
  auto rejected_prefixes = [](auto proto, const Bytes& bytes) {
    size_t n = 0;
    for (size_t len = 0; len < bytes.size(); ++len)
      n += decode_outcome<decltype(proto)>(Bytes(bytes.begin(), bytes.begin() + len)) == 1;
    return n;
  };
  for (const auto& m : {forward_request(1, 2, 3), forward_request(2, 2, 3, QuantScheme::int4)}) {
    const auto bytes = gt::encode(m).bytes;
    CHECK(rejected_prefixes(gt::ForwardRequest{}, bytes) == bytes.size());
  }
  gt::SessionHello hello;
  hello.client_name = "alice";
  hello.model_type = "opt";
  const auto h = gt::encode(hello).bytes;
  CHECK(rejected_prefixes(gt::SessionHello{}, h) == h.size());
}

TEST_CASE("codec: random and mutated bytes are rejected without crashing or allocating") {
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<int> byte(0, 255), len(0, 300);
  const auto rss_before = max_rss_kib();
  int other = 0, accepted = 0;
  // Pure garbage, and garbage behind a valid archive byte, tag and header.
  for_each_message([&](auto proto) {
    using T = decltype(proto);
    const auto prefix = gt::encode(T{}).bytes;  // 25 bytes: archive byte, tag, header
    for (int i = 0; i < 500; ++i) {
      Bytes b(len(rng));
      for (auto& c : b) c = uint8_t(byte(rng));
      if (i % 2) b.insert(b.begin(), prefix.begin(), prefix.begin() + 25), b.push_back(1);
      const int r = decode_outcome<T>(b);
      other += r == 2;
      accepted += r == 0;
    }
  });
  CHECK(other == 0);
  CHECK(accepted == 0);
  // A valid message with a few bytes changed: either rejected or well-formed, never another error.
  const auto valid = gt::encode(forward_request(2, 3, 4)).bytes;
  int rejected = 0;
  for (int i = 0; i < 3000; ++i) {
    auto b = valid;
    for (int k = 0; k < 1 + i % 4; ++k) b[rng() % b.size()] = uint8_t(byte(rng));
    const int r = decode_outcome<gt::ForwardRequest>(b);
    other += r == 2;
    rejected += r == 1;
  }
  CHECK(other == 0);
  CHECK(rejected > 100);
  CHECK(max_rss_kib() - rss_before < 256 * 1024);  // no decode allocated what a length claimed
}

TEST_CASE("codec: hostile length prefixes are rejected before allocating") {
  const auto valid = gt::encode(forward_request(2, 3, 4)).bytes;
  // a1 starts at 1 + 4 + 28 = 33: dtype, scheme, then the shape's length prefix at 35; then
  // the shape, and the rows', scale's and zero's length prefixes (their vectors are empty).
  const size_t shape_prefix = 35, payload_prefix = shape_prefix + 8 + 3 * 8 + 8 + 8 + 8;
  uint64_t n = 0;
  std::memcpy(&n, valid.data() + shape_prefix, 8);
  REQUIRE(n == 3);
  std::memcpy(&n, valid.data() + payload_prefix, 8);
  REQUIRE(n == 2 * 3 * 4 * 4);
  for (size_t at : {shape_prefix, payload_prefix}) {
    for (uint64_t claim : {uint64_t(1) << 60, ~uint64_t(0), uint64_t(valid.size())}) {
      auto b = valid;
      std::memcpy(b.data() + at, &claim, 8);
      CAPTURE(at);
      CAPTURE(claim);
      CHECK_THROWS_AS(decode_bytes<gt::ForwardRequest>(b), gt::ProtocolError);
    }
  }
  auto b = valid;
  const uint64_t claim = uint64_t(1) << 60;
  std::memcpy(b.data() + shape_prefix, &claim, 8);
  CHECK_THROWS_WITH_AS(decode_bytes<gt::ForwardRequest>(b),
                       gt::test::contains("declared length 1152921504606846976 exceeds"),
                       gt::ProtocolError);
  // A string length in a hello (client_name's prefix follows the header at 33).
  auto h = gt::encode(gt::SessionHello{}).bytes;
  std::memcpy(h.data() + 33, &claim, 8);
  CHECK_THROWS_WITH_AS(decode_bytes<gt::SessionHello>(h), gt::test::contains("declared length"),
                       gt::ProtocolError);
}

TEST_CASE("codec: from_wire rejects tensors that contradict their shape, scheme or dtype") {
  torch::manual_seed(4);
  using W = gt::WireTensor;
  // from_wire(`w` after `change`) must throw a ProtocolError whose message contains `part`.
  auto rejects = [](W w, const std::string& part, const std::function<void(W&)>& change) {
    change(w);
    CHECK_THROWS_WITH_AS(gt::from_wire(w, "t"), gt::test::contains(part), gt::ProtocolError);
  };
  const auto raw = gt::to_wire(torch::randn({2, 3}));
  rejects(raw, "t: payload has 23 bytes", [](W& w) { w.payload.pop_back(); });
  rejects(raw, "needs 32", [](W& w) { w.shape[1] = 4; });
  rejects(raw, "unknown dtype", [](W& w) { w.dtype = static_cast<gt::WireDtype>(7); });
  rejects(raw, "unknown quantization", [](W& w) { w.scheme = static_cast<QuantScheme>(9); });
  rejects(raw, "invalid shape", [](W& w) { w.shape[1] = -3; });
  // Shapes whose element count overflows must not reach an allocation.
  const auto big = int64_t(1) << 40;
  for (auto scheme : {QuantScheme::none, QuantScheme::int8}) {
    W empty;
    empty.scheme = scheme;
    empty.shape.assign(2, big);
    rejects(empty, "invalid shape", [](W&) {});
    rejects(empty, "invalid shape", [](W& w) { w.shape[1] = int64_t(1) << 24; });
  }

  const auto q = gt::to_wire(torch::randn({3, 8}), QuantScheme::int8);
  CHECK(gt::from_wire(q, "t").sizes() == torch::IntArrayRef({3, 8}));
  rejects(q, "t: 2 row scales and 3 zero points for 3 rows", [](W& w) { w.scale.pop_back(); });
  rejects(q, "3 row scales and 4 zero points for 3 rows", [](W& w) { w.zero.push_back(0); });
  rejects(q, "quantized payload has 23 bytes", [](W& w) { w.payload.pop_back(); });
  rejects(q, "quantized payload has 24 bytes", [](W& w) { w.scheme = QuantScheme::int4; });
  rejects(q, "unknown dtype", [](W& w) { w.dtype = static_cast<gt::WireDtype>(200); });
  rejects(q, "without shape", [](W& w) { w.shape.clear(); });

  // Unknown codes survive decoding (it does not interpret tensors) and fail in from_wire.
  gt::BackwardRequest m{{}, raw};
  m.gradient.dtype = static_cast<gt::WireDtype>(4);
  CHECK_THROWS_AS(gt::from_wire(round_trip(m).gradient, "g2"), gt::ProtocolError);

  // The expected shape: exact sizes, -1 as a wildcard, and the rank.
  CHECK_NOTHROW(gt::from_wire(raw, "a1", {2, 3}));
  CHECK_NOTHROW(gt::from_wire(raw, "a1", {-1, 3}));
  CHECK_THROWS_WITH_AS(gt::from_wire(raw, "a1", {2, 4}), gt::test::contains("a1: shape [2, 3]"),
                       gt::ProtocolError);
  CHECK_THROWS_WITH_AS(gt::from_wire(raw, "a1", {-1, -1, -1}), gt::test::contains("does not match"),
                       gt::ProtocolError);
  CHECK_THROWS_AS(gt::from_wire(q, "a2", {3, 9}), gt::ProtocolError);
}

TEST_CASE("codec: a boolean field holding anything but 0 or 1 is rejected") {
  gt::ForwardRequest req;
  req.activations = gt::to_wire(torch::randn({1, 2, 3}));
  req.attention_mask = gt::to_wire(torch::ones({1, 2}, torch::kLong));
  auto enc = gt::encode(req);
  enc.bytes.back() = 2;  // keep_graph is the last field
  CHECK_THROWS_WITH_AS(gt::decode(enc), doctest::Contains("boolean field holds 2"),
                       gt::ProtocolError);
  enc.bytes.back() = 1;
  CHECK(gt::decode(enc).keep_graph);
}
