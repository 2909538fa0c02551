// K-quant block layouts (GGUF / ggml "k-quants"): super-blocks of kQK_K = 256 elements.
//
// Weights:
//   Q4_K  144 B  8 sub-blocks of 32, 4-bit q in [0,15]:  x = d*sc[j]*q - dmin*m[j]
//   Q5_K  176 B  8 sub-blocks of 32, 5-bit q in [0,31]:  x = d*sc[j]*q - dmin*m[j]
//   Q6_K  210 B 16 sub-blocks of 16, 6-bit q in [0,63]:  x = d*scales[j]*(q - 32)
// Activations (vec_dot_type of the three above):
//   Q8_K  292 B  x = d*qs[i]; bsums[k] = sum of qs[16k .. 16k+15]
//
// Bit layouts (element e of a super-block, e = 64*c + 32*h + l, c in 0..3, h in 0..1,
// l in 0..31):
//   Q4_K/Q5_K: sub-block j = e/32 = 2c + h. Low 4 bits of q in qs[32c + l], low nibble
//     for h = 0, high nibble for h = 1. Q5_K's 5th bit is bit (2c + h) of qh[l].
//     sc[j], m[j] are 6-bit, packed in scales[12] (see unpack_scales_mins_k4).
//   Q6_K: e = 128*g + 32*r + l (g in 0..1, r in 0..3). Low 4 bits in ql[64g + 32*(r&1) + l]
//     (low nibble for r < 2, high nibble for r >= 2); high 2 bits are bits 2r, 2r+1 of
//     qh[32g + l]. Sub-block j = e/16 uses the signed 8-bit scales[j].
// f16 fields are raw IEEE half bits, little-endian, as stored in the file (half.h).
// Helpers are `static inline` for the reason given in half.h (SIMD files include this).
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/half.h"

namespace hearth::kernels {

inline constexpr int kQK_K = 256;
inline constexpr int kKScaleSize = 12;

struct BlockQ4K {
  f16_t d;                      // f16: scale of the 6-bit sub-block scales
  f16_t dmin;                   // f16: scale of the 6-bit sub-block mins
  uint8_t scales[kKScaleSize];  // 8 scales + 8 mins, 6 bits each
  uint8_t qs[kQK_K / 2];        // 4-bit quants
};
static_assert(sizeof(BlockQ4K) == 144, "Q4_K block is 144 bytes in GGUF");

struct BlockQ5K {
  f16_t d;
  f16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qh[kQK_K / 8];  // 5th bit of each quant
  uint8_t qs[kQK_K / 2];  // low 4 bits
};
static_assert(sizeof(BlockQ5K) == 176, "Q5_K block is 176 bytes in GGUF");

struct BlockQ6K {
  uint8_t ql[kQK_K / 2];      // low 4 bits
  uint8_t qh[kQK_K / 4];      // high 2 bits
  int8_t scales[kQK_K / 16];  // signed 8-bit sub-block scales
  f16_t d;                    // f16 super-block scale
};
static_assert(sizeof(BlockQ6K) == 210, "Q6_K block is 210 bytes in GGUF");

struct BlockQ8K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];  // sums of qs in groups of 16
};
static_assert(sizeof(BlockQ8K) == 292, "Q8_K block is 292 bytes in ggml");

// Unpacks the 12 packed bytes of Q4_K/Q5_K into 8 scales (out[0..7]) and 8 mins
// (out[8..15]), each 6 bits. Packing, by byte: bytes 0-3 hold sc[0..3] in bits 0-5 and
// the top 2 bits of sc[4..7] in bits 6-7; bytes 4-7 likewise for m[0..3] / m[4..7];
// bytes 8-11 hold the low 4 bits of sc[4..7] (bits 0-3) and of m[4..7] (bits 4-7).
static inline void unpack_scales_mins_k4(const uint8_t* packed, uint8_t out[16]) {
  uint32_t w[3];
  std::memcpy(w, packed, 12);
  const uint32_t k6 = 0x3f3f3f3fu, k4 = 0x0f0f0f0fu, k2 = 0x03030303u;
  const uint32_t o[4] = {
      w[0] & k6,                                       // sc[0..3]
      (w[2] & k4) | (((w[0] >> 6) & k2) << 4),         // sc[4..7]
      w[1] & k6,                                       // m[0..3]
      ((w[2] >> 4) & k4) | (((w[1] >> 6) & k2) << 4),  // m[4..7]
  };
  std::memcpy(out, o, 16);
}

// Inverse of unpack_scales_mins_k4 for 6-bit sc[8], m[8].
static inline void pack_scales_mins_k4(const uint8_t sc[8], const uint8_t m[8],
                                       uint8_t packed[12]) {
  for (int j = 0; j < 4; ++j) {
    packed[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    packed[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    packed[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
  }
}

}  // namespace hearth::kernels
