#include "kernels/interleave.h"

#include <algorithm>
#include <cstring>

#include "kernels/ops.h"
#include "kernels/type_kernels.h"

namespace hearth::kernels {

using format::TensorType;

bool interleave_layout(TensorType t, InterleaveLayout* out) {
  InterleaveLayout l;
  switch (t) {
    case TensorType::Q4_0: l = {1, 4, 0}; break;
    case TensorType::Q4_1: l = {0, 5, 0}; break;
    case TensorType::Q5_0: l = {1, 5, 0}; break;
    case TensorType::Q5_1: l = {0, 6, 0}; break;
    case TensorType::Q8_0: l = {1, 8, 0}; break;
    case TensorType::Q4_K: l = {0, 36, 0}; break;
    case TensorType::Q5_K: l = {0, 44, 0}; break;
    case TensorType::Q6_K: l = {0, 52, 1}; break;
    default: return false;
  }
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
         n_rows % kInterleaveRows == 0 && k.il_rowdot_gemm != nullptr && k.il_packed_gemm != nullptr && packed_gemm_enabled();
}

namespace {

// f(row_offset, il_offset, bytes) for each field of row i: its offset in the row's block
// and in the interleaved block of 16 rows (the layout in interleave.h).
template <class F>
void for_each_field(const InterleaveLayout& l, int i, F f) {
  const int body = 2 * l.lead_halves, tail = body + 4 * l.dwords;
  const int il_body = 32 * l.lead_halves, il_tail = il_body + 64 * l.dwords;
  for (int h = 0; h < l.lead_halves; ++h) f(2 * h, 2 * (16 * h + i), 2);
  for (int j = 0; j < l.dwords; ++j) f(body + 4 * j, il_body + 4 * (16 * j + i), 4);
  for (int h = 0; h < l.tail_halves; ++h) f(tail + 2 * h, il_tail + 2 * (16 * h + i), 2);
}

// interleave_rows's loop with the layout known at compile time (the field copies unroll:
// the load-time repack of a model is several times faster than through for_each_field).
template <int kL, int kD, int kT>
void interleave_groups(int64_t rb, int64_t nu, const uint8_t* s, uint8_t* d, int64_t r0, int64_t r1) {
  constexpr int kBytes = 2 * kL + 4 * kD + 2 * kT, kUnit = kInterleaveRows * kBytes;
  for (int64_t r = r0; r < r1; r += kInterleaveRows)
    for (int64_t u = 0; u < nu; ++u) {
      uint8_t* il = d + r * rb + u * kUnit;
      for (int i = 0; i < kInterleaveRows; ++i) {
        const uint8_t* row = s + (r + i) * rb + u * kBytes;
        for (int h = 0; h < kL; ++h) std::memcpy(il + 2 * (16 * h + i), row + 2 * h, 2);
        for (int j = 0; j < kD; ++j) std::memcpy(il + 32 * kL + 4 * (16 * j + i), row + 2 * kL + 4 * j, 4);
        for (int h = 0; h < kT; ++h)
          std::memcpy(il + 32 * kL + 64 * kD + 2 * (16 * h + i), row + 2 * kL + 4 * kD + 2 * h, 2);
      }
    }
}

}  // namespace

void interleave_rows(TensorType t, int64_t n_cols, int64_t n_rows, const void* src, void* dst,
                     int64_t r0, int64_t r1) {
  InterleaveLayout l;
  if (!interleave_layout(t, &l)) return;
  const int64_t rb = format::row_bytes(t, n_cols), nu = n_cols / l.block_elems;
  const int64_t whole = n_rows / kInterleaveRows * kInterleaveRows;
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(dst);
  const int64_t g1 = std::min(r1, whole);
  if (r0 < g1) {
    switch (t) {
      case TensorType::Q4_0: interleave_groups<1, 4, 0>(rb, nu, s, d, r0, g1); break;
      case TensorType::Q4_1: interleave_groups<0, 5, 0>(rb, nu, s, d, r0, g1); break;
      case TensorType::Q5_0: interleave_groups<1, 5, 0>(rb, nu, s, d, r0, g1); break;
      case TensorType::Q5_1: interleave_groups<0, 6, 0>(rb, nu, s, d, r0, g1); break;
      case TensorType::Q8_0: interleave_groups<1, 8, 0>(rb, nu, s, d, r0, g1); break;
      case TensorType::Q4_K: interleave_groups<0, 36, 0>(rb, nu, s, d, r0, g1); break;
      case TensorType::Q5_K: interleave_groups<0, 44, 0>(rb, nu, s, d, r0, g1); break;
      case TensorType::Q6_K: interleave_groups<0, 52, 1>(rb, nu, s, d, r0, g1); break;
      default: return;
    }
  }
  const int64_t r = std::max(r0, g1);
  if (r < r1) std::memcpy(d + r * rb, s + r * rb, static_cast<size_t>((r1 - r) * rb));
}

void deinterleave_group(TensorType t, int64_t n_cols, const void* il, int64_t r0, void* rows) {
  InterleaveLayout l;
  if (!interleave_layout(t, &l)) return;
  const int64_t rb = format::row_bytes(t, n_cols), nu = n_cols / l.block_elems;
  const uint8_t* s = static_cast<const uint8_t*>(il) + r0 * rb;
  auto* d = static_cast<uint8_t*>(rows);
  for (int64_t u = 0; u < nu; ++u)
    for (int i = 0; i < kInterleaveRows; ++i)
      for_each_field(l, i, [&](int ro, int io, int n) {
        std::memcpy(d + i * rb + u * l.block_bytes + ro, s + u * kInterleaveRows * l.block_bytes + io,
                    static_cast<size_t>(n));
      });
}

void deinterleave_row(TensorType t, int64_t n_cols, int64_t n_rows, const void* il, int64_t r,
                      void* out) {
  InterleaveLayout l;
  const int64_t rb = format::row_bytes(t, n_cols);
  const auto* s = static_cast<const uint8_t*>(il);
  if (!interleave_layout(t, &l) || r >= n_rows / kInterleaveRows * kInterleaveRows) {
    std::memcpy(out, s + r * rb, static_cast<size_t>(rb));
    return;
  }
  const int64_t g = r / kInterleaveRows * kInterleaveRows, nu = n_cols / l.block_elems;
  const int i = static_cast<int>(r - g);
  auto* d = static_cast<uint8_t*>(out);
  for (int64_t u = 0; u < nu; ++u)
    for_each_field(l, i, [&](int ro, int io, int n) {
      std::memcpy(d + u * l.block_bytes + ro, s + g * rb + u * kInterleaveRows * l.block_bytes + io,
                  static_cast<size_t>(n));
    });
}

}  // namespace hearth::kernels
