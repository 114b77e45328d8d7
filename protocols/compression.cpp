// See compression.hpp.
#include "protocols/compression.hpp"

#include <zstd.h>

#include "common/error.hpp"
#include "protocols/codec.hpp"

namespace gt {

Compression parse_compression(const std::string& name) {
  if (name == "none") return Compression::none;
  if (name == "zstd") return Compression::zstd;
  throw Error("unknown compression '" + name + "' (allowed: none, zstd)");
}

const char* to_string(Compression c) {
  return c == Compression::zstd ? "zstd" : "none";
}

std::vector<uint8_t> zstd_compress(const std::vector<uint8_t>& bytes) {
  std::vector<uint8_t> out(ZSTD_compressBound(bytes.size()));
  const size_t n = ZSTD_compress(out.data(), out.size(), bytes.data(), bytes.size(), 3);
  if (ZSTD_isError(n)) throw Error(std::string("zstd: ") + ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

bool is_zstd_frame(const std::vector<uint8_t>& bytes) {
  // ZSTD_MAGICNUMBER, little-endian.
  return bytes.size() >= 4 && bytes[0] == 0x28 && bytes[1] == 0xB5 && bytes[2] == 0x2F &&
         bytes[3] == 0xFD;
}

std::vector<uint8_t> zstd_decompress(const std::vector<uint8_t>& frame, size_t max_bytes) {
  const size_t whole = ZSTD_findFrameCompressedSize(frame.data(), frame.size());
  if (ZSTD_isError(whole))
    throw ProtocolError(std::string("zstd frame: ") + ZSTD_getErrorName(whole));
  if (whole != frame.size())
    throw ProtocolError("zstd frame: " + std::to_string(frame.size() - whole) +
                        " bytes after the frame");
  const auto size = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR)
    throw ProtocolError("zstd frame: no content size declared");
  if (size > max_bytes)
    throw ProtocolError("zstd frame: content of " + std::to_string(size) +
                        " bytes exceeds the limit of " + std::to_string(max_bytes));
  std::vector<uint8_t> out(static_cast<size_t>(size));
  const size_t n = ZSTD_decompress(out.data(), out.size(), frame.data(), frame.size());
  if (ZSTD_isError(n)) throw ProtocolError(std::string("zstd frame: ") + ZSTD_getErrorName(n));
  if (n != out.size())
    throw ProtocolError("zstd frame: " + std::to_string(n) + " bytes, " + std::to_string(size) +
                        " declared");
  return out;
}

}  // namespace gt
