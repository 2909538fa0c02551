// Builds GGUF (version 3) files: metadata and tensors, laid out with the alignment the
// format asks for. Used by tests to craft files and, later, by `hearth quantize`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "format/gguf.h"
#include "format/tensor_type.h"
#include "platform/status.h"

namespace hearth::format {

class GgufWriter {
 public:
  void add_u32(std::string_view key, uint32_t v);
  void add_i32(std::string_view key, int32_t v);
  void add_u64(std::string_view key, uint64_t v);
  void add_f32(std::string_view key, float v);
  void add_bool(std::string_view key, bool v);
  void add_string(std::string_view key, std::string_view v);
  void add_string_array(std::string_view key, const std::vector<std::string>& v);
  void add_f32_array(std::string_view key, const std::vector<float>& v);
  void add_i32_array(std::string_view key, const std::vector<int32_t>& v);
  // Copies a key/value pair as read from another file.
  void add_kv(const GgufKv& kv);
  // ne[0] is the row length; data holds row_bytes(type, ne[0]) * rows bytes.
  void add_tensor(std::string_view name, TensorType type, const std::vector<int64_t>& ne, const void* data,
                  size_t n_bytes);
  // A tensor whose n_bytes of data the caller writes after header_bytes(), in the order
  // the tensors were added, each followed by padding_after(n_bytes) zero bytes.
  void add_tensor_info(std::string_view name, TensorType type, const std::vector<int64_t>& ne, size_t n_bytes);

  // Header, metadata and tensor infos, padded to the alignment: the data section follows.
  std::vector<uint8_t> header_bytes() const;
  static size_t padding_after(size_t n_bytes) { return (kAlignment - n_bytes % kAlignment) % kAlignment; }
  static constexpr size_t kAlignment = 32;
  // The whole file, for tensors added with their data.
  std::vector<uint8_t> bytes() const;
  // Writes to a temporary file beside `path`, fsyncs, then renames over it.
  Status write_file(const std::string& path) const;

 private:
  void key(std::string_view k, GgufType t);
  struct Tensor {
    std::string name;
    TensorType type;
    std::vector<int64_t> ne;
    size_t n_bytes;
    std::vector<uint8_t> data;  // empty for add_tensor_info
  };
  std::vector<uint8_t> kv_;
  uint64_t n_kv_ = 0;
  std::vector<Tensor> tensors_;
};

}  // namespace hearth::format
