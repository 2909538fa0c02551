// Tensor element types as numbered in GGUF (ggml_type), and their block traits.
//
// A quantized row of n elements is n / block_size blocks of type_size bytes each;
// n must be a multiple of block_size. Adding a type = one row in tensor_type.cpp
// plus its kernels in src/kernels/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace hearth::format {

enum class TensorType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
};

struct TypeTraits {
  std::string_view name;  // "Q4_K"
  int64_t block_size;     // elements per block
  int64_t type_size;      // bytes per block
  bool supported;         // Hearth has kernels for it
};

// Traits of a GGUF type id, or nullptr for ids Hearth does not know.
const TypeTraits* type_traits(uint32_t type_id);
const TypeTraits& traits(TensorType t);
inline std::string_view type_name(TensorType t) { return traits(t).name; }

// Bytes of a row of n elements; n must be a multiple of the block size.
inline int64_t row_bytes(TensorType t, int64_t n) {
  const TypeTraits& tr = traits(t);
  return n / tr.block_size * tr.type_size;
}

}  // namespace hearth::format
