// Prefill matrix products for Q4_0, Q4_1, Q8_0 and Q4_K on AVX-512 VNNI, over packed
// operands (the prefill half of type_kernels.h's PackXFn / PackedGemmFn).
//
// Activations: pack_x quantizes each token's blocks of 32 as Q8_0/Q8_1 do (d = amax / 127
// rounded to f16, q = round(x / d)) into tiles of 8 tokens. Per block, a tile holds
//   float d[8], s[8], sh[8];          s = d * sum(q) in f32, sh = the same rounded to f16
//   int8  q[8 chunks][8 tokens][4];   chunk k = elements 4k .. 4k+3
// so one token's chunk is a 4-byte broadcast operand of vpdpbusd.
//
// Weights: every type is written as u8 quants q with a per-block f32 scale d and offset m,
// w = d * q + m (Q4_0: m = -8 d; Q8_0: q + 128, m = -128 d; Q4_1: d, m as stored; Q4_K:
// per sub-block of 32, d * sc and -dmin * mn), into a panel of 16 rows: chunk k of block b
// is one zmm whose lane i holds row i's 4 quants. A panel spans at most kPanelBlocks
// blocks (20 KiB, stays in L1) and serves every token tile before the next is packed, so
// the repacking costs one pass over the weights per matmul and no memory beyond the stack.
//
// Per block, 16 rows and one token: 8 vpdpbusd give 16 exact i32 block dots, then
// acc += f32(dot) * d_w * d_x + m_w * s_x. The _1 types use sh (what Q8_1 stores, so the
// result is vec_dot's up to the f32 summation order); the others use s, so the -8 / -128
// offsets cost one f32 rounding instead of the integer correction vec_dot does.
//
// The reference these are tested against is the scalar vec_dot (tests/kernels/).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cstring>

// Only the block quantizer is used, not the activation converters defined beside it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "kernels/avx2/legacy_simd.h"
#pragma GCC diagnostic pop
#include "kernels/blocks_k.h"
#include "kernels/type_kernels.h"

namespace hearth::kernels {
namespace {

constexpr int kPanelRows = 16;
constexpr int kPanelBlocks = static_cast<int>(kPackedPanelBlocks);  // a multiple of 8: Q4_K panels start on a super-block
constexpr int kChunks = 8;        // 4-byte chunks per block of 32
constexpr int kTile = static_cast<int>(kPackedTileTokens);

struct Panel {
  alignas(64) int32_t q[kPanelBlocks][kChunks][kPanelRows];
  alignas(64) float d[kPanelBlocks][kPanelRows];
  alignas(64) float m[kPanelBlocks][kPanelRows];
};

// Rows of a panel: `rows` valid (mask `live`), the rest packed as zeros.
struct PanelRows {
  const uint8_t* w;  // first row
  int64_t stride;    // bytes between rows
  int rows;
  __mmask16 live;
  __m512i offsets;  // lane i: i * stride
};

inline __m512i gather(const PanelRows& pr, const uint8_t* at) {
  return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), pr.live, pr.offsets, at, 1);
}

inline __m512 half_lo(__m512i v) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)); }
inline __m512 half_hi(__m512i v) { return half_lo(_mm512_srli_epi32(v, 16)); }

// 4 chunks of packed nibbles -> chunks j (low nibbles) and j + 4 (high nibbles).
inline void store_nibbles(const PanelRows& pr, const uint8_t* qs, int32_t (*q)[kPanelRows]) {
  const __m512i mask = _mm512_set1_epi8(0x0f);
  for (int j = 0; j < 4; ++j) {
    const __m512i v = gather(pr, qs + 4 * j);
    _mm512_store_si512(q[j], _mm512_and_si512(v, mask));
    _mm512_store_si512(q[j + 4], _mm512_and_si512(_mm512_srli_epi32(v, 4), mask));
  }
}

void pack_q4_0(const PanelRows& pr, int64_t b0, int nb, Panel& p) {
  for (int b = 0; b < nb; ++b) {
    const uint8_t* blk = pr.w + (b0 + b) * static_cast<int64_t>(sizeof(BlockQ4_0));
    const __m512 d = half_lo(gather(pr, blk));
    _mm512_store_ps(p.d[b], d);
    _mm512_store_ps(p.m[b], _mm512_mul_ps(d, _mm512_set1_ps(-8.0f)));
    store_nibbles(pr, blk + offsetof(BlockQ4_0, qs), p.q[b]);
  }
}

void pack_q4_1(const PanelRows& pr, int64_t b0, int nb, Panel& p) {
  for (int b = 0; b < nb; ++b) {
    const uint8_t* blk = pr.w + (b0 + b) * static_cast<int64_t>(sizeof(BlockQ4_1));
    const __m512i dm = gather(pr, blk);
    _mm512_store_ps(p.d[b], half_lo(dm));
    _mm512_store_ps(p.m[b], half_hi(dm));
    store_nibbles(pr, blk + offsetof(BlockQ4_1, qs), p.q[b]);
  }
}

void pack_q8_0(const PanelRows& pr, int64_t b0, int nb, Panel& p) {
  for (int b = 0; b < nb; ++b) {
    const uint8_t* blk = pr.w + (b0 + b) * static_cast<int64_t>(sizeof(BlockQ8_0));
    const __m512 d = half_lo(gather(pr, blk));
    _mm512_store_ps(p.d[b], d);
    _mm512_store_ps(p.m[b], _mm512_mul_ps(d, _mm512_set1_ps(-128.0f)));
    for (int k = 0; k < kChunks; ++k)
      _mm512_store_si512(p.q[b][k], _mm512_xor_si512(gather(pr, blk + offsetof(BlockQ8_0, qs) + 4 * k),
                                                     _mm512_set1_epi8(char(0x80))));
  }
}

// Blocks of the panel are Q4_K sub-blocks: b0 and nb are multiples of 8.
void pack_q4_k(const PanelRows& pr, int64_t b0, int nb, Panel& p) {
  for (int sb = 0; sb < nb / 8; ++sb) {
    const int64_t super = b0 / 8 + sb;
    const uint8_t* blk = pr.w + super * static_cast<int64_t>(sizeof(BlockQ4K));
    // Sub-blocks 2c and 2c + 1 share the 32 bytes qs[32c ..]: low and high nibbles.
    for (int c = 0; c < 4; ++c) {
      int32_t(*lo)[kPanelRows] = p.q[8 * sb + 2 * c];
      int32_t(*hi)[kPanelRows] = p.q[8 * sb + 2 * c + 1];
      const uint8_t* qs = blk + offsetof(BlockQ4K, qs) + 32 * c;
      const __m512i mask = _mm512_set1_epi8(0x0f);
      for (int k = 0; k < kChunks; ++k) {
        const __m512i v = gather(pr, qs + 4 * k);
        _mm512_store_si512(lo[k], _mm512_and_si512(v, mask));
        _mm512_store_si512(hi[k], _mm512_and_si512(_mm512_srli_epi32(v, 4), mask));
      }
    }
    for (int i = 0; i < kPanelRows; ++i) {
      float d = 0, dmin = 0;
      uint8_t sm[16] = {};
      if (i < pr.rows) {
        const auto* row = reinterpret_cast<const BlockQ4K*>(blk + i * pr.stride);
        d = f16_to_f32(row->d);
        dmin = f16_to_f32(row->dmin);
        unpack_scales_mins_k4(row->scales, sm);
      }
      for (int j = 0; j < 8; ++j) {
        p.d[8 * sb + j][i] = d * static_cast<float>(sm[j]);
        p.m[8 * sb + j][i] = -dmin * static_cast<float>(sm[8 + j]);
      }
    }
  }
}

// acc[t] (16 rows of token t) += the panel's nb blocks against the first kNT tokens of
// one token tile. Each token's arithmetic is the same whatever kNT is, so a token's result
// does not depend on how many tokens share the matmul.
template <int kSOffset, int kNT>
inline void panel_tile(const Panel& p, int nb, const uint8_t* xb, __m512 acc[kTile]) {
  for (int b = 0; b < nb; ++b) {
    __m512i w[kChunks];
    for (int k = 0; k < kChunks; ++k) w[k] = _mm512_load_si512(p.q[b][k]);
    const __m512 dw = _mm512_load_ps(p.d[b]);
    const __m512 mw = _mm512_load_ps(p.m[b]);
    const auto* xd = reinterpret_cast<const float*>(xb + b * kPackedXBlockBytes);
    const float* xs = xd + kSOffset;
    const auto* xq = reinterpret_cast<const int32_t*>(xd + 3 * kTile);
    for (int t = 0; t < kNT; ++t) {
      __m512i s = _mm512_setzero_si512();
      for (int k = 0; k < kChunks; ++k)
        s = _mm512_dpbusd_epi32(s, w[k], _mm512_set1_epi32(xq[k * kTile + t]));
      const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(s), dw);
      acc[t] = _mm512_fmadd_ps(f, _mm512_set1_ps(xd[t]), acc[t]);
      acc[t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(xs[t]), acc[t]);
    }
  }
}

using PackPanelFn = void (*)(const PanelRows&, int64_t b0, int nb, Panel&);

template <PackPanelFn kPack, int kSOffset>
void packed_gemm(int64_t n, const void* vw, int64_t w_stride, int64_t n_rows, const void* xp,
                 int64_t n_tokens, float* y, int64_t ldy) {
  const auto* w = static_cast<const uint8_t*>(vw);
  const auto* x = static_cast<const uint8_t*>(xp);
  const int64_t nb = n / kQK;
  const int64_t n_tiles = (n_tokens + kTile - 1) / kTile;
  const int64_t tile_bytes = nb * kPackedXBlockBytes;
  Panel panel;
  for (int64_t r0 = 0; r0 < n_rows; r0 += kPanelRows) {
    PanelRows pr;
    pr.w = w + r0 * w_stride;
    pr.stride = w_stride;
    pr.rows = static_cast<int>(std::min<int64_t>(kPanelRows, n_rows - r0));
    pr.live = static_cast<__mmask16>((1u << pr.rows) - 1);
    pr.offsets = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(static_cast<int>(w_stride)));
    for (int64_t b0 = 0; b0 < nb; b0 += kPanelBlocks) {
      const int pb = static_cast<int>(std::min<int64_t>(kPanelBlocks, nb - b0));
      kPack(pr, b0, pb, panel);
      for (int64_t tile = 0; tile < n_tiles; ++tile) {
        __m512 acc[kTile];
        for (__m512& a : acc) a = _mm512_setzero_ps();
        const int64_t nt = std::min<int64_t>(kTile, n_tokens - tile * kTile);
        const uint8_t* xb = x + tile * tile_bytes + b0 * kPackedXBlockBytes;
        switch (nt) {
          case 1: panel_tile<kSOffset, 1>(panel, pb, xb, acc); break;
          case 2: panel_tile<kSOffset, 2>(panel, pb, xb, acc); break;
          case 3: panel_tile<kSOffset, 3>(panel, pb, xb, acc); break;
          case 4: panel_tile<kSOffset, 4>(panel, pb, xb, acc); break;
          case 5: panel_tile<kSOffset, 5>(panel, pb, xb, acc); break;
          case 6: panel_tile<kSOffset, 6>(panel, pb, xb, acc); break;
          case 7: panel_tile<kSOffset, 7>(panel, pb, xb, acc); break;
          default: panel_tile<kSOffset, kTile>(panel, pb, xb, acc); break;
        }
        for (int64_t t = 0; t < nt; ++t) {
          float* yt = y + (tile * kTile + t) * ldy + r0;
          __m512 v = acc[t];
          if (b0 > 0) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(pr.live, yt));
          _mm512_mask_storeu_ps(yt, pr.live, v);
        }
      }
    }
  }
}

void pack_x(const float* x, int64_t n, int64_t n_tokens, int64_t tile0, int64_t tile1,
            void* xp) {
  const int64_t nb = n / kQK;
  auto* out = static_cast<uint8_t*>(xp);
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* blk = out + (tile * nb + b) * kPackedXBlockBytes;
      auto* d = reinterpret_cast<float*>(blk);
      float* s = d + kTile;
      float* sh = d + 2 * kTile;
      uint8_t* q = blk + 3 * kTile * sizeof(float);
      for (int t = 0; t < kTile; ++t) {
        const int64_t tok = tile * kTile + t;
        int8_t qs[kQK] = {};
        d[t] = s[t] = sh[t] = 0;
        if (tok < n_tokens) {
          f16_t dh;
          const Q8Block r = quantize_block_q8(x + tok * n + b * kQK, dh, qs);
          d[t] = f16_to_f32(dh);
          s[t] = d[t] * static_cast<float>(r.sum);
          sh[t] = f16_to_f32(f32_to_f16(r.d * static_cast<float>(r.sum)));  // as Q8_1's s
        }
        for (int k = 0; k < kChunks; ++k) std::memcpy(q + (k * kTile + t) * 4, qs + 4 * k, 4);
      }
    }
  }
}

void set(KernelTable& t, TensorType type, PackedGemmFn gemm) {
  TypeKernels& k = t.types[static_cast<uint32_t>(type)];
  k.pack_x = pack_x;
  k.packed_gemm = gemm;
}

}  // namespace

void fill_avx512_packed(KernelTable& t) {
  constexpr int kS = kTile, kSh = 2 * kTile;
  set(t, TensorType::Q4_0, packed_gemm<pack_q4_0, kS>);
  set(t, TensorType::Q4_1, packed_gemm<pack_q4_1, kSh>);
  set(t, TensorType::Q8_0, packed_gemm<pack_q8_0, kS>);
  set(t, TensorType::Q4_K, packed_gemm<pack_q4_k, kS>);
}

}  // namespace hearth::kernels
