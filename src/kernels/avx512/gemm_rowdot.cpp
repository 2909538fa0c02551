// The packed gemm's arithmetic (gemm_packed_ref.cpp states it) for a few tokens, read
// straight from the row-major weights: no panel is built, so a single token (decode)
// costs one pass over the weights and nothing more. AVX-512 VNNI; Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, Q4_K, Q5_K from the file's layout, and (below, "Interleaved weights") Q4_0, Q4_1,
// Q8_0, Q4_K, Q6_K from weights interleaved at load, which is what the engine holds where
// it can. (Q6_K in the file's layout keeps the packed panels: a rowdot form, with its two
// halves reduced apart, was faster in cache but slower from DRAM; see git history.)
//
// Per block of 32 and group of 16 rows: 4 rows per zmm, one per 128-bit lane, unpacked
// to u8 quants (16 per lane) and multiplied by the token's int8 activations (elements
// 0..15, then 16..31, broadcast to every lane) with vpdpbusd: 4 partial sums per row; a
// 4 x 4 transpose-add (reduce16) gives the 16 rows' exact block dots, row kLanes[j] in
// lane j. From there the f32 steps are the packed gemm's, lane by lane: f = f32(dot) * d_w,
// acc = fma(f, d_x, acc), acc = fma(m_w, s_x, acc), restarting every kPackedPanelBlocks
// blocks. K-quants go a super-block at a time: the 8 sub-blocks' d * sc and -dmin * mn
// are computed lane-wise from the transposed 16-byte heads first. So every token's result
// is bit-identical to the packed gemm's and to the scalar twin's (tests/kernels/gemm_test.cpp),
// whatever path its neighbours take.
//
// Activations (rowdot_x_bytes per token): q[nb][32] int8, then f32 d[nb], s[nb], sh[nb]
// (s = d * sum(q); sh = s as Q8_1 rounds it), quantized exactly as Q8_0/Q8_1 do, then
// int32 o16[nb][2] = -32 * sum(q) over elements 0..15 and 16..31 (Q6_K's offset).
//
// Interleaved weights (kernels/interleave.h; the il_rowdot_gemm entries): the same
// arithmetic, bit for bit, from groups of 16 rows whose block fields lie side by side. A
// 64-byte load is dword j of 16 rows, lane i = row i: with the token's 4 activations of
// that dword broadcast, one vpdpbusd adds 4 products to each row's dot, with no inserts,
// transposes or reductions, and the matrix is read in address order.

#include <algorithm>
#include <cstdint>
#include <cstring>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "kernels/avx2/legacy_simd.h"
#pragma GCC diagnostic pop
#include "kernels/blocks_k.h"
#include "kernels/intrinsics.h"
#include "kernels/type_kernels.h"

namespace hearth::kernels {
namespace {

constexpr int kGroup = 16;
// Vector i of a group holds rows 4i .. 4i + 3, one per 128-bit lane l (row 4i + l); the
// reduced vector then holds row 4 (j % 4) + j / 4 in lane j, a 4 x 4 transpose that is its
// own inverse, so kLanes both maps lanes to rows and rows to lanes.
constexpr int kLanes[kGroup] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};

// The rows of a group: a whole group is 16 rows `stride` bytes apart (few registers for
// the addresses); the last, partial group repeats its first row past n_rows.
//
// Prefetch, two schemes (16 rows read side by side are 16 streams, more than the hardware
// prefetcher follows well):
// - rows: each row kPrefetchBytes ahead, and the next group's rows at the same offsets.
// - linear (K-quants): the next group (the kGroup * stride bytes that follow a whole
//   group) in address order, kGroup times as fast as a row advances. From DRAM on one
//   core (kernels_bench matvec_dram/<type>/1B/1 and 1Bdown/1) Q4_K read 20-24 GB/s with
//   `rows` and 26-33 GB/s with `linear`, Q5_K 16-18 against 22-25; Q8_0 was slower with
//   `linear` (30 against 20-26), Q4_0 about the same, so the per-block types keep `rows`.
constexpr int kPrefetchBytes = 384;
struct WholeGroup {
  const uint8_t* base;
  int64_t stride;
  const uint8_t* at(int k, int64_t off) const { return base + k * stride + off; }
  const uint8_t* next(int k, int64_t off) const { return at(kGroup + k, off); }
  // The next group's lines that start in its bytes [kGroup * off, kGroup * (off + bytes)).
  void prefetch_next_linear(int64_t off, int bytes) const {
    const uintptr_t first = reinterpret_cast<uintptr_t>(base + kGroup * (stride + off));
    const uintptr_t end = first + kGroup * bytes;
    for (uintptr_t a = (first + 63) & ~uintptr_t{63}; a < end; a += 64)
      _mm_prefetch(reinterpret_cast<const char*>(a), _MM_HINT_T0);
  }
};
struct PartialGroup {
  const uint8_t* row[kGroup];
  const uint8_t* at(int k, int64_t off) const { return row[k] + off; }
  const uint8_t* next(int k, int64_t off) const { return at(k, off); }  // nothing follows
  void prefetch_next_linear(int64_t, int) const {}
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

// The token's activations (layout: x_bytes_per_token); s is sh for the types that use it.
struct XTok {
  const int8_t* q;
  const float* d;
  const float* s;
};

// Block b's elements 0..15 / 16..31 in every 128-bit lane.
inline __m512i x_lo(const XTok& x, int64_t b) {
  return _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.q + b * kQK)));
}
inline __m512i x_hi(const XTok& x, int64_t b) {
  return _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.q + b * kQK + 16)));
}

// One block's f32 steps, lane by lane (the twin's order): f = f32(dot) * d_w,
// acc = fma(f, d_x, acc), acc = fma(m_w, s_x, acc).
inline __m512 step(__m512 acc, __m512i dot, __m512 dw, __m512 mw, float xd, float xs) {
  const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), dw);
  acc = _mm512_fmadd_ps(f, _mm512_set1_ps(xd), acc);
  return _mm512_fmadd_ps(mw, _mm512_set1_ps(xs), acc);
}

// 32 bytes at byte offset off of rows 4i .. 4i + 3, one row per 128-bit lane: bytes 0..15
// in *lo, 16..31 in *hi. Two 32-byte loads per pair of rows, [a | b], [c | d] ->
// [a_lo b_lo c_lo d_lo] and [a_hi b_hi c_hi d_hi] by two 128-bit shuffles.
template <class G>
inline void load4x32(const G& g, int i, int64_t off, __m512i* lo, __m512i* hi) {
  auto q = [&](int k) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.at(4 * i + k, off))); };
  const __m512i ab = _mm512_inserti64x4(_mm512_castsi256_si512(q(0)), q(1), 1);
  const __m512i cd = _mm512_inserti64x4(_mm512_castsi256_si512(q(2)), q(3), 1);
  *lo = _mm512_shuffle_i64x2(ab, cd, 0x88);
  *hi = _mm512_shuffle_i64x2(ab, cd, 0xdd);
}

// The 4 x 4 dword transpose of 4 vectors of 4 rows: t[k] holds dword k of row kLanes[j]
// in lane j (t[0] is heads16).
inline void transpose16(const __m512i h[4], __m512i t[4]) {
  const __m512i a = _mm512_unpacklo_epi32(h[0], h[1]), b = _mm512_unpackhi_epi32(h[0], h[1]);
  const __m512i c = _mm512_unpacklo_epi32(h[2], h[3]), d = _mm512_unpackhi_epi32(h[2], h[3]);
  t[0] = _mm512_unpacklo_epi64(a, c);
  t[1] = _mm512_unpackhi_epi64(a, c);
  t[2] = _mm512_unpacklo_epi64(b, d);
  t[3] = _mm512_unpackhi_epi64(b, d);
}

// Byte k of every dword (unsigned), as f32.
inline __m512 byte_u(__m512i v, int k) {
  return _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(v, 8 * k), _mm512_set1_epi32(0xff)));
}
inline __m512 negate(__m512 v) {
  return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN)));
}

inline __m512i nib_lo(__m512i v) { return _mm512_and_si512(v, _mm512_set1_epi8(0x0f)); }
inline __m512i nib_hi(__m512i v) { return nib_lo(_mm512_srli_epi32(v, 4)); }
// Bit k of every byte of v (k < 8) moved to bit 4 (0x10). 16-bit shifts: the bit taken
// is the byte's own for any k.
inline __m512i bit_to_0x10(__m512i v, int k) {
  const __m512i s = k <= 4 ? _mm512_slli_epi16(v, 4 - k) : _mm512_srli_epi16(v, k - 4);
  return _mm512_and_si512(s, _mm512_set1_epi8(0x10));
}

// Types with one scale and offset per block of 32: T::dot gives the exact dots of the 4
// rows of vector i (4 partial sums per row), T::scales d and m from the 16 rows' block
// heads (dword 0 of each block, kLanes order).
template <class T>
struct PerBlock : T {
  static constexpr int kBlocks = 1;
  static constexpr bool kLinearPrefetch = false;
  template <class G>
  static void unit(const G& g, int64_t off, const XTok& x, int64_t b, __m512& acc) {
    const __m512i xl = x_lo(x, b), xh = x_hi(x, b);
    __m512i p[4], h[4];
    for (int i = 0; i < 4; ++i) {
      p[i] = T::dot(g, i, off, xl, xh);
      h[i] = load4(g, i, off);
    }
    __m512 dw, mw;
    T::scales(heads16(h), &dw, &mw);
    acc = step(acc, reduce16(p), dw, mw, x.d[b], x.s[b]);
  }
};

template <int kQsOffset, class G>
inline __m512i dot_nibbles(const G& row, int i, int64_t off, __m512i xl, __m512i xh) {
  const __m512i v = load4(row, i, off + kQsOffset);  // element j: low nibble of byte j, j + 16: high
  const __m512i lo = _mm512_dpbusd_epi32(_mm512_setzero_si512(), nib_lo(v), xl);
  return _mm512_dpbusd_epi32(lo, nib_hi(v), xh);
}

// Q5_0 / Q5_1: the nibbles plus element j's fifth bit, bit j of qh (byte j / 8, bit j % 8),
// as 0x10.
template <int kQhOffset, int kQsOffset, class G>
inline __m512i dot_q5(const G& row, int i, int64_t off, __m512i xl, __m512i xh) {
  const __m512i v = load4(row, i, off + kQsOffset);
  const __m512i qh = load4(row, i, off + kQhOffset);  // bytes 0..3 of each lane
  const __m512i sel_lo = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
  const __m512i sel_hi = _mm512_broadcast_i32x4(_mm_setr_epi8(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m512i bits = _mm512_set1_epi64(static_cast<int64_t>(0x8040201008040201ull));
  const __m512i sixteen = _mm512_set1_epi8(0x10);
  const __mmask64 f_lo = _mm512_test_epi8_mask(_mm512_shuffle_epi8(qh, sel_lo), bits);
  const __mmask64 f_hi = _mm512_test_epi8_mask(_mm512_shuffle_epi8(qh, sel_hi), bits);
  const __m512i lo = _mm512_or_si512(nib_lo(v), _mm512_maskz_mov_epi8(f_lo, sixteen));
  const __m512i hi = _mm512_or_si512(nib_hi(v), _mm512_maskz_mov_epi8(f_hi, sixteen));
  return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xl), hi, xh);
}

// Block heads of the per-block types: d then w = d q + kOffset d (Q4_0, Q5_0, Q8_0), or
// d and m as stored (Q4_1, Q5_1, whose activation sums are Q8_1's rounded ones).
template <int kOffset>
struct OffsetScales {
  static constexpr bool kRoundedSum = false;
  static void scales(__m512i head, __m512* d, __m512* m) {
    *d = half_lo(head);
    *m = _mm512_mul_ps(*d, _mm512_set1_ps(static_cast<float>(kOffset)));
  }
};
struct StoredMinScales {
  static constexpr bool kRoundedSum = true;
  static void scales(__m512i head, __m512* d, __m512* m) {
    *d = half_lo(head);
    *m = half_hi(head);
  }
};

struct Q4_0R : OffsetScales<-8> {
  static constexpr int kBytes = sizeof(BlockQ4_0);
  template <class G>
  static __m512i dot(const G& row, int i, int64_t off, __m512i xl, __m512i xh) {
    return dot_nibbles<offsetof(BlockQ4_0, qs)>(row, i, off, xl, xh);
  }
};

struct Q4_1R : StoredMinScales {
  static constexpr int kBytes = sizeof(BlockQ4_1);
  template <class G>
  static __m512i dot(const G& row, int i, int64_t off, __m512i xl, __m512i xh) {
    return dot_nibbles<offsetof(BlockQ4_1, qs)>(row, i, off, xl, xh);
  }
};

struct Q5_0R : OffsetScales<-16> {
  static constexpr int kBytes = sizeof(BlockQ5_0);
  template <class G>
  static __m512i dot(const G& row, int i, int64_t off, __m512i xl, __m512i xh) {
    return dot_q5<offsetof(BlockQ5_0, qh), offsetof(BlockQ5_0, qs)>(row, i, off, xl, xh);
  }
};

struct Q5_1R : StoredMinScales {
  static constexpr int kBytes = sizeof(BlockQ5_1);
  template <class G>
  static __m512i dot(const G& row, int i, int64_t off, __m512i xl, __m512i xh) {
    return dot_q5<offsetof(BlockQ5_1, qh), offsetof(BlockQ5_1, qs)>(row, i, off, xl, xh);
  }
};

struct Q8_0R : OffsetScales<-128> {
  static constexpr int kBytes = sizeof(BlockQ8_0);
  template <class G>
  static __m512i dot(const G& row, int i, int64_t off, __m512i xl, __m512i xh) {
    __m512i lo, hi;
    load4x32(row, i, off + offsetof(BlockQ8_0, qs), &lo, &hi);
    const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));  // q + 128 as u8
    lo = _mm512_xor_si512(lo, bias);
    hi = _mm512_xor_si512(hi, bias);
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xl), hi, xh);
  }
};

// Q4_K / Q5_K, a super-block (8 blocks of 32) at a time: the 16 rows' d * sc and
// -dmin * mn of all 8 sub-blocks first (6-bit fields unpacked as unpack_scales_mins_k4
// does, lane-wise), then sub-blocks 2c and 2c + 1 from the low and high nibbles of
// qs[32c ..] (Q5_K: plus bits 2c and 2c + 1 of qh[l] as 0x10).
template <class Block, bool kFifth>
struct K4R {
  static constexpr int kBytes = sizeof(Block);
  static constexpr int kBlocks = 8;
  static constexpr bool kRoundedSum = false;
  static constexpr bool kLinearPrefetch = true;
  template <class G>
  static void unit(const G& g, int64_t off, const XTok& x, int64_t b, __m512& acc) {
    __m512 dw[8], mw[8];
    {
      __m512i h[4], t[4];
      for (int i = 0; i < 4; ++i) h[i] = load4(g, i, off);  // d, dmin, scales[12]
      transpose16(h, t);
      const __m512 d = half_lo(t[0]), neg_dmin = negate(half_hi(t[0]));
      const __m512i k6 = _mm512_set1_epi8(0x3f), k4 = _mm512_set1_epi8(0x0f), k2 = _mm512_set1_epi8(0x03);
      const __m512i sc03 = _mm512_and_si512(t[1], k6);
      const __m512i sc47 = _mm512_or_si512(_mm512_and_si512(t[3], k4),
                                           _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(t[1], 6), k2), 4));
      const __m512i m03 = _mm512_and_si512(t[2], k6);
      const __m512i m47 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(t[3], 4), k4),
                                          _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(t[2], 6), k2), 4));
      for (int j = 0; j < 4; ++j) {
        dw[j] = _mm512_mul_ps(d, byte_u(sc03, j));
        dw[4 + j] = _mm512_mul_ps(d, byte_u(sc47, j));
        mw[j] = _mm512_mul_ps(neg_dmin, byte_u(m03, j));
        mw[4 + j] = _mm512_mul_ps(neg_dmin, byte_u(m47, j));
      }
    }
    for (int c = 0; c < 4; ++c) {
      const __m512i xel = x_lo(x, b + 2 * c), xeh = x_hi(x, b + 2 * c);
      const __m512i xol = x_lo(x, b + 2 * c + 1), xoh = x_hi(x, b + 2 * c + 1);
      __m512i pe[4], po[4];
      for (int i = 0; i < 4; ++i) {
        __m512i lo, hi;
        load4x32(g, i, off + offsetof(Block, qs) + 32 * c, &lo, &hi);
        __m512i el = nib_lo(lo), eh = nib_lo(hi), ol = nib_hi(lo), oh = nib_hi(hi);
        if constexpr (kFifth) {
          __m512i hl, hh;
          load4x32(g, i, off + offsetof(BlockQ5K, qh), &hl, &hh);
          el = _mm512_or_si512(el, bit_to_0x10(hl, 2 * c));
          eh = _mm512_or_si512(eh, bit_to_0x10(hh, 2 * c));
          ol = _mm512_or_si512(ol, bit_to_0x10(hl, 2 * c + 1));
          oh = _mm512_or_si512(oh, bit_to_0x10(hh, 2 * c + 1));
        }
        pe[i] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), el, xel), eh, xeh);
        po[i] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ol, xol), oh, xoh);
      }
      acc = step(acc, reduce16(pe), dw[2 * c], mw[2 * c], x.d[b + 2 * c], x.s[b + 2 * c]);
      acc = step(acc, reduce16(po), dw[2 * c + 1], mw[2 * c + 1], x.d[b + 2 * c + 1], x.s[b + 2 * c + 1]);
    }
  }
};
using Q4_KR = K4R<BlockQ4K, false>;
using Q5_KR = K4R<BlockQ5K, true>;

// Per token: q[nb][32] int8, then f32 d[nb], s[nb], sh[nb], then int32 o16[nb][2].
int64_t x_bytes_per_token(int64_t nb) { return nb * kRowdotXBlockBytes; }

XTok x_token(const void* xp, int64_t nb, int64_t t, bool rounded_sum) {
  const auto* q = static_cast<const int8_t*>(xp) + t * x_bytes_per_token(nb);
  const auto* d = reinterpret_cast<const float*>(q + nb * kQK);
  return {q, d, d + nb * (rounded_sum ? 2 : 1)};
}

void rowdot_pack_x(const float* x, int64_t n, int64_t n_tokens, int64_t tile0, int64_t tile1,
                   void* xp) {
  const int64_t nb = n / kQK;
  const int64_t t1 = std::min(n_tokens, tile1 * kPackedTileTokens);
  for (int64_t t = tile0 * kPackedTileTokens; t < t1; ++t) {
    auto* q = static_cast<int8_t*>(xp) + t * x_bytes_per_token(nb);
    auto* d = reinterpret_cast<float*>(q + nb * kQK);
    float* s = d + nb;
    float* sh = s + nb;
    auto* o16 = reinterpret_cast<int32_t*>(sh + nb);
    for (int64_t b = 0; b < nb; ++b) {
      f16_t dh;
      int8_t* qb = q + b * kQK;
      const Q8Block r = quantize_block_q8(x + t * n + b * kQK, dh, qb);
      d[b] = f16_to_f32(dh);
      s[b] = d[b] * static_cast<float>(r.sum);
      sh[b] = f16_to_f32(f32_to_f16(r.d * static_cast<float>(r.sum)));
      int32_t lo = 0;
      for (int i = 0; i < kQK / 2; ++i) lo += qb[i];
      o16[2 * b] = -32 * lo;
      o16[2 * b + 1] = -32 * (r.sum - lo);
    }
  }
}

// The 16 rows of group g (lanes: kLanes) times tokens [0, n_tokens), stored under live_mask.
template <class T, class G>
void rowdot_group(const G& g, int64_t nb, const void* xp, int64_t n_tokens, float* y,
                  int64_t ldy, __mmask16 live_mask) {
  const __m512i lanes = _mm512_loadu_si512(kLanes);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const XTok x = x_token(xp, nb, t, T::kRoundedSum);
    __m512 out = _mm512_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += kPackedPanelBlocks) {
      __m512 acc = _mm512_setzero_ps();
      const int64_t b1 = std::min(nb, b0 + kPackedPanelBlocks);
      for (int64_t b = b0; b < b1; b += T::kBlocks) {
        const int64_t u = b / T::kBlocks, off = u * T::kBytes;
        if constexpr (T::kLinearPrefetch) {
          if (t == 0) g.prefetch_next_linear(off, T::kBytes);  // later tokens find it in cache
        } else {
          // The `rows` scheme, written out here: in an inlined helper function GCC emitted
          // no prefetch at all (objdump), and 135M decode ran at half speed.
          constexpr int kLines = (T::kBytes + 63) / 64;
          if (2 * T::kBytes > 64 || (u & 1) == 0)
            for (int l = 0; l < kLines; ++l)
              for (int k = 0; k < kGroup; ++k)
                _mm_prefetch(reinterpret_cast<const char*>(g.at(k, off + kPrefetchBytes + 64 * l)), _MM_HINT_T0);
          if (t == 0 && (2 * T::kBytes > 64 || (u & 1) == 1))
            for (int l = 0; l < kLines; ++l)
              for (int k = 0; k < kGroup; ++k)
                _mm_prefetch(reinterpret_cast<const char*>(g.next(k, off + 64 * l)), _MM_HINT_T1);
        }
        T::unit(g, off, x, b, acc);
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


// ---- Interleaved weights ----------------------------------------------------------------

// The token's 4 activations of dword k of block b, in every lane.
inline __m512i x_dword(const XTok& x, int64_t b, int k) {
  int32_t v;
  std::memcpy(&v, x.q + b * kQK + 4 * k, 4);
  return _mm512_set1_epi32(v);
}
inline const int32_t* x_o16(const XTok& x, int64_t nb) {
  return reinterpret_cast<const int32_t*>(x.d + 3 * nb);
}
inline __m512i load64(const uint8_t* p) { return _mm512_loadu_si512(p); }
// 16 halves (one per row) as f32.
inline __m512 halves16(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512 byte_s(__m512i v, int k) {
  return _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * k), 24));
}

// A block of 16 interleaved rows at p: T::unit adds block b's steps to acc (rows in lane
// order), as PerBlock / K4R do from the row-major bytes.
// Q4_0 / Q4_1: dword k of the quants holds elements 4k .. 4k + 3 (low nibbles) and
// 16 + 4k .. (high nibbles).
inline __m512i il_nibble_dot(const uint8_t* qs, const XTok& x, int64_t b) {
  __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
  for (int k = 0; k < 4; ++k) {
    const __m512i v = load64(qs + 64 * k);
    s0 = _mm512_dpbusd_epi32(s0, nib_lo(v), x_dword(x, b, k));
    s1 = _mm512_dpbusd_epi32(s1, nib_hi(v), x_dword(x, b, 4 + k));
  }
  return _mm512_add_epi32(s0, s1);
}

struct Q4_0IL {
  static constexpr int kBytes = sizeof(BlockQ4_0), kBlocks = 1;
  static constexpr bool kRoundedSum = false;
  static void unit(const uint8_t* p, const XTok& x, int64_t b, int64_t, __m512& acc) {
    const __m512 dw = halves16(p);
    const __m512 mw = _mm512_mul_ps(dw, _mm512_set1_ps(-8.0f));
    acc = step(acc, il_nibble_dot(p + 32, x, b), dw, mw, x.d[b], x.s[b]);
  }
};

struct Q4_1IL {
  static constexpr int kBytes = sizeof(BlockQ4_1), kBlocks = 1;
  static constexpr bool kRoundedSum = true;
  static void unit(const uint8_t* p, const XTok& x, int64_t b, int64_t, __m512& acc) {
    const __m512i head = load64(p);  // d | m
    acc = step(acc, il_nibble_dot(p + 64, x, b), half_lo(head), half_hi(head), x.d[b], x.s[b]);
  }
};

struct Q8_0IL {
  static constexpr int kBytes = sizeof(BlockQ8_0), kBlocks = 1;
  static constexpr bool kRoundedSum = false;
  static void unit(const uint8_t* p, const XTok& x, int64_t b, int64_t, __m512& acc) {
    const __m512 dw = halves16(p);
    const __m512 mw = _mm512_mul_ps(dw, _mm512_set1_ps(-128.0f));
    const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));  // q + 128 as u8
    __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
    for (int k = 0; k < 8; k += 2) {
      s0 = _mm512_dpbusd_epi32(s0, _mm512_xor_si512(load64(p + 32 + 64 * k), bias), x_dword(x, b, k));
      s1 = _mm512_dpbusd_epi32(s1, _mm512_xor_si512(load64(p + 96 + 64 * k), bias), x_dword(x, b, k + 1));
    }
    acc = step(acc, _mm512_add_epi32(s0, s1), dw, mw, x.d[b], x.s[b]);
  }
};

// Q4_K super-block: dwords 0..3 are d | dmin and the 12 scale bytes (K4R's t[0..3]);
// dword 4 + 8c + k holds sub-block 2c's elements 4k .. 4k + 3 in its low nibbles and
// sub-block 2c + 1's in its high nibbles. The high nibbles enter vpdpbusd in place
// (q * 16, one AND instead of a shift and an AND) and their scale is d * sc / 16: the dot
// times 16 is exact in f32 (|dot| <= 15 * 127 * 32) and so is d * sc / 16 (d * sc is a
// multiple of 2^-24 or zero), so f32(16 dot) * (d * sc / 16) rounds the same real number
// as f32(dot) * (d * sc): the same bits.
struct Q4_KIL {
  static constexpr int kBytes = sizeof(BlockQ4K), kBlocks = 8;
  static constexpr bool kRoundedSum = false;
  static void unit(const uint8_t* p, const XTok& x, int64_t b, int64_t, __m512& acc) {
    __m512 dw[8], mw[8];
    {
      const __m512i t0 = load64(p), t1 = load64(p + 64), t2 = load64(p + 128), t3 = load64(p + 192);
      const __m512 d = half_lo(t0), neg_dmin = negate(half_hi(t0));
      const __m512i k6 = _mm512_set1_epi8(0x3f), k4 = _mm512_set1_epi8(0x0f), k2 = _mm512_set1_epi8(0x03);
      const __m512i sc03 = _mm512_and_si512(t1, k6);
      const __m512i sc47 = _mm512_or_si512(_mm512_and_si512(t3, k4),
                                           _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(t1, 6), k2), 4));
      const __m512i m03 = _mm512_and_si512(t2, k6);
      const __m512i m47 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(t3, 4), k4),
                                          _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(t2, 6), k2), 4));
      for (int j = 0; j < 4; ++j) {
        // d * sc for even sub-blocks, (d * sc) / 16 for odd ones (their dots come times 16).
        const __m512 s_lo = byte_u(sc03, j), s_hi = byte_u(sc47, j);
        dw[j] = j % 2 == 0 ? _mm512_mul_ps(d, s_lo) : _mm512_mul_ps(_mm512_mul_ps(d, s_lo), _mm512_set1_ps(0.0625f));
        dw[4 + j] = j % 2 == 0 ? _mm512_mul_ps(d, s_hi) : _mm512_mul_ps(_mm512_mul_ps(d, s_hi), _mm512_set1_ps(0.0625f));
        mw[j] = _mm512_mul_ps(neg_dmin, byte_u(m03, j));
        mw[4 + j] = _mm512_mul_ps(neg_dmin, byte_u(m47, j));
      }
    }
    const uint8_t* qs = p + 4 * 64;
    const __m512i lo4 = _mm512_set1_epi8(0x0f), hi4 = _mm512_set1_epi8(static_cast<char>(0xf0));
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      __m512i se = _mm512_setzero_si512(), so = _mm512_setzero_si512();
      for (int k = 0; k < 8; ++k) {
        const __m512i v = load64(qs + 64 * (8 * c + k));
        se = _mm512_dpbusd_epi32(se, _mm512_and_si512(v, lo4), x_dword(x, b + 2 * c, k));
        so = _mm512_dpbusd_epi32(so, _mm512_and_si512(v, hi4), x_dword(x, b + 2 * c + 1, k));
      }
      acc = step(acc, se, dw[2 * c], mw[2 * c], x.d[b + 2 * c], x.s[b + 2 * c]);
      acc = step(acc, so, dw[2 * c + 1], mw[2 * c + 1], x.d[b + 2 * c + 1], x.s[b + 2 * c + 1]);
    }
  }
};

// Q6_K super-block: dwords 0..31 ql, 32..47 qh, 48..51 the 16 signed scales, then d as a
// tail half. Block j = 4h + r, chunk k: low bits in ql dword 16h + 8(r & 1) + k (high
// nibble for r >= 2), high bits 2r, 2r + 1 of qh dword 32 + 8h + k; q in 0..63 and the
// -32 enters through o16, as fused_q6_k (gemm_packed.cpp) computes it.
struct Q6_KIL {
  static constexpr int kBytes = sizeof(BlockQ6K), kBlocks = 8;
  static constexpr bool kRoundedSum = false;
  static void unit(const uint8_t* p, const XTok& x, int64_t b, int64_t nb, __m512& acc) {
    const int32_t* o16 = x_o16(x, nb);
    const __m512 d = halves16(p + 52 * 64);
    const __m512i sc0 = load64(p + 48 * 64), sc1 = load64(p + 49 * 64), sc2 = load64(p + 50 * 64),
                  sc3 = load64(p + 51 * 64);
    const __m512i sc[4] = {sc0, sc1, sc2, sc3};
    const __m512i k4 = _mm512_set1_epi8(0x0f), k30 = _mm512_set1_epi8(0x30);
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      __m512i s[2][4];  // [half][r]: the integer dots with o16, all in registers
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) {
        s[0][r] = _mm512_set1_epi32(o16[2 * (b + 4 * h + r)]);
        s[1][r] = _mm512_set1_epi32(o16[2 * (b + 4 * h + r) + 1]);
      }
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) {
        const __m512i l0 = load64(p + 64 * (16 * h + k)), l1 = load64(p + 64 * (16 * h + 8 + k));
        const __m512i hb = load64(p + 64 * (32 + 8 * h + k));
        // (a & 0x0f) | (bits & 0x30): ternary logic 0xEC is (a & c) | b, c = 0x0f.
        const __m512i q[4] = {
            _mm512_ternarylogic_epi32(l0, _mm512_and_si512(_mm512_slli_epi32(hb, 4), k30), k4, 0xEC),
            _mm512_ternarylogic_epi32(l1, _mm512_and_si512(_mm512_slli_epi32(hb, 2), k30), k4, 0xEC),
            _mm512_ternarylogic_epi32(_mm512_srli_epi32(l0, 4), _mm512_and_si512(hb, k30), k4, 0xEC),
            _mm512_ternarylogic_epi32(_mm512_srli_epi32(l1, 4), _mm512_and_si512(_mm512_srli_epi32(hb, 2), k30), k4, 0xEC)};
#pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) s[k / 4][r] = _mm512_dpbusd_epi32(s[k / 4][r], q[r], x_dword(x, b + 4 * h + r, k));
      }
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) {
        const int j = 4 * h + r;
        const __m512 xd = _mm512_set1_ps(x.d[b + j]);
        const __m512i scw = sc[j / 2];
        const __m512 dl = _mm512_mul_ps(d, byte_s(scw, 2 * (j % 2)));
        const __m512 dh = _mm512_mul_ps(d, byte_s(scw, 2 * (j % 2) + 1));
        acc = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s[0][r]), dl), xd, acc);
        acc = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s[1][r]), dh), xd, acc);
      }
    }
  }
};

// Prefetch distance for the interleaved kernels: the matrix is one stream in address order.
// 1B Q4_K_M, `hearth bench --roofline` medians: 1-2 KiB 79-81%, 4 KiB 86-91%, 8 KiB 84-87%
// (machine in its fast state, ~75 GB/s); L2 hints (T1) were slower.
constexpr int64_t kIlPrefetchBytes = 4096;

template <class T>
void il_rowdot_gemm(int64_t n, const void* vw, int64_t w_stride, int64_t n_rows, const void* xp,
                    int64_t n_tokens, float* y, int64_t ldy) {
  const auto* w = static_cast<const uint8_t*>(vw);
  const int64_t nb = n / kQK;
  constexpr int64_t kUnitBytes = kGroup * T::kBytes;
  for (int64_t r0 = 0; r0 + kGroup <= n_rows; r0 += kGroup) {
    const uint8_t* g = w + r0 * w_stride;
    for (int64_t t = 0; t < n_tokens; ++t) {
      const XTok x = x_token(xp, nb, t, T::kRoundedSum);
      __m512 out = _mm512_setzero_ps();
      for (int64_t b0 = 0; b0 < nb; b0 += kPackedPanelBlocks) {
        __m512 acc = _mm512_setzero_ps();
        const int64_t b1 = std::min(nb, b0 + kPackedPanelBlocks);
        for (int64_t b = b0; b < b1; b += T::kBlocks) {
          const uint8_t* p = g + b / T::kBlocks * kUnitBytes;
          if (t == 0) {
            // The lines that start in this unit's bytes, kIlPrefetchBytes ahead.
            const uintptr_t first = reinterpret_cast<uintptr_t>(p) + kIlPrefetchBytes;
            for (uintptr_t a = (first + 63) & ~uintptr_t{63}; a < first + kUnitBytes; a += 64)
              _mm_prefetch(reinterpret_cast<const char*>(a), _MM_HINT_T0);
          }
          T::unit(p, x, b, nb, acc);
        }
        out = b0 == 0 ? acc : _mm512_add_ps(acc, out);
      }
      _mm512_storeu_ps(y + t * ldy + r0, out);
    }
  }
}

void set(KernelTable& t, TensorType type, PackedGemmFn gemm) {
  TypeKernels& k = t.types[static_cast<uint32_t>(type)];
  k.rowdot_pack_x = rowdot_pack_x;
  k.rowdot_gemm = gemm;
}

}  // namespace

void fill_avx512_rowdot(KernelTable& t) {
  set(t, TensorType::Q4_0, rowdot_gemm<PerBlock<Q4_0R>>);
  set(t, TensorType::Q4_1, rowdot_gemm<PerBlock<Q4_1R>>);
  set(t, TensorType::Q5_0, rowdot_gemm<PerBlock<Q5_0R>>);
  set(t, TensorType::Q5_1, rowdot_gemm<PerBlock<Q5_1R>>);
  set(t, TensorType::Q8_0, rowdot_gemm<PerBlock<Q8_0R>>);
  set(t, TensorType::Q4_K, rowdot_gemm<Q4_KR>);
  set(t, TensorType::Q5_K, rowdot_gemm<Q5_KR>);
  t.types[static_cast<uint32_t>(TensorType::Q4_0)].il_rowdot_gemm = il_rowdot_gemm<Q4_0IL>;
  t.types[static_cast<uint32_t>(TensorType::Q4_1)].il_rowdot_gemm = il_rowdot_gemm<Q4_1IL>;
  t.types[static_cast<uint32_t>(TensorType::Q8_0)].il_rowdot_gemm = il_rowdot_gemm<Q8_0IL>;
  t.types[static_cast<uint32_t>(TensorType::Q4_K)].il_rowdot_gemm = il_rowdot_gemm<Q4_KIL>;
  TypeKernels& q6 = t.types[static_cast<uint32_t>(TensorType::Q6_K)];
  q6.rowdot_pack_x = rowdot_pack_x;  // for il_rowdot_gemm only: Q6_K's rowdot_gemm stays null
  q6.il_rowdot_gemm = il_rowdot_gemm<Q6_KIL>;
}

}  // namespace hearth::kernels
