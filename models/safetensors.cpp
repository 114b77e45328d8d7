// Safetensors reader (mmap + strict header validation) and atomic writer.
#include "models/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/error.hpp"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little endian");

namespace gt {
namespace {

// Real headers are kilobytes; this bounds the allocation a corrupt length could cause.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

struct DtypeInfo {
  StDtype st;
  const char* name;
  torch::ScalarType torch;
  size_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {StDtype::F64, "F64", torch::kDouble, 8}, {StDtype::F32, "F32", torch::kFloat, 4},
    {StDtype::F16, "F16", torch::kHalf, 2},   {StDtype::BF16, "BF16", torch::kBFloat16, 2},
    {StDtype::I64, "I64", torch::kLong, 8},   {StDtype::I32, "I32", torch::kInt, 4},
    {StDtype::I16, "I16", torch::kShort, 2},  {StDtype::I8, "I8", torch::kChar, 1},
    {StDtype::U8, "U8", torch::kByte, 1},     {StDtype::BOOL, "BOOL", torch::kBool, 1},
};

const DtypeInfo& info(StDtype d) {
  for (const auto& i : kDtypes)
    if (i.st == d) return i;
  throw Error("safetensors: invalid StDtype value " + std::to_string(static_cast<int>(d)));
}

// Parses one header entry; `where` is "<path>: tensor 'name'" so messages name file and tensor.
TensorEntry parse_entry(const std::string& where, const std::string& name,
                        const nlohmann::json& j) {
  auto fail = [&](const std::string& what) { return Error(where + ": " + what); };
  if (!j.is_object()) throw fail("entry is not a JSON object");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!j.contains(key)) throw fail(std::string("missing '") + key + "'");

  const auto& jd = j.at("dtype");
  if (!jd.is_string()) throw fail("'dtype' is not a string");
  auto dtype = st_dtype_from_string(jd.get<std::string>());
  if (!dtype) throw fail("unknown dtype '" + jd.get<std::string>() + "'");

  const auto& js = j.at("shape");
  if (!js.is_array()) throw fail("'shape' is not an array of integers");
  TensorEntry e{name, *dtype, {}, 0, 0};
  // `extent` multiplies max(dim, 1) so even zero-sized tensors have strides that fit in int64.
  uint64_t numel = 1, extent = info(*dtype).size;
  bool overflow = false;
  for (const auto& d : js) {
    if (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0)
      throw fail("negative dimension " + std::to_string(d.get<int64_t>()) + " in shape");
    if (!d.is_number_unsigned()) throw fail("'shape' is not an array of integers");
    const uint64_t dim = d.get<uint64_t>();
    overflow |= __builtin_mul_overflow(extent, std::max<uint64_t>(dim, 1), &extent);
    overflow |= extent > static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    if (overflow) throw fail("shape " + js.dump() + " is too large (byte size overflows)");
    numel *= dim;  // cannot overflow: numel <= extent
    e.shape.push_back(static_cast<int64_t>(dim));
  }

  const auto& jo = j.at("data_offsets");
  if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() ||
      !jo[1].is_number_unsigned())
    throw fail("'data_offsets' must be [begin, end] with non-negative integers, got " + jo.dump());
  e.begin = jo[0].get<uint64_t>();
  e.end = jo[1].get<uint64_t>();
  if (e.begin > e.end) throw fail("data_offsets " + jo.dump() + " have begin > end");
  const uint64_t need = numel * info(*dtype).size;
  if (e.end - e.begin != need)
    throw fail("data_offsets " + jo.dump() + " span " + std::to_string(e.end - e.begin) +
               " bytes but shape " + shape_string(e.shape) + " of " + to_string(*dtype) +
               " needs " + std::to_string(need));
  return e;
}

std::string errno_str() {
  return std::strerror(errno);
}

}  // namespace

torch::ScalarType to_torch(StDtype d) {
  return info(d).torch;
}

std::optional<StDtype> from_torch(torch::ScalarType t) {
  for (const auto& i : kDtypes)
    if (i.torch == t) return i.st;
  return std::nullopt;
}

const char* to_string(StDtype d) {
  return info(d).name;
}

std::optional<StDtype> st_dtype_from_string(const std::string& s) {
  for (const auto& i : kDtypes)
    if (s == i.name) return i.st;
  return std::nullopt;
}

size_t itemsize(StDtype d) {
  return info(d).size;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw error_at(path, "cannot open: " + errno_str());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string why = errno_str();
    ::close(fd);
    throw error_at(path, "cannot stat: " + why);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw error_at(path, "not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw error_at(
        path, "file is " + std::to_string(size_) + " bytes, shorter than the 8-byte header length");
  }
  void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  const std::string why = errno_str();
  ::close(fd);  // the mapping stays valid without the descriptor
  if (m == MAP_FAILED) throw error_at(path, "cannot mmap: " + why);
  map_ = static_cast<const uint8_t*>(m);

  try {
    uint64_t n = 0;
    std::memcpy(&n, map_, 8);  // little endian, checked by the static_assert above
    if (n > kMaxHeaderBytes)
      throw error_at(path, "header length " + std::to_string(n) + " is larger than the " +
                               std::to_string(kMaxHeaderBytes) + "-byte limit");
    if (n > size_ - 8)
      throw error_at(path, "header length " + std::to_string(n) + " exceeds the " +
                               std::to_string(size_ - 8) + " bytes after the length field");
    data_start_ = 8 + n;
    const uint64_t data_size = size_ - data_start_;

    // nlohmann stops at a NUL byte as if the input ended, which would hide trailing garbage.
    if (std::memchr(map_ + 8, '\0', n)) throw error_at(path, "header contains a NUL byte");
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(map_ + 8, map_ + 8 + n);
    } catch (const nlohmann::json::exception& e) {
      throw error_at(path, std::string("header is not valid JSON: ") + e.what());
    }
    if (!header.is_object()) throw error_at(path, "header is not a JSON object");

    for (const auto& [name, value] : header.items()) {
      if (name == kMetadataKey) {
        if (!value.is_object()) throw error_at(path, "'__metadata__' is not a JSON object");
        for (const auto& [k, v] : value.items()) {
          if (!v.is_string())
            throw error_at(path, "'__metadata__' value for '" + k + "' is not a string");
          metadata_[k] = v.get<std::string>();
        }
        continue;
      }
      if (name.empty()) throw error_at(path, "tensor with an empty name");
      TensorEntry e = parse_entry(path + ": tensor '" + name + "'", name, value);
      if (e.end > data_size)
        throw error_at(path, "tensor '" + name + "': data_offsets end " + std::to_string(e.end) +
                                 " is beyond the data section (" + std::to_string(data_size) +
                                 " bytes)");
      entries_.emplace(name, std::move(e));
    }

    // Non-empty ranges must be disjoint: sort by begin, compare each with the furthest end so far.
    std::vector<const TensorEntry*> sorted;
    for (const auto& [name, e] : entries_)
      if (e.end > e.begin) sorted.push_back(&e);
    std::sort(sorted.begin(), sorted.end(),
              [](const TensorEntry* a, const TensorEntry* b) { return a->begin < b->begin; });
    const TensorEntry* furthest = nullptr;
    for (const TensorEntry* e : sorted) {
      if (furthest && e->begin < furthest->end)
        throw error_at(path, "tensors '" + furthest->name + "' and '" + e->name +
                                 "' overlap (bytes [" + std::to_string(furthest->begin) + ", " +
                                 std::to_string(furthest->end) + ") and [" +
                                 std::to_string(e->begin) + ", " + std::to_string(e->end) + "))");
      if (!furthest || e->end > furthest->end) furthest = e;
    }
  } catch (...) {
    unmap();
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  unmap();
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)),
      map_(std::exchange(other.map_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      data_start_(other.data_start_),
      entries_(std::move(other.entries_)),
      metadata_(std::move(other.metadata_)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    unmap();
    path_ = std::move(other.path_);
    map_ = std::exchange(other.map_, nullptr);
    size_ = std::exchange(other.size_, 0);
    data_start_ = other.data_start_;
    entries_ = std::move(other.entries_);
    metadata_ = std::move(other.metadata_);
  }
  return *this;
}

void SafetensorsFile::unmap() noexcept {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
  map_ = nullptr;
  size_ = 0;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : entries_) out.push_back(name);
  return out;  // std::map keeps them sorted
}

const TensorEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw error_at(path_, "no tensor named '" + name + "'");
  return it->second;
}

torch::Tensor SafetensorsFile::tensor(const std::string& name,
                                      std::optional<torch::ScalarType> dtype) const {
  const TensorEntry& e = entry(name);
  if (!map_) throw error_at(path_, "file was moved from");
  const uint8_t* src = map_ + data_start_ + e.begin;
  const size_t bytes = e.end - e.begin;
  // torch assumes bools are 0 or 1; anything else would be undefined behaviour later.
  if (e.dtype == StDtype::BOOL)
    for (size_t i = 0; i < bytes; ++i)
      if (src[i] > 1) throw error_at(path_, "tensor '" + name + "': BOOL byte is not 0 or 1");
  torch::Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(to_torch(e.dtype)));
  if (bytes) std::memcpy(t.data_ptr(), src, bytes);
  if (dtype && *dtype != t.scalar_type()) t = t.to(*dtype);
  return t;
}

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Validate and prepare everything before creating any file.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::vector<torch::Tensor> data;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name.empty()) throw error_at(path, "cannot save a tensor with an empty name");
    if (name == kMetadataKey) throw error_at(path, "'__metadata__' is not a valid tensor name");
    if (!seen.insert(name).second) throw error_at(path, "duplicate tensor name '" + name + "'");
    if (!t.defined()) throw error_at(path, "tensor '" + name + "' is undefined");
    auto st = from_torch(t.scalar_type());
    if (!st)
      throw error_at(path, "tensor '" + name + "' has dtype " +
                               std::string(c10::toString(t.scalar_type())) +
                               " which safetensors cannot store");
    torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    const uint64_t bytes = c.numel() * c.element_size();
    header[name] = {{"dtype", to_string(*st)},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(std::move(c));
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // data section starts 8-byte aligned
  const uint64_t n = h.size();

  std::string tmp = path + ".tmp.XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) throw error_at(path, "cannot create temporary file " + tmp + ": " + errno_str());
  auto fail = [&](const std::string& what) {
    const std::string why = errno_str();
    ::close(fd);
    ::unlink(tmp.c_str());
    return error_at(path, what + ": " + why);
  };
  auto write_all = [&](const void* p, size_t len) {
    const char* c = static_cast<const char*>(p);
    while (len > 0) {
      const ssize_t w = ::write(fd, c, len);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) throw fail("cannot write " + tmp);
      c += w;
      len -= static_cast<size_t>(w);
    }
  };
  write_all(&n, 8);
  write_all(h.data(), h.size());
  for (const auto& c : data)
    if (c.numel() > 0) write_all(c.data_ptr(), c.numel() * c.element_size());
  if (::fchmod(fd, 0644) != 0) throw fail("cannot chmod " + tmp);
  if (::fsync(fd) != 0) throw fail("cannot sync " + tmp);
  if (::close(fd) != 0) {
    const std::string why = errno_str();
    ::unlink(tmp.c_str());
    throw error_at(path, "cannot close " + tmp + ": " + why);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = errno_str();
    ::unlink(tmp.c_str());
    throw error_at(path, "cannot rename " + tmp + " into place: " + why);
  }
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace gt
