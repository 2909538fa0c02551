// Weights interleaved by groups of 16 rows, so one token's matrix product (decode) reads
// the matrix front to back in address order and finds each block field of 16 rows in one
// 64-byte vector: the layout the decode kernels of avx512/gemm_rowdot_il.cpp read. The
// bytes are the file's, moved, never changed: same size, same values.
//
// A block of kBytes (a super-block for the K-quants) is split into fields:
//   lead: L halves (2 bytes each) at its start, body: D dwords, tail: T halves at its end
//   Q4_0 {1, 4, 0}  Q4_1 {0, 5, 0}  Q5_0 {1, 5, 0}  Q5_1 {0, 6, 0}  Q8_0 {1, 8, 0}
//   Q4_K {0, 36, 0} Q5_K {0, 44, 0} Q6_K {0, 52, 1}
// so the quants start dword-aligned. Rows 16g .. 16g + 15 are stored as their blocks one
// after another; block u of the group (16 * kBytes bytes) holds
//   half h of row i   at 2 * (16 h + i)                       (h < L)
//   dword j of row i  at 32 L + 4 * (16 j + i)                (j < D)
//   tail half h       at 32 L + 64 D + 2 * (16 h + i)         (h < T)
// i.e. each field of the 16 rows side by side. Rows past the last whole group of 16 follow
// unchanged, row-major.
#pragma once

#include <cstdint>

#include "format/tensor_type.h"

namespace hearth::kernels {

constexpr int kInterleaveRows = 16;

struct InterleaveLayout {
  int lead_halves = 0, dwords = 0, tail_halves = 0;
  int block_bytes = 0, block_elems = 0;
};

// The layout of type t; false for types that have none (F32, F16, Q8_K, ...).
bool interleave_layout(format::TensorType t, InterleaveLayout* out);

// Whether a matrix [n_rows, n_cols] of type t can be interleaved for the kernels of this
// CPU: the type has a layout and an interleaved gemm in the dispatched table
// (il_packed_gemm; il_rowdot_gemm is optional), and the matrix is whole groups of 16
// rows of whole blocks.
bool interleave_supported(format::TensorType t, int64_t n_cols, int64_t n_rows);

// src: the matrix [n_rows, n_cols] row-major; dst: the interleaved matrix (same size, not
// overlapping). Rows [r0, r1) of whole groups: r0, r1 multiples of 16 or r1 = n_rows, so
// threads can share a matrix.
void interleave_rows(format::TensorType t, int64_t n_cols, int64_t n_rows, const void* src,
                     void* dst, int64_t r0, int64_t r1);

// Units [u0, u0 + n_units) (blocks; super-blocks for the K-quants) of one group of rows in
// the file's layout, row i at src + min(i, n_rows - 1) * stride (a partial group repeats
// its last row), into dst (n_units * 16 * block bytes) as one interleaved group: what SIMD
// kernels that read interleaved rows use to take the file's layout too (a panel at a time).
// 1 <= n_rows <= 16; types without a layout are left alone.
void interleave_panel(format::TensorType t, const void* src, int64_t stride, int n_rows,
                      int64_t u0, int64_t n_units, void* dst);

}  // namespace hearth::kernels
