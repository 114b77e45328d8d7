// Safetensors (HuggingFace's tensor file format): a memory-mapped reader that validates the whole
// header up front, and an atomic writer. Spec: https://github.com/huggingface/safetensors
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gt {

enum class StDtype { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

struct TensorEntry {
  std::string name;
  StDtype dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range in the data section
};

torch::ScalarType to_torch(StDtype);
// The safetensors dtype for a torch dtype; nullopt when the format has none (complex, ...).
std::optional<StDtype> from_torch(torch::ScalarType);
// "F32", "BF16", ... as written in the header; st_dtype_from_string gives nullopt for others.
const char* to_string(StDtype);
std::optional<StDtype> st_dtype_from_string(const std::string&);
size_t itemsize(StDtype);
// "[2, 3]": a shape as error messages write it.
std::string shape_string(const std::vector<int64_t>& shape);

class SafetensorsFile {  // memory-mapped (mmap, read-only), movable, not copyable
 public:
  // Opens, maps and validates everything up front; throws gt::Error naming the file.
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  const TensorEntry& entry(const std::string& name) const;  // throws "<path>: no tensor named 'x'"
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // An owned copy (never aliasing the mapping), converted to `dtype` if given.
  torch::Tensor tensor(const std::string& name,
                       std::optional<torch::ScalarType> dtype = std::nullopt) const;

 private:
  void unmap() noexcept;

  std::string path_;
  const uint8_t* map_ = nullptr;
  size_t size_ = 0;
  uint64_t data_start_ = 0;  // 8 + header length
  std::map<std::string, TensorEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Writes atomically (temp file in the same directory + rename). Tensors are made contiguous and
// stored in their own dtype; names must be unique, non-empty and not "__metadata__". Data is laid
// out in the given order; the header is padded with spaces to a multiple of 8 bytes.
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace gt
