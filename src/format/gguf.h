// GGUF reader (versions 2 and 3) over a memory-mapped file.
//
// Every count, string length, array length, dimension, offset and alignment is checked
// against the file size with overflow-safe arithmetic before use. A malformed file is
// rejected with a one-line message naming the field and its byte offset; never a crash,
// hang or unbounded allocation.
//
// Ownership: GgufFile owns the mapping (or borrows caller memory with from_memory());
// every string_view and tensor data pointer it hands out lives as long as the GgufFile.
// Thread safety: immutable after open(); may be shared between threads.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "format/tensor_type.h"
#include "platform/mapped_file.h"
#include "platform/status.h"

namespace hearth::format {

enum class GgufType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

// Bytes of one value of a scalar type; 0 for STRING, ARRAY and unknown ids.
uint64_t gguf_scalar_size(uint32_t type);

struct GgufKv {
  std::string_view key;
  GgufType type;
  // Scalars (type != STRING/ARRAY): the value, widened.
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  // STRING: the string.
  std::string_view str;
  // ARRAY: element type and count; numeric elements start at `array_data` (unaligned,
  // little-endian); string elements are listed in `strings`.
  GgufType array_type = GgufType::UINT8;
  uint64_t array_count = 0;
  const uint8_t* array_data = nullptr;
  std::vector<std::string_view> strings;
};

struct GgufTensor {
  std::string_view name;
  TensorType type;
  int n_dims = 0;
  std::array<int64_t, 4> ne{1, 1, 1, 1};  // ne[0] is the contiguous (row) dimension
  uint64_t offset = 0;                    // absolute byte offset in the file
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;
  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
};

class GgufFile {
 public:
  // Maps `path` read-only and parses it.
  static Expected<std::unique_ptr<GgufFile>> open(const std::string& path);
  // Parses caller-owned memory (tests, fuzzing); `name` is used in messages.
  static Expected<std::unique_ptr<GgufFile>> from_memory(const uint8_t* data, size_t size,
                                                         std::string name);

  const std::string& name() const { return name_; }
  uint32_t version() const { return version_; }
  uint64_t file_size() const { return size_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }

  const std::vector<GgufKv>& kvs() const { return kvs_; }
  const GgufKv* find(std::string_view key) const;
  // Typed getters: nullopt when the key is missing or of an incompatible type.
  std::optional<std::string_view> get_string(std::string_view key) const;
  std::optional<uint64_t> get_uint(std::string_view key) const;  // non-negative integers
  std::optional<double> get_float(std::string_view key) const;   // any numeric
  std::optional<bool> get_bool(std::string_view key) const;
  const std::vector<std::string_view>* get_string_array(std::string_view key) const;
  std::optional<std::vector<float>> get_f32_array(std::string_view key) const;
  std::optional<std::vector<int32_t>> get_i32_array(std::string_view key) const;

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  // See platform::MappedFile::prefault (nothing for from_memory files).
  void prefault() const { map_.prefault(); }
  // See platform::MappedFile::release (nothing for from_memory files).
  void release(const void* p, size_t n) const { map_.release(p, n); }
  const GgufTensor* find_tensor(std::string_view name) const;

 private:
  GgufFile() = default;
  Status parse();

  std::string name_;
  platform::MappedFile map_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<GgufKv> kvs_;
  std::vector<GgufTensor> tensors_;
};

}  // namespace hearth::format
