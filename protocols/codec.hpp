// Encoding and decoding of protocol messages, with byte accounting. Every
// message is counted at its encoded size, which is what crosses the wire, so
// a one-process simulation reports the same bytes as a deployment.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "protocols/compression.hpp"

namespace gt {

// A message that failed validation: truncated, oversized, wrong version,
// wrong shape, garbage. The receiver rejects it and keeps serving.
struct ProtocolError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The encoded form of a message of type T: what CAF carries between actors and nodes.
template <class T>
struct Encoded {
  std::vector<uint8_t> bytes;
};

// Largest message a party accepts (activations of a big batch fit comfortably).
inline constexpr size_t kDefaultMaxMessageBytes = size_t(1) << 30;

// With Compression::zstd the message is one zstd frame (compression.hpp).
template <class T>
Encoded<T> encode(const T& message, Compression compression = Compression::none);
// Plain or zstd-compressed alike. Throws ProtocolError: bigger than max_bytes (compressed
// or not), truncated, trailing bytes, protocol version mismatch, malformed fields.
template <class T>
T decode(const Encoded<T>& encoded, size_t max_bytes = kDefaultMaxMessageBytes);

// Bytes and message counts by (link, direction, kind); thread-safe.
class WireStats {
 public:
  struct Count {
    int64_t messages = 0, bytes = 0;
  };
  using Key =
      std::tuple<std::string, std::string, std::string>;  // link, direction ("up"/"down"), kind

  void add(const std::string& link, const std::string& direction, const std::string& kind,
           int64_t bytes);
  // Called on every add, after counting (e.g. to feed Prometheus counters); one at a time.
  using Observer = std::function<void(const Key& key, int64_t bytes)>;
  void set_observer(Observer observer);
  std::map<Key, Count> snapshot() const;
  // Replaces every count (a resumed run's counts so far); the observer is not called.
  void restore(std::map<Key, Count> counts);
  int64_t total_bytes(const std::string& direction = "") const;  // "" = both directions

 private:
  mutable std::mutex mutex_;
  std::map<Key, Count> counts_;
  Observer observer_;
};

}  // namespace gt
