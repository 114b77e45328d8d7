// Moving a file (an emulator) between parties in checksummed chunks. The
// receiver appends to DIR/<id>.part and, after a dropped connection or a
// restart, resumes from the bytes already there; the whole file is checked
// against the sender's SHA-256 before it is renamed into place.
#pragma once

#include <cstdint>
#include <string>

#include "protocols/messages.hpp"

namespace gt {

inline constexpr int64_t kDefaultChunkBytes = int64_t(1) << 20;

// Hex SHA-256 of a file; throws gt::Error when it cannot be read.
std::string sha256_file(const std::string& path);

// Serves one file. The transfer id is derived from the content, so a rebuilt
// identical file keeps its id and a partial download of it stays valid.
class FileSource {
 public:
  FileSource(std::string path, std::string description, int64_t chunk_bytes = kDefaultChunkBytes);
  const TransferOffer& offer() const { return offer_; }
  // Throws ProtocolError for a wrong id or a range outside the file.
  ChunkReply chunk(const ChunkRequest& request) const;

 private:
  std::string path_;
  TransferOffer offer_;
};

class FileSink {
 public:
  // Validates the offer; resumes DIR/<id>.part when present (a complete file
  // already at DIR/<id> that matches the digest is taken as done).
  FileSink(const TransferOffer& offer, const std::string& dir);
  bool done() const { return received_ == offer_.total_bytes && verified_; }
  int64_t received() const { return received_; }
  int64_t resumed_from() const { return resumed_from_; }
  int64_t total() const { return offer_.total_bytes; }
  ChunkRequest next_request() const;
  // Appends the next chunk (checks id, offset, size, checksum: ProtocolError);
  // after the last one verifies the digest (a mismatch deletes the partial
  // file and throws gt::Error) and renames the file into place.
  void accept(const ChunkReply& reply);
  const std::string& path() const { return final_path_; }

 private:
  void finish();

  TransferOffer offer_;
  std::string part_path_, final_path_;
  int64_t received_ = 0, resumed_from_ = 0;
  bool verified_ = false;
};

}  // namespace gt
