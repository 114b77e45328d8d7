// Unit tests for the safetensors reader/writer: real fixtures, round trips, malformed files.
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <type_traits>

#include "common/error.hpp"
#include "models/safetensors.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/temp_dir.hpp"
#include "tests/test_paths.hpp"

namespace fs = std::filesystem;
using gt::SafetensorsFile;

namespace {

using gt::test::TempDir;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string u64_le(uint64_t n) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &n, 8);
  return s;
}

// A file with the given header text (length prefix added) and `data_bytes` zero bytes of data.
std::string write_st(const TempDir& dir, const std::string& header, size_t data_bytes = 0) {
  const std::string path = dir.file("bad.safetensors");
  write_bytes(path, u64_le(header.size()) + header + std::string(data_bytes, '\0'));
  return path;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const auto ac = a.contiguous(), bc = b.contiguous();
  const size_t n = ac.numel() * ac.element_size();
  return n == 0 || std::memcmp(ac.data_ptr(), bc.data_ptr(), n) == 0;
}

const char* kOptTiny = "hf-reference/opt-tiny-s1/model.safetensors";

}  // namespace

static_assert(!std::is_copy_constructible_v<SafetensorsFile>);
static_assert(std::is_nothrow_move_constructible_v<SafetensorsFile>);

TEST_CASE("safetensors: reads the opt-tiny fixture like an independent parse") {
  const std::string path = gt::test::fixture(kOptTiny);
  SafetensorsFile f(path);
  CHECK(f.path() == path);
  const auto names = f.names();
  CHECK(std::is_sorted(names.begin(), names.end()));
  CHECK(f.contains("model.decoder.layers.0.fc1.weight"));
  CHECK_FALSE(f.contains("__metadata__"));
  CHECK(f.metadata().at("format") == "pt");

  // Shapes follow the config; the bytes match a plain re-read of the file.
  std::ifstream cfg_in(gt::test::fixture("hf-reference/opt-tiny-s1/config.json"));
  const auto cfg = nlohmann::json::parse(cfg_in);
  const auto& fc1 = f.entry("model.decoder.layers.0.fc1.weight");
  CHECK(fc1.dtype == gt::StDtype::F32);
  CHECK(fc1.shape ==
        std::vector<int64_t>{cfg["ffn_dim"].get<int64_t>(), cfg["hidden_size"].get<int64_t>()});

  const std::string raw = read_all(path);
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  const auto header = nlohmann::json::parse(raw.substr(8, n));
  CHECK(names.size() + 1 == header.size());  // + __metadata__
  for (const auto& name : names) {
    const auto& h = header.at(name);
    const uint64_t begin = h["data_offsets"][0], end = h["data_offsets"][1];
    const torch::Tensor t = f.tensor(name);
    CHECK((t.scalar_type() == torch::kFloat));
    CHECK(t.sizes().vec() == h["shape"].get<std::vector<int64_t>>());
    CHECK(std::string(static_cast<const char*>(t.data_ptr()), end - begin) ==
          raw.substr(8 + n + begin, end - begin));
  }
}

TEST_CASE("safetensors: F16 model converts to F32 exactly like torch") {
  SafetensorsFile f(gt::test::model_dir() + "/model.safetensors");
  for (const auto& name : f.names()) {
    CHECK(f.entry(name).dtype == gt::StDtype::F16);
    const torch::Tensor half = f.tensor(name);
    const torch::Tensor as_f32 = f.tensor(name, torch::kFloat);
    CHECK((half.scalar_type() == torch::kHalf));
    CHECK((as_f32.scalar_type() == torch::kFloat));
    CHECK(same_bits(as_f32, half.to(torch::kFloat)));
  }
}

TEST_CASE("safetensors: tensors are owned copies that outlive the file") {
  const std::string name = "model.decoder.layers.0.fc1.bias";
  torch::Tensor t, again;
  {
    SafetensorsFile f(gt::test::fixture(kOptTiny));
    t = f.tensor(name);
    const torch::Tensor original = t.clone();
    t.add_(1.0);  // writing must not fault (read-only mapping) nor change later reads
    again = f.tensor(name);
    CHECK(same_bits(again, original));
  }
  CHECK(same_bits(t, again + 1.0));  // still the modified copy after the file is gone
}

TEST_CASE("safetensors: moved-to file keeps working") {
  SafetensorsFile a(gt::test::fixture(kOptTiny));
  const torch::Tensor expected = a.tensor("model.decoder.final_layer_norm.weight");
  SafetensorsFile b(std::move(a));
  CHECK(same_bits(b.tensor("model.decoder.final_layer_norm.weight"), expected));
  SafetensorsFile c(gt::test::model_dir() + "/model.safetensors");
  c = std::move(b);
  CHECK(same_bits(c.tensor("model.decoder.final_layer_norm.weight"), expected));
}

TEST_CASE("safetensors: entry for a missing name names the file and tensor") {
  SafetensorsFile f(gt::test::fixture(kOptTiny));
  CHECK_THROWS_WITH_AS(f.entry("nope"), doctest::Contains("no tensor named 'nope'"), gt::Error);
  CHECK_THROWS_WITH_AS(f.tensor("nope"), gt::test::contains(f.path()), gt::Error);
}

TEST_CASE("safetensors: write/read round trip is bit exact with metadata") {
  TempDir dir;
  torch::manual_seed(7);
  auto f32 = torch::randn({3, 5});
  f32[0][0] = std::numeric_limits<float>::quiet_NaN();
  f32[0][1] = -0.0f;
  f32[0][2] = std::numeric_limits<float>::infinity();
  const std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"w.f32", f32},
      {"w.f16", torch::randn({4, 3}).to(torch::kHalf)},
      {"w.bf16", torch::randn({2, 7}).to(torch::kBFloat16)},
      {"ids.i64", torch::randint(-1000000, 1000000, {9}, torch::kLong)},
      {"t.transposed", torch::randn({3, 4}).t()},  // non-contiguous: stored contiguous
      {"f64", torch::randn({2}, torch::kDouble)},
      {"i32", torch::arange(5, torch::kInt)},
      {"i16", torch::arange(3, torch::kShort)},
      {"i8", torch::arange(-3, 3, torch::kChar)},
      {"u8", torch::arange(250, 256, torch::kLong).to(torch::kByte)},
      {"mask", torch::tensor({true, false, true})},
      {"scalar", torch::tensor(2.5)},
      {"empty", torch::zeros({0, 3})},
  };
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "a \"quoted\" é"}};
  const std::string path = dir.file("rt.safetensors");
  gt::save_safetensors(path, tensors, meta);

  SafetensorsFile f(path);
  CHECK(f.metadata() == meta);
  CHECK(f.names().size() == tensors.size());
  uint64_t expected_begin = 0;
  for (const auto& [name, t] : tensors) {
    const auto& e = f.entry(name);
    CHECK(e.begin == expected_begin);  // laid out in the given order, no gaps
    expected_begin = e.end;
    CHECK((gt::to_torch(e.dtype) == t.scalar_type()));
    CHECK(same_bits(f.tensor(name), t));
  }
  CHECK(f.entry("w.bf16").dtype == gt::StDtype::BF16);
  CHECK(same_bits(f.tensor("w.bf16", torch::kFloat), tensors[2].second.to(torch::kFloat)));

  // Header length is a multiple of 8 and padded with spaces after the JSON.
  const std::string raw = read_all(path);
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  CHECK(n % 8 == 0);
  const std::string header = raw.substr(8, n);
  const size_t last = header.find_last_not_of(' ');
  CHECK(header[last] == '}');
  CHECK(raw.size() == 8 + n + expected_begin);
}

TEST_CASE("safetensors: save overwrites atomically and leaves no temporary files") {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  gt::save_safetensors(path, {{"a", torch::ones({2})}});
  gt::save_safetensors(path, {{"b", torch::zeros({3})}});
  SafetensorsFile f(path);
  CHECK(f.names() == std::vector<std::string>{"b"});
  CHECK(f.metadata().empty());
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator{}) == 1);
}

TEST_CASE("safetensors: save rejects bad names, dtypes and destinations") {
  TempDir dir;
  const std::string path = dir.file("x.safetensors");
  const auto t = torch::ones({2});
  CHECK_THROWS_WITH_AS(gt::save_safetensors(path, {{"a", t}, {"a", t}}),
                       doctest::Contains("duplicate tensor name 'a'"), gt::Error);
  CHECK_THROWS_WITH_AS(gt::save_safetensors(path, {{"", t}}), doctest::Contains("empty name"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(gt::save_safetensors(path, {{"__metadata__", t}}),
                       doctest::Contains("not a valid tensor name"), gt::Error);
  CHECK_THROWS_WITH_AS(gt::save_safetensors(path, {{"u", torch::Tensor()}}),
                       doctest::Contains("'u' is undefined"), gt::Error);
  CHECK_THROWS_WITH_AS(gt::save_safetensors(path, {{"c", torch::ones({2}, torch::kComplexFloat)}}),
                       doctest::Contains("safetensors cannot store"), gt::Error);
  CHECK_THROWS_WITH_AS(gt::save_safetensors(dir.file("no/such/dir/x.safetensors"), {{"a", t}}),
                       doctest::Contains("cannot create temporary file"), gt::Error);
  CHECK(fs::is_empty(dir.path));
}

// ---- Malformed files: each must be a gt::Error naming the file, never a crash. ----

TEST_CASE("safetensors: missing file") {
  TempDir dir;
  const std::string path = dir.file("absent.safetensors");
  CHECK_THROWS_WITH_AS(SafetensorsFile{path}, gt::test::contains(path + ": cannot open"),
                       gt::Error);
}

TEST_CASE("safetensors: a directory is not a safetensors file") {
  TempDir dir;
  CHECK_THROWS_WITH_AS(SafetensorsFile{dir.path.string()}, doctest::Contains("not a regular file"),
                       gt::Error);
}

TEST_CASE("safetensors: file shorter than 8 bytes") {
  TempDir dir;
  const std::string path = dir.file("short.safetensors");
  write_bytes(path, "abc");
  CHECK_THROWS_WITH_AS(SafetensorsFile{path},
                       gt::test::contains(path + ": file is 3 bytes, shorter than"), gt::Error);
  write_bytes(path, "");
  CHECK_THROWS_WITH_AS(SafetensorsFile{path}, doctest::Contains("file is 0 bytes"), gt::Error);
}

TEST_CASE("safetensors: header length beyond the file") {
  TempDir dir;
  const std::string path = dir.file("long.safetensors");
  write_bytes(path, u64_le(1000) + "{}");
  CHECK_THROWS_WITH_AS(SafetensorsFile{path},
                       doctest::Contains("header length 1000 exceeds the 2 bytes"), gt::Error);
}

TEST_CASE("safetensors: absurdly large header length") {
  TempDir dir;
  const std::string path = dir.file("huge.safetensors");
  write_bytes(path, u64_le(~0ull) + "{}");
  CHECK_THROWS_WITH_AS(SafetensorsFile{path}, doctest::Contains("byte limit"), gt::Error);
}

TEST_CASE("safetensors: header that is not JSON") {
  TempDir dir;
  CHECK_THROWS_WITH_AS(SafetensorsFile{write_st(dir, "{\"a\": ")},
                       doctest::Contains("header is not valid JSON"), gt::Error);
  CHECK_THROWS_WITH_AS(SafetensorsFile{write_st(dir, std::string("{}\0junk", 7))},
                       doctest::Contains("header contains a NUL byte"), gt::Error);
}

TEST_CASE("safetensors: header that is not an object") {
  TempDir dir;
  CHECK_THROWS_WITH_AS(SafetensorsFile{write_st(dir, "[1, 2]")},
                       doctest::Contains("header is not a JSON object"), gt::Error);
}

TEST_CASE("safetensors: entry missing a field") {
  TempDir dir;
  CHECK_THROWS_WITH_AS(
      SafetensorsFile{write_st(dir, R"({"x": {"shape": [1], "data_offsets": [0, 4]}})", 4)},
      doctest::Contains("tensor 'x': missing 'dtype'"), gt::Error);
  CHECK_THROWS_WITH_AS(
      SafetensorsFile{write_st(dir, R"({"x": {"dtype": "F32", "data_offsets": [0, 4]}})", 4)},
      doctest::Contains("tensor 'x': missing 'shape'"), gt::Error);
  CHECK_THROWS_WITH_AS(
      SafetensorsFile{write_st(dir, R"({"x": {"dtype": "F32", "shape": [1]}})", 4)},
      doctest::Contains("tensor 'x': missing 'data_offsets'"), gt::Error);
}

TEST_CASE("safetensors: entry fields of the wrong JSON type") {
  TempDir dir;
  auto bad = [&](const std::string& header) { SafetensorsFile{write_st(dir, header, 16)}; };
  CHECK_THROWS_WITH_AS(bad(R"({"x": [1]})"), doctest::Contains("entry is not a JSON object"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(bad(R"({"x": {"dtype": 5, "shape": [1], "data_offsets": [0, 4]}})"),
                       doctest::Contains("'dtype' is not a string"), gt::Error);
  CHECK_THROWS_WITH_AS(bad(R"({"x": {"dtype": "F32", "shape": 1, "data_offsets": [0, 4]}})"),
                       doctest::Contains("'shape' is not an array of integers"), gt::Error);
  CHECK_THROWS_WITH_AS(bad(R"({"x": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}})"),
                       doctest::Contains("'shape' is not an array of integers"), gt::Error);
  CHECK_THROWS_WITH_AS(bad(R"({"x": {"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]}})"),
                       doctest::Contains("'shape' is not an array of integers"), gt::Error);
  CHECK_THROWS_WITH_AS(bad(R"({"": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})"),
                       doctest::Contains("empty name"), gt::Error);
}

TEST_CASE("safetensors: unknown dtype") {
  TempDir dir;
  const auto path =
      write_st(dir, R"({"x": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}})", 16);
  CHECK_THROWS_WITH_AS(SafetensorsFile{path}, doctest::Contains("tensor 'x': unknown dtype 'F128'"),
                       gt::Error);
}

TEST_CASE("safetensors: negative dimension") {
  TempDir dir;
  const auto path =
      write_st(dir, R"({"x": {"dtype": "F32", "shape": [2, -3], "data_offsets": [0, 0]}})");
  CHECK_THROWS_WITH_AS(SafetensorsFile{path}, doctest::Contains("negative dimension -3"),
                       gt::Error);
}

TEST_CASE("safetensors: shape whose byte size overflows") {
  TempDir dir;
  auto bad = [&](const std::string& shape) {
    SafetensorsFile{write_st(
        dir, R"({"x": {"dtype": "F32", "shape": )" + shape + R"(, "data_offsets": [0, 0]}})")};
  };
  CHECK_THROWS_WITH_AS(bad("[4294967296, 4294967296]"), doctest::Contains("byte size overflows"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(bad("[18446744073709551615]"), doctest::Contains("byte size overflows"),
                       gt::Error);
  // numel is 0, but the strides of such a tensor would still overflow int64
  CHECK_THROWS_WITH_AS(bad("[0, 3037000500, 3037000500]"), doctest::Contains("overflows"),
                       gt::Error);
}

TEST_CASE("safetensors: data_offsets not [begin, end] with begin <= end") {
  TempDir dir;
  auto bad = [&](const std::string& offsets) {
    SafetensorsFile{write_st(
        dir, R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": )" + offsets + "}}", 16)};
  };
  for (const char* o : {"[0]", "[0, 4, 8]", "[-4, 0]", "[0, \"4\"]", "{\"begin\": 0}", "4"})
    CHECK_THROWS_WITH_AS(bad(o), doctest::Contains("'data_offsets' must be [begin, end]"),
                         gt::Error);
  CHECK_THROWS_WITH_AS(bad("[8, 4]"), doctest::Contains("have begin > end"), gt::Error);
}

TEST_CASE("safetensors: data_offsets end beyond the data section") {
  TempDir dir;
  const auto path =
      write_st(dir, R"({"x": {"dtype": "F32", "shape": [4], "data_offsets": [4, 20]}})", 16);
  CHECK_THROWS_WITH_AS(SafetensorsFile{path},
                       doctest::Contains("end 20 is beyond the data section (16 bytes)"),
                       gt::Error);
}

TEST_CASE("safetensors: byte size disagrees with the shape") {
  TempDir dir;
  const auto path =
      write_st(dir, R"({"x": {"dtype": "F16", "shape": [3], "data_offsets": [0, 8]}})", 16);
  CHECK_THROWS_WITH_AS(SafetensorsFile{path},
                       doctest::Contains("span 8 bytes but shape [3] of F16 needs 6"), gt::Error);
}

TEST_CASE("safetensors: overlapping tensor ranges") {
  TempDir dir;
  const auto path = write_st(dir,
                             R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                 "b": {"dtype": "I64", "shape": [1], "data_offsets": [12, 20]},
                                 "z": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}})",
                             24);
  CHECK_THROWS_WITH_AS(SafetensorsFile{path}, doctest::Contains("tensors 'a' and 'b' overlap"),
                       gt::Error);
}

TEST_CASE("safetensors: __metadata__ must map strings to strings") {
  TempDir dir;
  CHECK_THROWS_WITH_AS(SafetensorsFile{write_st(dir, R"({"__metadata__": ["pt"]})")},
                       doctest::Contains("'__metadata__' is not a JSON object"), gt::Error);
  CHECK_THROWS_WITH_AS(SafetensorsFile{write_st(dir, R"({"__metadata__": {"n": 1}})")},
                       doctest::Contains("'__metadata__' value for 'n' is not a string"),
                       gt::Error);
}

TEST_CASE("safetensors: BOOL bytes other than 0/1 are rejected on load") {
  TempDir dir;
  const std::string path = dir.file("bool.safetensors");
  const std::string header = R"({"m": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}})";
  write_bytes(path, u64_le(header.size()) + header + std::string("\x01\x07", 2));
  SafetensorsFile f(path);
  CHECK_THROWS_WITH_AS(f.tensor("m"), doctest::Contains("BOOL byte is not 0 or 1"), gt::Error);
}

TEST_CASE("safetensors: minimal valid files from hand-written headers") {
  TempDir dir;
  // Empty header with space padding, and zero-sized tensors sharing an offset, are valid.
  CHECK(SafetensorsFile{write_st(dir, "{}      ")}.names().empty());
  SafetensorsFile f(write_st(dir,
                             R"({"a": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]},
                                 "b": {"dtype": "I8", "shape": [2, 0], "data_offsets": [0, 0]}})"));
  CHECK(f.tensor("b").sizes().vec() == std::vector<int64_t>{2, 0});
}
