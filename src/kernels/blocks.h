// Packed block layouts of the legacy (32-element) GGUF quantization types, as stored in
// the file. All blocks hold 32 elements. Scales are f16 bits (see half.h).
//
// Nibble order (Q4_*, Q5_*): element j (0..15) is the low nibble of qs[j], element j+16
// the high nibble of qs[j]. Q5_* fifth bit: element j's is bit j of qh, element j+16's is
// bit j+16 of qh (qh read as a little-endian uint32).
//
// Value of element i:
//   Q4_0: d * (q - 8)         Q4_1: d * q + m
//   Q5_0: d * (q - 16)        Q5_1: d * q + m
//   Q8_0: d * q               Q8_1: d * q, with s = d * sum(q) kept for the _1 dot products
#pragma once

#include <cstdint>

#include "kernels/half.h"

namespace hearth::kernels {

constexpr int kQK = 32;  // elements per legacy block

struct BlockQ4_0 {
  f16_t d;
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

struct BlockQ4_1 {
  f16_t d;
  f16_t m;
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

struct BlockQ5_0 {
  f16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);

struct BlockQ5_1 {
  f16_t d;
  f16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

struct BlockQ8_0 {
  f16_t d;
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_0) == 34);

struct BlockQ8_1 {
  f16_t d;
  f16_t s;  // d * sum(qs)
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_1) == 36);

// Alignment 2 throughout: blocks sit back to back in mmap'd rows; SIMD code uses unaligned loads.
static_assert(alignof(BlockQ4_0) == 2 && alignof(BlockQ8_0) == 2 && alignof(BlockQ8_1) == 2);

}  // namespace hearth::kernels
