// Chunked, checksummed, resumable file transfer (the emulator download).
#include <filesystem>
#include <fstream>
#include <random>

#include "common/error.hpp"
#include "protocols/codec.hpp"
#include "protocols/file_transfer.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/temp_dir.hpp"

namespace {

std::string random_file(const gt::test::TempDir& dir, size_t bytes) {
  std::mt19937 rng(7);
  std::string data(bytes, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  return dir.write("source.bin", data);
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Every message crosses the codec, as between actors.
template <class T>
T wire(const T& m) {
  return gt::decode(gt::encode(m));
}

}  // namespace

TEST_CASE("file transfer: a dropped download resumes from the bytes on disk, not from zero") {
  gt::test::TempDir src, dst;
  const auto path = random_file(src, 10 * 1000 + 123);
  gt::FileSource source(path, "test file", 1000);
  const auto offer = wire(source.offer());
  CHECK(offer.total_bytes == 10123);
  CHECK(offer.sha256 == gt::sha256_file(path));

  int64_t requested = 0;
  {
    gt::FileSink sink(offer, dst.str());
    CHECK(sink.resumed_from() == 0);
    for (int i = 0; i < 4; ++i) {  // 4 chunks arrive, then the connection drops
      auto req = wire(sink.next_request());
      requested += req.length;
      sink.accept(wire(source.chunk(req)));
    }
    CHECK_FALSE(sink.done());
  }
  gt::FileSink resumed(offer, dst.str());  // a new sink: after a reconnect or a restart
  CHECK(resumed.resumed_from() == 4000);
  CHECK(resumed.next_request().offset == 4000);
  while (!resumed.done()) {
    auto req = wire(resumed.next_request());
    requested += req.length;
    resumed.accept(wire(source.chunk(req)));
  }
  CHECK(requested == offer.total_bytes);  // no byte fetched twice
  CHECK(read_all(resumed.path()) == read_all(path));
  CHECK_FALSE(std::filesystem::exists(resumed.path() + ".part"));
  // Offered again, the finished file is recognised and nothing is fetched.
  gt::FileSink again(offer, dst.str());
  CHECK(again.done());
}

TEST_CASE("file transfer: corrupt, misplaced and forged chunks are refused") {
  gt::test::TempDir src, dst;
  const auto path = random_file(src, 3000);
  gt::FileSource source(path, "test file", 1000);
  gt::FileSink sink(source.offer(), dst.str());
  auto chunk = source.chunk(sink.next_request());

  auto flipped = chunk;
  flipped.data[10] ^= 1;
  CHECK_THROWS_AS(sink.accept(flipped), gt::ProtocolError);  // checksum
  auto later = source.chunk({{}, chunk.transfer_id, 1000, 1000});
  CHECK_THROWS_AS(sink.accept(later), gt::ProtocolError);  // not the next bytes
  auto other = chunk;
  other.transfer_id = "0123";
  CHECK_THROWS_AS(sink.accept(other), gt::ProtocolError);
  CHECK(sink.received() == 0);
  sink.accept(chunk);
  CHECK(sink.received() == 1000);

  // The source refuses ranges outside the file and unknown transfers.
  CHECK_THROWS_AS(source.chunk({{}, chunk.transfer_id, 2500, 1000}), gt::ProtocolError);
  CHECK_THROWS_AS(source.chunk({{}, chunk.transfer_id, -1, 10}), gt::ProtocolError);
  CHECK_THROWS_AS(source.chunk({{}, chunk.transfer_id, 0, 1001}), gt::ProtocolError);
  CHECK_THROWS_AS(source.chunk({{}, "ffff", 0, 10}), gt::ProtocolError);
  // A hostile offer cannot name a path outside the download directory.
  auto bad = source.offer();
  bad.transfer_id = "../../etc/passwd";
  CHECK_THROWS_AS(gt::FileSink(bad, dst.str()), gt::ProtocolError);
}

TEST_CASE("file transfer: a partial file that does not match the digest is fetched again") {
  gt::test::TempDir src, dst;
  const auto path = random_file(src, 2500);
  gt::FileSource source(path, "test file", 1000);
  const auto offer = source.offer();
  // Garbage of the right length where the partial download should be.
  dst.write(offer.transfer_id + ".part", std::string(2000, 'x'));
  gt::FileSink sink(offer, dst.str());
  CHECK(sink.resumed_from() == 2000);
  CHECK_THROWS_AS(sink.accept(source.chunk(sink.next_request())), gt::Error);
  CHECK_FALSE(std::filesystem::exists(dst.file(offer.transfer_id + ".part")));
  gt::FileSink fresh(offer, dst.str());  // starts over and completes
  CHECK(fresh.resumed_from() == 0);
  while (!fresh.done()) fresh.accept(source.chunk(fresh.next_request()));
  CHECK(read_all(fresh.path()) == read_all(path));
}
