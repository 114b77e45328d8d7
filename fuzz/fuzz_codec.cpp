// libFuzzer target: arbitrary bytes into every message decoder of the codec
// (protocols/codec.hpp). The contract under test: decode either succeeds or
// throws gt::ProtocolError, allocating no more than the input justifies; so
// does from_wire on every tensor of a decoded message; and a decoded message
// re-encodes to bytes that decode again, to the same bytes, which are the input
// itself when the input was written little-endian (the codec's only canonical
// form). A zstd-compressed message (no tag matches its first bytes) goes to
// every decoder, which may unpack it up to kMaxMessageBytes. Any other
// exception, a crash, a sanitizer report or a large allocation
// (-malloc_limit_mb in scripts/fuzz) is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz/messages.hpp"
#include "protocols/codec.hpp"
#include "protocols/wire_tensor.hpp"

namespace {

[[noreturn]] void finding(const char* kind, const char* what) {
  std::fprintf(stderr, "fuzz_codec: %s: %s\n", kind, what);
  std::abort();
}

// A party's message limit (server.max_message_mb is 256 by default): a zstd frame may declare
// any content size up to it, and the decoder allocates that much once the frame checks out.
constexpr size_t kMaxMessageBytes = size_t(64) << 20;

template <class T>
void check(const uint8_t* data, size_t size) {
  T m;
  try {
    m = gt::decode(gt::Encoded<T>{std::vector<uint8_t>(data, data + size)}, kMaxMessageBytes);
  } catch (const gt::ProtocolError&) {
    return;  // rejected with a reason: fine
  }
  for (const gt::WireTensor* t : gt::fuzz::tensors_of(m)) {
    try {
      (void)gt::from_wire(*t, "fuzz");
    } catch (const gt::ProtocolError&) {
    }
  }
  const auto again = gt::encode(m);
  T m2;
  try {
    m2 = gt::decode(again);
  } catch (const gt::ProtocolError& e) {
    finding(gt::message_kind<T>(),
            (std::string("re-encoded message is rejected: ") + e.what()).c_str());
  }
  if (gt::encode(m2).bytes != again.bytes)
    finding(gt::message_kind<T>(), "decode(encode(m)) does not re-encode to the same bytes");
  // cereal's portable archive starts with 1 for little-endian data, as encode writes it.
  if (data[0] == 1 && again.bytes != std::vector<uint8_t>(data, data + size))
    finding(gt::message_kind<T>(), "accepted a non-canonical encoding");
}

// The 5 bytes each message type starts with: the archive's endianness byte and the type's tag.
struct Prefix {
  uint8_t bytes[5];
  void (*check)(const uint8_t*, size_t);
};

std::vector<Prefix> prefixes() {
  std::vector<Prefix> out;
  gt::fuzz::for_each_message([&](auto proto) {
    using T = decltype(proto);
    Prefix p{};
    std::memcpy(p.bytes, gt::encode(T{}).bytes.data(), 5);
    p.check = &check<T>;
    out.push_back(p);
  });
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<Prefix> kPrefixes = prefixes();
  if (size >= 5) {
    for (const auto& p : kPrefixes)
      if (std::memcmp(data, p.bytes, 5) == 0) {
        p.check(data, size);
        return 0;
      }
  }
  // No little-endian tag matches: garbage, a byte-swapped (big-endian) archive or a truncated
  // prefix. Every decoder gets it.
  for (const auto& p : kPrefixes) p.check(data, size);
  return 0;
}
