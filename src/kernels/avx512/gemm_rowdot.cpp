// The packed gemm's arithmetic (gemm_packed_ref.cpp states it) for a few tokens, read
// straight from the row-major weights: no panel is built, so a single token (decode)
// costs one pass over the weights and nothing more. AVX-512 VNNI; Q4_0, Q4_1, Q8_0.
//
// Per block of 32 and group of 16 rows: each row's block is unpacked to u8 quants, two
// rows per zmm, and one vpdpbusd against the token's 32 int8 activations (both halves)
// gives each row 8 partial sums; a fixed add tree (unpack lo/hi by 32 and 64 bits, then
// 128-bit lanes) reduces the 8 zmm to the 16 rows' exact block dots, one per lane. From
// there the f32 steps are the packed gemm's, lane by lane: f = f32(dot) * d_w,
// acc = fma(f, d_x, acc), acc = fma(m_w, s_x, acc), restarting every kPackedPanelBlocks
// blocks. So every token's result is bit-identical to the packed gemm's and to the
// scalar twin's (tests/kernels/gemm_test.cpp), whatever path its neighbours take.
//
// Activations (rowdot_x_bytes per token): q[nb][32] int8, then f32 d[nb], s[nb], sh[nb]
// (s = d * sum(q); sh = s as Q8_1 rounds it), quantized exactly as Q8_0/Q8_1 do.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cstring>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "kernels/avx2/legacy_simd.h"
#pragma GCC diagnostic pop
#include "kernels/type_kernels.h"

namespace hearth::kernels {
namespace {

constexpr int kGroup = 16;
constexpr int kPrefetchBytes = 384;  // ahead of the block being read, per row
// Vector i of a group holds rows 4i .. 4i + 3, one per 128-bit lane l (row 4i + l); the
// reduced vector then holds row 4 (j % 4) + j / 4 in lane j, a 4 x 4 transpose that is its
// own inverse, so kLanes both maps lanes to rows and rows to lanes.
constexpr int kLanes[kGroup] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};

// The rows of a group: a whole group is 16 rows `stride` bytes apart (few registers for
// the addresses); the last, partial group repeats its first row past n_rows.
struct WholeGroup {
  const uint8_t* base;
  int64_t stride;
  const uint8_t* at(int k, int64_t off) const { return base + k * stride + off; }
  const uint8_t* next(int k, int64_t off) const { return at(kGroup + k, off); }
};
struct PartialGroup {
  const uint8_t* row[kGroup];
  const uint8_t* at(int k, int64_t off) const { return row[k] + off; }
  const uint8_t* next(int k, int64_t off) const { return at(k, off); }  // nothing follows
};

inline __m128i load16(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

// 16 bytes at byte offset off of rows 4i .. 4i + 3 of the group, one row per 128-bit lane.
template <class G>
inline __m512i load4(const G& g, int i, int64_t off) {
  __m512i v = _mm512_castsi128_si512(load16(g.at(4 * i, off)));
  v = _mm512_inserti32x4(v, load16(g.at(4 * i + 1, off)), 1);
  v = _mm512_inserti32x4(v, load16(g.at(4 * i + 2, off)), 2);
  return _mm512_inserti32x4(v, load16(g.at(4 * i + 3, off)), 3);
}

// 4 vectors of 4 rows x 4 partial dots -> the 16 rows' sums, row kLanes[j] in lane j.
// Integer adds: exact in any order.
inline __m512i reduce16(const __m512i p[4]) {
  const __m512i u0 = _mm512_add_epi32(_mm512_unpacklo_epi32(p[0], p[1]), _mm512_unpackhi_epi32(p[0], p[1]));
  const __m512i u1 = _mm512_add_epi32(_mm512_unpacklo_epi32(p[2], p[3]), _mm512_unpackhi_epi32(p[2], p[3]));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(u0, u1), _mm512_unpackhi_epi64(u0, u1));
}

// Dword 0 of each lane of the 4 vectors (row 4i + l's block head) -> row kLanes[j] in
// lane j, the same transpose selecting instead of adding. No gather: Zen 4's is slow.
inline __m512i heads16(const __m512i h[4]) {
  return _mm512_unpacklo_epi64(_mm512_unpacklo_epi32(h[0], h[1]), _mm512_unpacklo_epi32(h[2], h[3]));
}

inline __m512 half_lo(__m512i v) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)); }
inline __m512 half_hi(__m512i v) { return half_lo(_mm512_srli_epi32(v, 16)); }

// Per type: block bytes; the exact dots of the 4 rows of vector i against the token's
// block (x_lo / x_hi: its elements 0..15 / 16..31 in every 128-bit lane), 4 partial sums
// per row; d and m from the 16 rows' block heads (dword 0 of each block).
template <int kQsOffset, class G>
inline __m512i dot_nibbles(const G& row, int i, int64_t off, __m512i x_lo, __m512i x_hi) {
  const __m512i v = load4(row, i, off + kQsOffset);  // element j: low nibble of byte j, j + 16: high
  const __m512i mask = _mm512_set1_epi8(0x0f);
  const __m512i lo = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(v, mask), x_lo);
  return _mm512_dpbusd_epi32(lo, _mm512_and_si512(_mm512_srli_epi32(v, 4), mask), x_hi);
}

struct Q4_0R {
  static constexpr int kBytes = sizeof(BlockQ4_0);
  static constexpr bool kRoundedSum = false;
  template <class G>
  static __m512i dot(const G& row, int i, int64_t off, __m512i x_lo, __m512i x_hi) {
    return dot_nibbles<offsetof(BlockQ4_0, qs)>(row, i, off, x_lo, x_hi);
  }
  static void scales(__m512i head, __m512* d, __m512* m) {
    *d = half_lo(head);
    *m = _mm512_mul_ps(*d, _mm512_set1_ps(-8.0f));
  }
};

struct Q4_1R {
  static constexpr int kBytes = sizeof(BlockQ4_1);
  static constexpr bool kRoundedSum = true;
  template <class G>
  static __m512i dot(const G& row, int i, int64_t off, __m512i x_lo, __m512i x_hi) {
    return dot_nibbles<offsetof(BlockQ4_1, qs)>(row, i, off, x_lo, x_hi);
  }
  static void scales(__m512i head, __m512* d, __m512* m) {
    *d = half_lo(head);
    *m = half_hi(head);
  }
};

struct Q8_0R {
  static constexpr int kBytes = sizeof(BlockQ8_0);
  static constexpr bool kRoundedSum = false;
  template <class G>
  static __m512i dot(const G& row, int i, int64_t off, __m512i x_lo, __m512i x_hi) {
    // Each row's 32 quants in one load; [a | b], [c | d] -> [a_lo b_lo c_lo d_lo] and
    // [a_hi b_hi c_hi d_hi] by two 128-bit shuffles.
    auto q = [&](int k) {
      return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row.at(4 * i + k, off + offsetof(BlockQ8_0, qs))));
    };
    const __m512i ab = _mm512_inserti64x4(_mm512_castsi256_si512(q(0)), q(1), 1);
    const __m512i cd = _mm512_inserti64x4(_mm512_castsi256_si512(q(2)), q(3), 1);
    const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));  // q + 128 as u8
    const __m512i lo = _mm512_xor_si512(_mm512_shuffle_i64x2(ab, cd, 0x88), bias);
    const __m512i hi = _mm512_xor_si512(_mm512_shuffle_i64x2(ab, cd, 0xdd), bias);
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, x_lo), hi, x_hi);
  }
  static void scales(__m512i head, __m512* d, __m512* m) {
    *d = half_lo(head);
    *m = _mm512_mul_ps(*d, _mm512_set1_ps(-128.0f));
  }
};

int64_t x_bytes_per_token(int64_t nb) { return nb * (kQK + 3 * 4); }

void rowdot_pack_x(const float* x, int64_t n, int64_t n_tokens, int64_t tile0, int64_t tile1,
                   void* xp) {
  const int64_t nb = n / kQK;
  const int64_t t1 = std::min(n_tokens, tile1 * kPackedTileTokens);
  for (int64_t t = tile0 * kPackedTileTokens; t < t1; ++t) {
    auto* q = static_cast<int8_t*>(xp) + t * x_bytes_per_token(nb);
    auto* d = reinterpret_cast<float*>(q + nb * kQK);
    float* s = d + nb;
    float* sh = s + nb;
    for (int64_t b = 0; b < nb; ++b) {
      f16_t dh;
      const Q8Block r = quantize_block_q8(x + t * n + b * kQK, dh, q + b * kQK);
      d[b] = f16_to_f32(dh);
      s[b] = d[b] * static_cast<float>(r.sum);
      sh[b] = f16_to_f32(f32_to_f16(r.d * static_cast<float>(r.sum)));
    }
  }
}

// The 16 rows of group g (lanes: kLanes) times tokens [0, n_tokens), stored under live_mask.
template <class T, class G>
void rowdot_group(const G& g, int64_t nb, const void* xp, int64_t n_tokens, float* y,
                  int64_t ldy, __mmask16 live_mask) {
  const __m512i lanes = _mm512_loadu_si512(kLanes);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const auto* xq = static_cast<const int8_t*>(xp) + t * x_bytes_per_token(nb);
    const auto* xd = reinterpret_cast<const float*>(xq + nb * kQK);
    const float* xs = xd + nb * (T::kRoundedSum ? 2 : 1);
    __m512 out = _mm512_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += kPackedPanelBlocks) {
      __m512 acc = _mm512_setzero_ps();
      const int64_t b1 = std::min(nb, b0 + kPackedPanelBlocks);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t off = b * T::kBytes;
        const auto* xb = reinterpret_cast<const __m128i*>(xq + b * kQK);
        const __m512i x_lo = _mm512_broadcast_i32x4(_mm_loadu_si128(xb));
        const __m512i x_hi = _mm512_broadcast_i32x4(_mm_loadu_si128(xb + 1));
        // 16 row streams are more than the hardware prefetcher follows. Every block's
        // or every other block's prefetch reaches each new 64-byte line of a row.
        if (2 * T::kBytes > 64 || (b & 1) == 0)
          for (int k = 0; k < kGroup; ++k)
            _mm_prefetch(reinterpret_cast<const char*>(g.at(k, off + kPrefetchBytes)), _MM_HINT_T0);
        // The next group's rows, at the same pace, so it does not start on 16 cold lines.
        if (t == 0 && (2 * T::kBytes > 64 || (b & 1) == 1))
          for (int k = 0; k < kGroup; ++k)
            _mm_prefetch(reinterpret_cast<const char*>(g.next(k, off)), _MM_HINT_T1);
        __m512i p[4], h[4];
        for (int i = 0; i < 4; ++i) {
          p[i] = T::dot(g, i, off, x_lo, x_hi);
          h[i] = load4(g, i, off);
        }
        __m512 dw, mw;
        T::scales(heads16(h), &dw, &mw);
        const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(reduce16(p)), dw);
        acc = _mm512_fmadd_ps(f, _mm512_set1_ps(xd[b]), acc);
        acc = _mm512_fmadd_ps(mw, _mm512_set1_ps(xs[b]), acc);
      }
      out = b0 == 0 ? acc : _mm512_add_ps(acc, out);
    }
    _mm512_mask_storeu_ps(y + t * ldy, live_mask, _mm512_permutexvar_ps(lanes, out));
  }
}

template <class T>
void rowdot_gemm(int64_t n, const void* vw, int64_t w_stride, int64_t n_rows, const void* xp,
                 int64_t n_tokens, float* y, int64_t ldy) {
  const auto* w = static_cast<const uint8_t*>(vw);
  const int64_t nb = n / kQK;
  int64_t r0 = 0;
  for (; r0 + kGroup <= n_rows; r0 += kGroup)
    rowdot_group<T>(WholeGroup{w + r0 * w_stride, w_stride}, nb, xp, n_tokens, y + r0, ldy,
                    __mmask16(0xffff));
  if (r0 < n_rows) {
    const int live = static_cast<int>(n_rows - r0);
    PartialGroup g;
    for (int i = 0; i < kGroup; ++i) g.row[i] = w + (r0 + (i < live ? i : 0)) * w_stride;
    rowdot_group<T>(g, nb, xp, n_tokens, y + r0, ldy, static_cast<__mmask16>((1u << live) - 1));
  }
}

void set(KernelTable& t, TensorType type, PackedGemmFn gemm) {
  TypeKernels& k = t.types[static_cast<uint32_t>(type)];
  k.rowdot_pack_x = rowdot_pack_x;
  k.rowdot_gemm = gemm;
}

}  // namespace

int64_t rowdot_x_bytes(int64_t n, int64_t n_tokens) { return x_bytes_per_token(n / kQK) * n_tokens; }

void fill_avx512_rowdot(KernelTable& t) {
  set(t, TensorType::Q4_0, rowdot_gemm<Q4_0R>);
  set(t, TensorType::Q4_1, rowdot_gemm<Q4_1R>);
  set(t, TensorType::Q8_0, rowdot_gemm<Q8_0R>);
}

}  // namespace hearth::kernels
