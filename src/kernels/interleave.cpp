#include "kernels/interleave.h"

#include <algorithm>
#include <cstring>

#include "kernels/ops.h"
#include "kernels/type_kernels.h"

namespace hearth::kernels {

using format::TensorType;

namespace {

// The fields of each type's block (interleave.h); {0, 0, 0} for types without a layout.
constexpr InterleaveLayout fields(TensorType t) {
  switch (t) {
    case TensorType::Q4_0: return {1, 4, 0};
    case TensorType::Q4_1: return {0, 5, 0};
    case TensorType::Q5_0: return {1, 5, 0};
    case TensorType::Q5_1: return {0, 6, 0};
    case TensorType::Q8_0: return {1, 8, 0};
    case TensorType::Q4_K: return {0, 36, 0};
    case TensorType::Q5_K: return {0, 44, 0};
    case TensorType::Q6_K: return {0, 52, 1};
    default: return {};
  }
}

// Units [u0, u0 + n_units) of 16 rows (row i at rows(i)) into dst, n_units * 16 * kBytes
// bytes, with the layout known at compile time (the field copies unroll: a model's
// load-time repack is several times faster than with the layout in variables).
template <TensorType kType, class Rows>
void interleave_units(Rows rows, int64_t u0, int64_t n_units, uint8_t* dst) {
  constexpr InterleaveLayout l = fields(kType);
  constexpr int kL = l.lead_halves, kD = l.dwords, kT = l.tail_halves;
  constexpr int kBytes = 2 * kL + 4 * kD + 2 * kT, kUnit = kInterleaveRows * kBytes;
  for (int64_t u = 0; u < n_units; ++u) {
    uint8_t* il = dst + u * kUnit;
    for (int i = 0; i < kInterleaveRows; ++i) {
      const uint8_t* row = rows(i) + (u0 + u) * kBytes;
      for (int h = 0; h < kL; ++h) std::memcpy(il + 2 * (16 * h + i), row + 2 * h, 2);
      for (int j = 0; j < kD; ++j) std::memcpy(il + 32 * kL + 4 * (16 * j + i), row + 2 * kL + 4 * j, 4);
      for (int h = 0; h < kT; ++h)
        std::memcpy(il + 32 * kL + 64 * kD + 2 * (16 * h + i), row + 2 * kL + 4 * kD + 2 * h, 2);
    }
  }
}

// Whole groups [r0, r1) of a matrix with rb-byte rows and nu units per row.
template <TensorType kType>
void interleave_groups(int64_t rb, int64_t nu, const uint8_t* s, uint8_t* d, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r += kInterleaveRows)
    interleave_units<kType>([&](int i) { return s + (r + i) * rb; }, 0, nu, d + r * rb);
}

// One call of f<kType>() for the types with a layout; false for the others.
template <class F>
bool with_type(TensorType t, F f) {
  switch (t) {
    case TensorType::Q4_0: f.template operator()<TensorType::Q4_0>(); return true;
    case TensorType::Q4_1: f.template operator()<TensorType::Q4_1>(); return true;
    case TensorType::Q5_0: f.template operator()<TensorType::Q5_0>(); return true;
    case TensorType::Q5_1: f.template operator()<TensorType::Q5_1>(); return true;
    case TensorType::Q8_0: f.template operator()<TensorType::Q8_0>(); return true;
    case TensorType::Q4_K: f.template operator()<TensorType::Q4_K>(); return true;
    case TensorType::Q5_K: f.template operator()<TensorType::Q5_K>(); return true;
    case TensorType::Q6_K: f.template operator()<TensorType::Q6_K>(); return true;
    default: return false;
  }
}

}  // namespace

bool interleave_layout(TensorType t, InterleaveLayout* out) {
  InterleaveLayout l = fields(t);
  if (l.dwords == 0) return false;
  const format::TypeTraits& tr = format::traits(t);
  l.block_bytes = static_cast<int>(tr.type_size);
  l.block_elems = static_cast<int>(tr.block_size);
  if (2 * l.lead_halves + 4 * l.dwords + 2 * l.tail_halves != l.block_bytes) return false;
  *out = l;
  return true;
}

bool interleave_supported(TensorType t, int64_t n_cols, int64_t n_rows) {
  InterleaveLayout l;
  const TypeKernels& k = type_kernels(t);
  return interleave_layout(t, &l) && n_cols > 0 && n_cols % l.block_elems == 0 && n_rows > 0 &&
         n_rows % kInterleaveRows == 0 && k.il_packed_gemm != nullptr && packed_gemm_enabled();
}

void interleave_rows(TensorType t, int64_t n_cols, int64_t n_rows, const void* src, void* dst,
                     int64_t r0, int64_t r1) {
  InterleaveLayout l;
  if (!interleave_layout(t, &l)) return;
  const int64_t rb = format::row_bytes(t, n_cols), nu = n_cols / l.block_elems;
  const int64_t whole = n_rows / kInterleaveRows * kInterleaveRows;
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(dst);
  const int64_t g1 = std::min(r1, whole);
  if (r0 < g1) with_type(t, [&]<TensorType kType>() { interleave_groups<kType>(rb, nu, s, d, r0, g1); });
  const int64_t r = std::max(r0, g1);
  if (r < r1) std::memcpy(d + r * rb, s + r * rb, static_cast<size_t>((r1 - r) * rb));
}

void interleave_panel(TensorType t, const void* src, int64_t stride, int n_rows, int64_t u0,
                      int64_t n_units, void* dst) {
  const auto* s = static_cast<const uint8_t*>(src);
  auto rows = [&](int i) { return s + std::min(i, n_rows - 1) * stride; };
  with_type(t, [&]<TensorType kType>() {
    interleave_units<kType>(rows, u0, n_units, static_cast<uint8_t*>(dst));
  });
}

}  // namespace hearth::kernels
