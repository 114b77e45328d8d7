// zstd-compressed messages (strategy.compress): they decode to the same message as plain
// ones, only where compression pays, and a hostile frame is a ProtocolError before any
// large allocation.
#include <zstd.h>

#include <cstring>

#include "common/error.hpp"
#include "protocols/codec.hpp"
#include "protocols/compression.hpp"
#include "protocols/messages.hpp"
#include "protocols/wire_tensor.hpp"
#include "tests/doctest_torch.hpp"

namespace {

using gt::Compression;

gt::ForwardRequest activation_request() {
  gt::ForwardRequest m;
  m.header = gt::Header{gt::kProtocolVersion, 7, 3};
  // Real activations are far from random bytes; a smooth tensor stands in for them.
  const auto x = torch::linspace(-1, 1, 4 * 16 * 32).reshape({4, 16, 32}).sin();
  m.activations = gt::to_wire(x, gt::QuantScheme::int8);
  m.attention_mask = gt::to_wire(torch::ones({4, 16}, torch::kLong));
  return m;
}

}  // namespace

TEST_CASE("compression: a zstd message decodes to the same message, in fewer bytes") {
  const auto m = activation_request();
  const auto plain = gt::encode(m);
  const auto packed = gt::encode(m, Compression::zstd);
  CHECK(gt::is_zstd_frame(packed.bytes));
  CHECK(!gt::is_zstd_frame(plain.bytes));
  CHECK(packed.bytes.size() < plain.bytes.size());
  // Decoded, it is the plain message: it re-encodes to exactly the plain bytes.
  CHECK(gt::encode(gt::decode(packed)).bytes == plain.bytes);
  // Where compression does not pay (a tiny message), the plain bytes go.
  const gt::SessionBye bye{{gt::kProtocolVersion, 7, 3}};
  CHECK(gt::encode(bye, Compression::zstd).bytes == gt::encode(bye).bytes);
  CHECK(gt::parse_compression("zstd") == Compression::zstd);
  CHECK(std::string(gt::to_string(Compression::none)) == "none");
  CHECK_THROWS_WITH_AS(gt::parse_compression("gzip"), gt::test::contains("allowed: none, zstd"),
                       gt::Error);
}

TEST_CASE("compression: hostile frames are rejected with the reason") {
  const auto m = activation_request();
  const auto plain = gt::encode(m).bytes;
  const auto frame = gt::encode(m, Compression::zstd).bytes;
  using E = gt::Encoded<gt::ForwardRequest>;
  auto rejects = [](std::vector<uint8_t> bytes, const char* why, size_t max = 1 << 20) {
    CHECK_THROWS_WITH_AS(gt::decode(E{std::move(bytes)}, max), gt::test::contains(why),
                         gt::ProtocolError);
  };
  // Unpacking to more than the limit is refused before the content is allocated.
  rejects(frame, "exceeds the limit of 100", 100);
  CHECK_NOTHROW(gt::decode(E{frame}, plain.size()));
  // Trailing bytes, truncation, corruption.
  auto trailing = frame;
  trailing.push_back(0);
  rejects(trailing, "bytes after the frame");
  rejects(std::vector<uint8_t>(frame.begin(), frame.end() - 3), "zstd frame");
  auto corrupt = frame;
  for (size_t i = 12; i < corrupt.size(); i += 7) corrupt[i] ^= 0x5A;
  rejects(corrupt, "activations_up: zstd frame");
  // A frame that declares no content size (a streaming compressor's) is not ours: its size
  // would only be known by unpacking it.
  std::vector<uint8_t> streamed(ZSTD_compressBound(plain.size()));
  {
    auto* cctx = ZSTD_createCCtx();
    REQUIRE(!ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0)));
    const size_t n =
        ZSTD_compress2(cctx, streamed.data(), streamed.size(), plain.data(), plain.size());
    ZSTD_freeCCtx(cctx);
    REQUIRE(!ZSTD_isError(n));
    streamed.resize(n);
  }
  rejects(streamed, "no content size declared");
  rejects(gt::zstd_compress(frame), "a zstd frame inside a zstd frame");
  // A zstd frame of garbage decodes to garbage: the codec's own checks catch it.
  rejects(gt::zstd_compress(std::vector<uint8_t>(300, 0x41)), "wrong tag");
}
