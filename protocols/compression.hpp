// Optional zstd compression of whole encoded messages (strategy.compress). A
// compressed message is one zstd frame that declares its content size; the
// decoder tells it from a plain one by zstd's magic number (a plain message
// starts with cereal's byte-order byte, 1), so either may arrive anywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gt {

enum class Compression : uint8_t { none = 0, zstd = 1 };

Compression parse_compression(const std::string& name);  // "none" | "zstd"; throws gt::Error
const char* to_string(Compression c);

// One zstd frame (level 3) holding `bytes`, its content size declared.
std::vector<uint8_t> zstd_compress(const std::vector<uint8_t>& bytes);

bool is_zstd_frame(const std::vector<uint8_t>& bytes);

// The content of a frame made by zstd_compress. Throws ProtocolError for anything else: a
// corrupt frame, trailing bytes, no or a wrong declared size, or a content larger than
// max_bytes (checked before anything is allocated).
std::vector<uint8_t> zstd_decompress(const std::vector<uint8_t>& frame, size_t max_bytes);

}  // namespace gt
