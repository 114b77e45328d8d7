// See file_transfer.hpp.
#include "protocols/file_transfer.hpp"

#include <openssl/evp.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "common/error.hpp"
#include "common/stable_hash.hpp"
#include "protocols/codec.hpp"

namespace gt {
namespace fs = std::filesystem;

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw error_at(path, "cannot read");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) out += {hex[digest[i] >> 4], hex[digest[i] & 15]};
  return out;
}

FileSource::FileSource(std::string path, std::string description, int64_t chunk_bytes)
    : path_(std::move(path)) {
  if (chunk_bytes <= 0) throw Error("chunk size must be > 0");
  offer_.sha256 = sha256_file(path_);
  offer_.transfer_id = offer_.sha256.substr(0, 24);
  offer_.total_bytes = static_cast<int64_t>(fs::file_size(path_));
  offer_.chunk_bytes = chunk_bytes;
  offer_.description = std::move(description);
}

ChunkReply FileSource::chunk(const ChunkRequest& req) const {
  if (req.transfer_id != offer_.transfer_id)
    throw ProtocolError("chunk_request: unknown transfer '" + req.transfer_id + "'");
  if (req.offset < 0 || req.length <= 0 || req.length > offer_.chunk_bytes ||
      req.offset > offer_.total_bytes - req.length)
    throw ProtocolError("chunk_request: bytes [" + std::to_string(req.offset) + ", +" +
                        std::to_string(req.length) + ") outside the " +
                        std::to_string(offer_.total_bytes) + "-byte file or over the chunk size");
  ChunkReply reply;
  reply.header = req.header;
  reply.transfer_id = req.transfer_id;
  reply.offset = req.offset;
  reply.data.resize(static_cast<size_t>(req.length));
  std::ifstream in(path_, std::ios::binary);
  in.seekg(req.offset);
  in.read(reinterpret_cast<char*>(reply.data.data()), req.length);
  if (in.gcount() != req.length) throw Error(path_ + ": changed while being served");
  reply.checksum = stable_hash(reply.data.data(), reply.data.size());
  return reply;
}

FileSink::FileSink(const TransferOffer& offer, const std::string& dir) : offer_(offer) {
  const auto& id = offer.transfer_id;
  if (id.empty() || id.size() > 64 || id.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw ProtocolError("transfer_offer: bad transfer id '" + id + "'");
  if (offer.total_bytes <= 0 || offer.chunk_bytes <= 0 || offer.sha256.size() != 64)
    throw ProtocolError("transfer_offer: bad size, chunk size or digest");
  fs::create_directories(dir);
  final_path_ = (fs::path(dir) / id).string();
  part_path_ = final_path_ + ".part";
  if (fs::exists(final_path_) && sha256_file(final_path_) == offer.sha256) {
    received_ = resumed_from_ = offer.total_bytes;
    verified_ = true;
    return;
  }
  if (fs::exists(part_path_)) {
    received_ = static_cast<int64_t>(fs::file_size(part_path_));
    if (received_ > offer.total_bytes) fs::remove(part_path_), received_ = 0;  // not ours
  }
  resumed_from_ = received_;
  if (received_ == offer.total_bytes) finish();
}

ChunkRequest FileSink::next_request() const {
  ChunkRequest req;
  req.transfer_id = offer_.transfer_id;
  req.offset = received_;
  req.length = std::min(offer_.chunk_bytes, offer_.total_bytes - received_);
  return req;
}

void FileSink::accept(const ChunkReply& reply) {
  if (done()) throw ProtocolError("chunk_down: the transfer is already complete");
  const auto expected = next_request();
  if (reply.transfer_id != offer_.transfer_id || reply.offset != expected.offset ||
      static_cast<int64_t>(reply.data.size()) != expected.length)
    throw ProtocolError("chunk_down: got bytes [" + std::to_string(reply.offset) + ", +" +
                        std::to_string(reply.data.size()) + ") of '" + reply.transfer_id +
                        "', expected [" + std::to_string(expected.offset) + ", +" +
                        std::to_string(expected.length) + ")");
  if (stable_hash(reply.data.data(), reply.data.size()) != reply.checksum)
    throw ProtocolError("chunk_down: checksum mismatch at offset " + std::to_string(reply.offset));
  {
    std::ofstream out(part_path_, std::ios::binary | std::ios::app);
    out.write(reinterpret_cast<const char*>(reply.data.data()),
              static_cast<std::streamsize>(reply.data.size()));
    if (!out.flush()) throw error_at(part_path_, "cannot write");
  }
  received_ += static_cast<int64_t>(reply.data.size());
  if (received_ == offer_.total_bytes) finish();
}

void FileSink::finish() {
  if (sha256_file(part_path_) != offer_.sha256) {
    fs::remove(part_path_);
    received_ = 0;
    throw Error("transfer " + offer_.transfer_id +
                ": the received file does not match its SHA-256; it will be fetched again");
  }
  fs::rename(part_path_, final_path_);
  verified_ = true;
}

}  // namespace gt
