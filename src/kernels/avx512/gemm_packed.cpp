// Prefill matrix products for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and Q6_K on AVX-512
// VNNI, over packed operands (the prefill half of type_kernels.h's PackXFn / PackedGemmFn).
//
// Activations: pack_x quantizes each token's blocks of 32 as Q8_0/Q8_1 do (d = amax / 127
// rounded to f16, q = round(x / d)) into tiles of 8 tokens. Per block, a tile holds
//   float d[8], s[8], sh[8];          s = d * sum(q) in f32, sh = the same rounded to f16
//   int32 o16[2][8];                  -32 * sum(q) over elements 0..15 and 16..31
//   int8  q[8 chunks][8 tokens][4];   chunk k = elements 4k .. 4k+3
// so one token's chunk is a 4-byte broadcast operand of vpdpbusd.
//
// Weights: every type is written as u8 quants q with a per-block f32 scale d and offset m,
// w = d * q + m (Q4_0: m = -8 d; Q5_0: m = -16 d; Q8_0: q + 128, m = -128 d; Q4_1, Q5_1:
// d, m as stored; Q4_K, Q5_K: per sub-block of 32, d * sc and -dmin * mn), into a panel of 16
// rows: chunk k of block b is one zmm whose lane i holds row i's 4 quants. Q6_K has two
// scales per block of 32 and w = d * sc * (q - 32): the panel holds q in 0..63 and the
// halves' scales in d and m, and the -32 enters the integer dot through o16. A panel spans
// at most kPanelBlocks blocks (20 KiB, stays in L1) and serves every token tile before the
// next is packed, so the repacking costs one pass over the weights per matmul and no
// memory beyond the stack. It reads each row's blocks with contiguous 16-byte loads,
// transposes them in registers (transpose_rows, no gathers) and prefetches the next panel.
//
// Per block, 16 rows and one token: 8 vpdpbusd give 16 exact i32 block dots, then
// acc += f32(dot) * d_w * d_x + m_w * s_x. The _1 types use sh (what Q8_1 stores, so the
// result is vec_dot's up to the f32 summation order); the others use s, so the -8 / -128
// offsets cost one f32 rounding instead of the integer correction vec_dot does. Q6_K:
// acc += f32(o16_lo + dot_lo) * d_lo * d_x, then the same for the upper half.
//
// The scalar twin, bit for bit, is gemm_packed_ref.cpp; tests/kernels/ checks both.

#include <algorithm>
#include <cstring>

#include "kernels/avx2/transpose_avx2.h"
#include "kernels/blocks.h"
#include "kernels/blocks_k.h"
#include "kernels/interleave.h"
#include "kernels/intrinsics.h"
#include "kernels/type_kernels.h"

namespace hearth::kernels {
namespace {

constexpr int kPanelRows = 16;
// A multiple of 8: K-quant panels start on a super-block.
constexpr int kPanelBlocks = static_cast<int>(kPackedPanelBlocks);
constexpr int kChunks = 8;        // 4-byte chunks per block of 32
constexpr int kTile = static_cast<int>(kPackedTileTokens);

struct Panel {
  alignas(64) int32_t q[kPanelBlocks][kChunks][kPanelRows];
  alignas(64) float d[kPanelBlocks][kPanelRows];
  alignas(64) float m[kPanelBlocks][kPanelRows];  // Q6_K: the scale of elements 16..31
};

// Rows of a panel: `rows` valid (mask `live`), row i at base + i * stride. In a partial
// panel lanes past `rows` read the last valid row again (row[]); their results are computed
// and never stored. `ahead`: bytes from a row's data in this panel to the same place of
// the next panel to pack (prefetched while this one is packed).
struct PanelRows {
  const uint8_t* base;
  int64_t stride, ahead;
  int rows;
  __mmask16 live;
  const uint8_t* row[kPanelRows];
  // Interleaved weights (kernels/interleave.h): the group's data and its type's layout;
  // null for the file's layout.
  const uint8_t* il = nullptr;
  InterleaveLayout layout;
};

// A group of consecutive weight blocks of 16 rows, transposed: lane i of t[j] is dword j of
// row i's bytes (bytes past the group read as 0). Built from contiguous 16-byte loads
// and in-register 4x4 dword transposes, so a panel costs no gathers.
constexpr int kGroupDwords = 68;  // 8 Q8_0 blocks (272 bytes) at most
struct Group {
  alignas(64) int32_t t[kGroupDwords][kPanelRows];
};

template <bool kFull>
inline const uint8_t* row_at(const PanelRows& pr, int i, int64_t at) {
  return (kFull ? pr.base + i * pr.stride : pr.row[i]) + at;
}

template <bool kFull>
inline void transpose_rows_impl(const PanelRows& pr, int64_t off, int bytes, Group& g) {
  for (int c = 0; 16 * c < bytes; ++c) {
    const int left = bytes - 16 * c;
    const __mmask16 m = left >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << left) - 1);
    const int64_t at = off + 16 * c;
    if (c % 4 == 0)
      for (int i = 0; i < kPanelRows; ++i)
        _mm_prefetch(reinterpret_cast<const char*>(row_at<kFull>(pr, i, at + pr.ahead)),
                     _MM_HINT_T0);
    // a[j]: 128-bit lane l holds row 4l + j.
    __m512i a[4];
    for (int j = 0; j < 4; ++j) {
      __m512i v = _mm512_castsi128_si512(_mm_maskz_loadu_epi8(m, row_at<kFull>(pr, j, at)));
      v = _mm512_inserti32x4(v, _mm_maskz_loadu_epi8(m, row_at<kFull>(pr, 4 + j, at)), 1);
      v = _mm512_inserti32x4(v, _mm_maskz_loadu_epi8(m, row_at<kFull>(pr, 8 + j, at)), 2);
      a[j] = _mm512_inserti32x4(v, _mm_maskz_loadu_epi8(m, row_at<kFull>(pr, 12 + j, at)), 3);
    }
    const __m512i t0 = _mm512_unpacklo_epi32(a[0], a[1]);  // rows 4l, 4l+1: dwords 0, 1
    const __m512i t1 = _mm512_unpackhi_epi32(a[0], a[1]);  // dwords 2, 3
    const __m512i t2 = _mm512_unpacklo_epi32(a[2], a[3]);
    const __m512i t3 = _mm512_unpackhi_epi32(a[2], a[3]);
    _mm512_store_si512(g.t[4 * c + 0], _mm512_unpacklo_epi64(t0, t2));
    _mm512_store_si512(g.t[4 * c + 1], _mm512_unpackhi_epi64(t0, t2));
    _mm512_store_si512(g.t[4 * c + 2], _mm512_unpacklo_epi64(t1, t3));
    _mm512_store_si512(g.t[4 * c + 3], _mm512_unpackhi_epi64(t1, t3));
  }
}

// Half hb (bytes 2 hb, 2 hb + 1 of a row in the file's layout) of the 16 rows of an
// interleaved group, zero-extended in each dword lane.
inline __m512i il_half(const PanelRows& pr, int64_t hb) {
  const InterleaveLayout& l = pr.layout;
  const int64_t unit_halves = l.block_bytes / 2, u = hb / unit_halves;
  int h = static_cast<int>(hb - u * unit_halves);
  const uint8_t* base = pr.il + u * kPanelRows * l.block_bytes;
  auto halves = [](const uint8_t* p) {
    return _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  };
  if (h < l.lead_halves) return halves(base + 32 * h);
  h -= l.lead_halves;
  if (h < 2 * l.dwords) {
    const __m512i v = _mm512_loadu_si512(base + 32 * l.lead_halves + 64 * (h / 2));
    return h % 2 ? _mm512_srli_epi32(v, 16) : _mm512_and_si512(v, _mm512_set1_epi32(0xffff));
  }
  return halves(base + 32 * l.lead_halves + 64 * l.dwords + 32 * (h - 2 * l.dwords));
}

// transpose_rows from an interleaved group: dword j of the bytes at `off` is already one
// vector there when it is a body dword, else it is put together from two halves.
inline void transpose_il(const PanelRows& pr, int64_t off, int bytes, Group& g) {
  const InterleaveLayout& l = pr.layout;
  const int n_dw = (bytes + 3) / 4, n_t = 4 * ((bytes + 15) / 16);
  // The interleaved bytes of the blocks that follow, a few KiB ahead.
  const int64_t unit_halves = l.block_bytes / 2;
  const uint8_t* first = pr.il + off / 2 / unit_halves * kPanelRows * l.block_bytes + 4096;
  for (int64_t a = 0; a < kPanelRows * static_cast<int64_t>(bytes); a += 64)
    _mm_prefetch(reinterpret_cast<const char*>(first + a), _MM_HINT_T0);
  for (int j = 0; j < n_dw; ++j) {
    const int64_t hb = off / 2 + 2 * j, u = hb / unit_halves;
    const int64_t h = hb - u * unit_halves - l.lead_halves;
    __m512i v;
    if (h >= 0 && h % 2 == 0 && h < 2 * l.dwords)
      v = _mm512_loadu_si512(pr.il + u * kPanelRows * l.block_bytes + 32 * l.lead_halves + 64 * (h / 2));
    else if (4 * j + 2 < bytes)
      v = _mm512_or_si512(il_half(pr, hb), _mm512_slli_epi32(il_half(pr, hb + 1), 16));
    else
      v = il_half(pr, hb);  // the last 2 bytes: the rest reads as 0, as transpose_rows does
    _mm512_store_si512(g.t[j], v);
  }
  for (int j = n_dw; j < n_t; ++j) _mm512_store_si512(g.t[j], _mm512_setzero_si512());
}

// Transposes `bytes` bytes at offset `off` of every row into g.t[0 .. 4 * ceil(bytes / 16)).
inline void transpose_rows(const PanelRows& pr, int64_t off, int bytes, Group& g) {
  if (pr.il != nullptr)
    transpose_il(pr, off, bytes, g);
  else if (pr.rows == kPanelRows)
    transpose_rows_impl<true>(pr, off, bytes, g);
  else
    transpose_rows_impl<false>(pr, off, bytes, g);
}

// The 4 bytes at byte offset o (even) of every row of the group.
inline __m512i dword_at(const Group& g, int o) {
  const __m512i lo = _mm512_load_si512(g.t[o / 4]);
  if (o % 4 == 0) return lo;
  return _mm512_or_si512(_mm512_srli_epi32(lo, 16),
                         _mm512_slli_epi32(_mm512_load_si512(g.t[o / 4 + 1]), 16));
}

inline __m512 half_lo(__m512i v) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)); }
inline __m512 half_hi(__m512i v) { return half_lo(_mm512_srli_epi32(v, 16)); }
// The f16 at byte offset o (even) of every row, as f32.
inline __m512 half_at(const Group& g, int o) {
  const __m512i v = _mm512_load_si512(g.t[o / 4]);
  return o % 4 == 0 ? half_lo(v) : half_hi(v);
}

inline __m512i nib_lo(__m512i v) { return _mm512_and_si512(v, _mm512_set1_epi8(0x0f)); }
inline __m512i nib_hi(__m512i v) { return nib_lo(_mm512_srli_epi32(v, 4)); }

// Blocks of `kBytes` bytes in groups of kPerGroup; `unpack(g, j, b)` writes block j of the
// group as panel block b.
template <int kBytes, int kPerGroup, typename Unpack>
inline void pack_groups(const PanelRows& pr, int64_t b0, int nb, Unpack unpack) {
  Group g;
  for (int b = 0; b < nb; b += kPerGroup) {
    const int n = std::min(kPerGroup, nb - b);
    transpose_rows(pr, (b0 + b) * kBytes, n * kBytes, g);
    for (int j = 0; j < n; ++j) unpack(g, j, b + j);
  }
}

void pack_q4_0(const PanelRows& pr, int64_t b0, int nb, Panel& p) {
  constexpr int kB = sizeof(BlockQ4_0);
  pack_groups<kB, 8>(pr, b0, nb, [&p](const Group& g, int j, int b) {
    const __m512 d = half_at(g, kB * j);
    _mm512_store_ps(p.d[b], d);
    _mm512_store_ps(p.m[b], _mm512_mul_ps(d, _mm512_set1_ps(-8.0f)));
    for (int k = 0; k < 4; ++k) {
      const __m512i v = dword_at(g, kB * j + offsetof(BlockQ4_0, qs) + 4 * k);
      _mm512_store_si512(p.q[b][k], nib_lo(v));
      _mm512_store_si512(p.q[b][k + 4], nib_hi(v));
    }
  });
}

void pack_q4_1(const PanelRows& pr, int64_t b0, int nb, Panel& p) {
  constexpr int kB = sizeof(BlockQ4_1);
  pack_groups<kB, 4>(pr, b0, nb, [&p](const Group& g, int j, int b) {
    const __m512i dm = dword_at(g, kB * j);
    _mm512_store_ps(p.d[b], half_lo(dm));
    _mm512_store_ps(p.m[b], half_hi(dm));
    for (int k = 0; k < 4; ++k) {
      const __m512i v = dword_at(g, kB * j + offsetof(BlockQ4_1, qs) + 4 * k);
      _mm512_store_si512(p.q[b][k], nib_lo(v));
      _mm512_store_si512(p.q[b][k + 4], nib_hi(v));
    }
  });
}

// Q5_0/Q5_1: element e's fifth bit is bit e of qh; chunk k (elements 4k .. 4k + 3) gets
// bits 4k .. 4k + 3 as 0x10 in its bytes, added to the nibbles.
inline void store_q5(const __m512i qh, const __m512i (&qs)[4], int32_t (*q)[kPanelRows]) {
  for (int k = 0; k < kChunks; ++k) {
    // Every byte of a lane: byte k / 2 of its qh; then byte i tests bit 4 (k % 2) + i.
    const char j = static_cast<char>(k / 2);
    const __m512i rep = _mm512_shuffle_epi8(
        qh, _mm512_broadcast_i32x4(_mm_setr_epi8(j, j, j, j, char(4 + j), char(4 + j), char(4 + j),
                                                 char(4 + j), char(8 + j), char(8 + j), char(8 + j),
                                                 char(8 + j), char(12 + j), char(12 + j),
                                                 char(12 + j), char(12 + j))));
    const __mmask64 bit = _mm512_test_epi8_mask(
        rep, _mm512_set1_epi32(static_cast<int>(0x08040201u << (4 * (k % 2)))));
    const __m512i lo = k < 4 ? nib_lo(qs[k]) : nib_hi(qs[k - 4]);
    const __m512i fifth = _mm512_maskz_mov_epi8(bit, _mm512_set1_epi8(0x10));
    _mm512_store_si512(q[k], _mm512_or_si512(lo, fifth));
  }
}

void pack_q5_0(const PanelRows& pr, int64_t b0, int nb, Panel& p) {
  constexpr int kB = sizeof(BlockQ5_0);
  pack_groups<kB, 8>(pr, b0, nb, [&p](const Group& g, int j, int b) {
    const __m512 d = half_at(g, kB * j);
    _mm512_store_ps(p.d[b], d);
    _mm512_store_ps(p.m[b], _mm512_mul_ps(d, _mm512_set1_ps(-16.0f)));
    __m512i qs[4];
    for (int k = 0; k < 4; ++k) qs[k] = dword_at(g, kB * j + offsetof(BlockQ5_0, qs) + 4 * k);
    store_q5(dword_at(g, kB * j + offsetof(BlockQ5_0, qh)), qs, p.q[b]);
  });
}

void pack_q5_1(const PanelRows& pr, int64_t b0, int nb, Panel& p) {
  constexpr int kB = sizeof(BlockQ5_1);
  pack_groups<kB, 8>(pr, b0, nb, [&p](const Group& g, int j, int b) {
    const __m512i dm = dword_at(g, kB * j);
    _mm512_store_ps(p.d[b], half_lo(dm));
    _mm512_store_ps(p.m[b], half_hi(dm));
    __m512i qs[4];
    for (int k = 0; k < 4; ++k) qs[k] = dword_at(g, kB * j + offsetof(BlockQ5_1, qs) + 4 * k);
    store_q5(dword_at(g, kB * j + offsetof(BlockQ5_1, qh)), qs, p.q[b]);
  });
}

void pack_q8_0(const PanelRows& pr, int64_t b0, int nb, Panel& p) {
  constexpr int kB = sizeof(BlockQ8_0);
  pack_groups<kB, 8>(pr, b0, nb, [&p](const Group& g, int j, int b) {
    const __m512 d = half_at(g, kB * j);
    _mm512_store_ps(p.d[b], d);
    _mm512_store_ps(p.m[b], _mm512_mul_ps(d, _mm512_set1_ps(-128.0f)));
    for (int k = 0; k < kChunks; ++k)
      _mm512_store_si512(p.q[b][k],
                         _mm512_xor_si512(dword_at(g, kB * j + offsetof(BlockQ8_0, qs) + 4 * k),
                                          _mm512_set1_epi8(char(0x80))));
  });
}

// Byte `i` (0..3) of every lane, as f32 of the unsigned / signed value.
inline __m512 byte_u(__m512i v, int i) {
  return _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(v, 8 * i), _mm512_set1_epi32(0xff)));
}
inline __m512 byte_s(__m512i v, int i) {
  return _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * i), 24));
}

// Bit `bit` of every byte, moved to bit 4 (0x10).
inline __m512i fifth_bits(__m512i h, int bit) {
  return _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, bit), _mm512_set1_epi8(1)), 4);
}

// Blocks of the panel are Q4_K / Q5_K sub-blocks: b0 and nb are multiples of 8. Sub-blocks
// 2c and 2c + 1 share the 32 bytes qs[32c ..] (low and high nibbles); Q5_K's fifth bit of
// sub-block j is bit j of qh[l].
template <typename Block, bool kFifth>
void pack_k4(const PanelRows& pr, int64_t b0, int nb, Panel& p) {
  Group g;
  for (int sb = 0; sb < nb / 8; ++sb) {
    transpose_rows(pr, (b0 / 8 + sb) * static_cast<int64_t>(sizeof(Block)), sizeof(Block), g);
    for (int c = 0; c < 4; ++c)
      for (int k = 0; k < kChunks; ++k) {
        const __m512i v = dword_at(g, offsetof(Block, qs) + 32 * c + 4 * k);
        __m512i lo = nib_lo(v), hi = nib_hi(v);
        if constexpr (kFifth) {
          const __m512i h = dword_at(g, offsetof(Block, qh) + 4 * k);
          lo = _mm512_or_si512(lo, fifth_bits(h, 2 * c));
          hi = _mm512_or_si512(hi, fifth_bits(h, 2 * c + 1));
        }
        _mm512_store_si512(p.q[8 * sb + 2 * c][k], lo);
        _mm512_store_si512(p.q[8 * sb + 2 * c + 1][k], hi);
      }
    // unpack_scales_mins_k4 on every lane.
    const __m512i w0 = dword_at(g, offsetof(Block, scales));
    const __m512i w1 = dword_at(g, offsetof(Block, scales) + 4);
    const __m512i w2 = dword_at(g, offsetof(Block, scales) + 8);
    const __m512i k6 = _mm512_set1_epi8(0x3f), k4 = _mm512_set1_epi8(0x0f),
                  k2 = _mm512_set1_epi8(0x03);
    const __m512i sm[4] = {
        _mm512_and_si512(w0, k6),
        _mm512_or_si512(_mm512_and_si512(w2, k4),
                        _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w0, 6), k2), 4)),
        _mm512_and_si512(w1, k6),
        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w2, 4), k4),
                        _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w1, 6), k2), 4)),
    };
    const __m512i dd = dword_at(g, offsetof(Block, d));
    const __m512 d = half_lo(dd);
    const __m512 neg_dmin = _mm512_xor_ps(half_hi(dd), _mm512_set1_ps(-0.0f));
    for (int j = 0; j < 8; ++j) {
      _mm512_store_ps(p.d[8 * sb + j], _mm512_mul_ps(d, byte_u(sm[j / 4], j % 4)));
      _mm512_store_ps(p.m[8 * sb + j], _mm512_mul_ps(neg_dmin, byte_u(sm[2 + j / 4], j % 4)));
    }
  }
}

// Q6_K block 4h + r of a transposed super-block, chunk k (elements 4k .. 4k + 3), as u8 q
// in 0..63: low bits in ql[64h + 32(r & 1) ..] (high nibble for r >= 2), high bits 2r,
// 2r + 1 of qh[32h ..].
inline __m512i q6_chunk(const Group& g, int h, int r, int k) {
  const __m512i k4 = _mm512_set1_epi8(0x0f), k2 = _mm512_set1_epi8(0x03);
  const __m512i lo = dword_at(g, offsetof(BlockQ6K, ql) + 64 * h + 32 * (r & 1) + 4 * k);
  const __m512i hi = dword_at(g, offsetof(BlockQ6K, qh) + 32 * h + 4 * k);
  return _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(lo, 4 * (r >> 1)), k4),
                         _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hi, 2 * r), k2), 4));
}
// d * scales[2j + half] of every row (the scale of half `half` of block j).
inline __m512 q6_scale(const Group& g, __m512 d, int j, int half) {
  const __m512i sc = dword_at(g, offsetof(BlockQ6K, scales) + 4 * (j / 2));
  return _mm512_mul_ps(d, byte_s(sc, 2 * (j % 2) + half));
}

// Blocks of the panel are Q6_K's blocks of 32 (b0 and nb multiples of 8), q = the 6-bit
// value in 0..63; d and m hold d * scales[2j] and d * scales[2j + 1], the scales of the
// block's two halves. The -32 offset is applied in the integer dot (pack_x's o16).
void pack_q6_k(const PanelRows& pr, int64_t b0, int nb, Panel& p) {
  Group g;
  for (int sb = 0; sb < nb / 8; ++sb) {
    transpose_rows(pr, (b0 / 8 + sb) * static_cast<int64_t>(sizeof(BlockQ6K)), sizeof(BlockQ6K), g);
    for (int h = 0; h < 2; ++h)
      for (int r = 0; r < 4; ++r)
        for (int k = 0; k < kChunks; ++k)
          _mm512_store_si512(p.q[8 * sb + 4 * h + r][k], q6_chunk(g, h, r, k));
    const __m512 d = half_at(g, offsetof(BlockQ6K, d));
    for (int j = 0; j < 8; ++j) {
      _mm512_store_ps(p.d[8 * sb + j], q6_scale(g, d, j, 0));
      _mm512_store_ps(p.m[8 * sb + j], q6_scale(g, d, j, 1));
    }
  }
}

// Where panel_tile finds a block's offset term: pack_x's s or sh (w = d q + m), or
// kSplit: Q6_K's two scaled halves with the integer offset o16.
constexpr int kS = kTile, kSh = 2 * kTile, kSplit = -1;
constexpr int kO16 = 3 * kTile;  // int32 o16[2][kTile]
constexpr int kXQ = 5 * kTile;   // the quants, in floats from the block's start

// acc[t] (16 rows of token t) += the panel's nb blocks against the first kNT tokens of
// one token tile. Each token's arithmetic is the same whatever kNT is, so a token's result
// does not depend on how many tokens share the matmul.
template <int kOffset, int kNT>
inline void panel_tile(const Panel& p, int nb, const uint8_t* xb, __m512 acc[kTile]) {
  for (int b = 0; b < nb; ++b) {
    __m512i w[kChunks];
    for (int k = 0; k < kChunks; ++k) w[k] = _mm512_load_si512(p.q[b][k]);
    const __m512 dw = _mm512_load_ps(p.d[b]);
    const __m512 mw = _mm512_load_ps(p.m[b]);
    const auto* xd = reinterpret_cast<const float*>(xb + b * kPackedXBlockBytes);
    const auto* xq = reinterpret_cast<const int32_t*>(xd + kXQ);
    if constexpr (kOffset == kSplit) {
      const auto* o16 = reinterpret_cast<const int32_t*>(xd + kO16);
      for (int t = 0; t < kNT; ++t) {
        __m512i s0 = _mm512_set1_epi32(o16[t]);
        __m512i s1 = _mm512_set1_epi32(o16[kTile + t]);
        for (int k = 0; k < kChunks / 2; ++k) {
          s0 = _mm512_dpbusd_epi32(s0, w[k], _mm512_set1_epi32(xq[k * kTile + t]));
          s1 = _mm512_dpbusd_epi32(s1, w[k + 4], _mm512_set1_epi32(xq[(k + 4) * kTile + t]));
        }
        const __m512 x = _mm512_set1_ps(xd[t]);
        acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s0), dw), x, acc[t]);
        acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s1), mw), x, acc[t]);
      }
    } else {
      const float* xs = xd + kOffset;
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
}

// One token against Q6_K rows with no panel: each super-block is transposed as pack_q6_k
// does and its blocks go straight into panel_tile<kSplit, 1>'s arithmetic (the same exact
// integer dots, the same f32 steps in block order), without the panel's stores and
// reloads. Decode's Q6_K matmuls (Q6_K has no rowdot kernel) take it. One core,
// kernels_bench: in cache (matvec/Q6_K/1B) 21-23 -> 24-25 GB/s, from DRAM
// (matvec_dram/Q6_K/1B/1, 1Bdown/1) 16-19 -> 23-24 GB/s.
void fused_q6_k(const PanelRows& pr, int64_t b0, int nb, const uint8_t* xb, __m512& acc) {
  Group g;
  for (int sb = 0; sb < nb / 8; ++sb) {
    transpose_rows(pr, (b0 / 8 + sb) * static_cast<int64_t>(sizeof(BlockQ6K)), sizeof(BlockQ6K), g);
    const __m512 d = half_at(g, offsetof(BlockQ6K, d));
    for (int h = 0; h < 2; ++h)
      for (int r = 0; r < 4; ++r) {
        const int j = 4 * h + r;
        const auto* xd = reinterpret_cast<const float*>(xb + (8 * sb + j) * kPackedXBlockBytes);
        const auto* xq = reinterpret_cast<const int32_t*>(xd + kXQ);
        const auto* o16 = reinterpret_cast<const int32_t*>(xd + kO16);
        __m512i s0 = _mm512_set1_epi32(o16[0]);
        __m512i s1 = _mm512_set1_epi32(o16[kTile]);
        for (int k = 0; k < kChunks / 2; ++k) {
          s0 = _mm512_dpbusd_epi32(s0, q6_chunk(g, h, r, k), _mm512_set1_epi32(xq[k * kTile]));
          s1 = _mm512_dpbusd_epi32(s1, q6_chunk(g, h, r, k + 4), _mm512_set1_epi32(xq[(k + 4) * kTile]));
        }
        const __m512 x = _mm512_set1_ps(xd[0]);
        acc = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s0), q6_scale(g, d, j, 0)), x, acc);
        acc = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s1), q6_scale(g, d, j, 1)), x, acc);
      }
  }
}

using PackPanelFn = void (*)(const PanelRows&, int64_t b0, int nb, Panel&);
// acc (16 rows) += blocks [b0, b0 + nb) against one token, xb at block b0 (fused_q6_k).
using FusedOneFn = void (*)(const PanelRows&, int64_t b0, int nb, const uint8_t* xb, __m512& acc);

// kType != F32: the weights are interleaved (kernels/interleave.h) in whole groups of 16.
template <PackPanelFn kPack, int kOffset, FusedOneFn kFusedOne = nullptr,
          TensorType kType = TensorType::F32>
void packed_gemm(int64_t n, const void* vw, int64_t w_stride, int64_t n_rows, const void* xp,
                 int64_t n_tokens, float* y, int64_t ldy) {
  static const InterleaveLayout layout = [] {
    InterleaveLayout l;
    interleave_layout(kType, &l);
    return l;
  }();
  const auto* w = static_cast<const uint8_t*>(vw);
  const auto* x = static_cast<const uint8_t*>(xp);
  const int64_t nb = n / kQK;
  const int64_t n_tiles = (n_tokens + kTile - 1) / kTile;
  const int64_t tile_bytes = nb * kPackedXBlockBytes;
  Panel panel;
  for (int64_t r0 = 0; r0 < n_rows; r0 += kPanelRows) {
    PanelRows pr;
    pr.base = w + r0 * w_stride;
    pr.stride = w_stride;
    pr.rows = static_cast<int>(std::min<int64_t>(kPanelRows, n_rows - r0));
    pr.live = static_cast<__mmask16>((1u << pr.rows) - 1);
    for (int i = 0; i < kPanelRows; ++i) pr.row[i] = w + (r0 + std::min(i, pr.rows - 1)) * w_stride;
    if constexpr (kType != TensorType::F32) {
      pr.il = pr.base;
      pr.layout = layout;
    }
    for (int64_t b0 = 0; b0 < nb; b0 += kPanelBlocks) {
      const int pb = static_cast<int>(std::min<int64_t>(kPanelBlocks, nb - b0));
      // The next panel: the same rows' next blocks, or the next rows' first ones. Bytes per
      // kPanelBlocks blocks are whole for every type (a Q6_K super-block spans 8).
      pr.ahead = b0 + kPanelBlocks < nb ? w_stride * kPanelBlocks / nb
                                        : kPanelRows * w_stride - w_stride * b0 / nb;
      if (kFusedOne != nullptr && n_tokens == 1) {
        __m512 v = _mm512_setzero_ps();
        kFusedOne(pr, b0, pb, x + b0 * kPackedXBlockBytes, v);
        float* yt = y + r0;
        if (b0 > 0) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(pr.live, yt));
        _mm512_mask_storeu_ps(yt, pr.live, v);
        continue;
      }
      kPack(pr, b0, pb, panel);
      for (int64_t tile = 0; tile < n_tiles; ++tile) {
        __m512 acc[kTile];
        for (__m512& a : acc) a = _mm512_setzero_ps();
        const int64_t nt = std::min<int64_t>(kTile, n_tokens - tile * kTile);
        const uint8_t* xb = x + tile * tile_bytes + b0 * kPackedXBlockBytes;
        switch (nt) {
          case 1: panel_tile<kOffset, 1>(panel, pb, xb, acc); break;
          case 2: panel_tile<kOffset, 2>(panel, pb, xb, acc); break;
          case 3: panel_tile<kOffset, 3>(panel, pb, xb, acc); break;
          case 4: panel_tile<kOffset, 4>(panel, pb, xb, acc); break;
          case 5: panel_tile<kOffset, 5>(panel, pb, xb, acc); break;
          case 6: panel_tile<kOffset, 6>(panel, pb, xb, acc); break;
          case 7: panel_tile<kOffset, 7>(panel, pb, xb, acc); break;
          default: panel_tile<kOffset, kTile>(panel, pb, xb, acc); break;
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

// round(v) with halves away from zero, as quantize_block_q8's round_away on 16 lanes.
inline __m512 round_away16(__m512 v) {
  const __m512 sign = _mm512_set1_ps(-0.0f);
  const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m512 frac = _mm512_andnot_ps(sign, _mm512_sub_ps(v, t));  // exact
  const __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  const __m512 one = _mm512_or_ps(_mm512_set1_ps(1.0f), _mm512_and_ps(v, sign));
  return _mm512_mask_add_ps(t, up, t, one);
}

// The layout above, with the values quantize_block_q8 gives (the scalar twin's
// pack_x_ref computes the same bytes): d = amax / 127 (stored rounded to f16), q =
// round_away(x / d); F16C rounds to nearest even like f32_to_f16. Tokens past n_tokens
// are zero.
void pack_x(const float* x, int64_t n, int64_t n_tokens, int64_t tile0, int64_t tile1,
            void* xp) {
  const int64_t nb = n / kQK;
  auto* out = static_cast<uint8_t*>(xp);
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    const int nt = static_cast<int>(std::clamp<int64_t>(n_tokens - tile * kTile, 0, kTile));
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* blk = out + (tile * nb + b) * kPackedXBlockBytes;
      auto* d = reinterpret_cast<float*>(blk);
      alignas(32) float dq[kTile] = {}, sums[kTile] = {};
      alignas(32) int32_t o16[2][kTile] = {};
      __m256i rows[kTile];
      for (int t = 0; t < kTile; ++t) rows[t] = _mm256_setzero_si256();
      for (int t = 0; t < nt; ++t) {
        const float* xt = x + (tile * kTile + t) * n + b * kQK;
        const __m512 v0 = _mm512_loadu_ps(xt), v1 = _mm512_loadu_ps(xt + 16);
        const float amax = _mm512_reduce_max_ps(
            _mm512_max_ps(_mm512_and_ps(v0, abs_mask), _mm512_and_ps(v1, abs_mask)));
        dq[t] = amax / 127.0f;
        const __m512 id = _mm512_set1_ps(dq[t] != 0.0f ? 1.0f / dq[t] : 0.0f);
        const __m512i q0 = _mm512_cvtps_epi32(round_away16(_mm512_mul_ps(v0, id)));
        const __m512i q1 = _mm512_cvtps_epi32(round_away16(_mm512_mul_ps(v1, id)));
        const int half = _mm512_reduce_add_epi32(q0), rest = _mm512_reduce_add_epi32(q1);
        sums[t] = static_cast<float>(half + rest);
        o16[0][t] = -32 * half;
        o16[1][t] = -32 * rest;
        rows[t] = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm512_cvtsepi32_epi8(q0)),
                                          _mm512_cvtsepi32_epi8(q1), 1);
      }
      // d, s = d * sum, sh = f16(d_unrounded * sum), for the 8 tokens at once.
      const __m256 dv = _mm256_load_ps(dq), sv = _mm256_load_ps(sums);
      const __m256 dr = _mm256_cvtph_ps(_mm256_cvtps_ph(dv, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      _mm256_storeu_ps(d, dr);
      _mm256_storeu_ps(d + kS, _mm256_mul_ps(dr, sv));
      _mm256_storeu_ps(d + kSh, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_mul_ps(dv, sv),
                                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
      std::memcpy(d + kO16, o16, sizeof(o16));
      transpose8x8_epi32(rows);
      uint8_t* q = blk + kXQ * sizeof(float);
      for (int k = 0; k < kChunks; ++k) _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + k * 32), rows[k]);
    }
  }
}

void set(KernelTable& t, TensorType type, PackedGemmFn gemm, PackedGemmFn il_gemm) {
  TypeKernels& k = t.types[static_cast<uint32_t>(type)];
  k.pack_x = pack_x;
  k.packed_gemm = gemm;
  k.il_packed_gemm = il_gemm;
}

}  // namespace

void fill_avx512_packed(KernelTable& t) {
  using T = TensorType;
  set(t, T::Q4_0, packed_gemm<pack_q4_0, kS>, packed_gemm<pack_q4_0, kS, nullptr, T::Q4_0>);
  set(t, T::Q4_1, packed_gemm<pack_q4_1, kSh>, packed_gemm<pack_q4_1, kSh, nullptr, T::Q4_1>);
  set(t, T::Q8_0, packed_gemm<pack_q8_0, kS>, packed_gemm<pack_q8_0, kS, nullptr, T::Q8_0>);
  // The Q5 types have no interleaved decode kernel (gemm_rowdot.cpp), so they are never
  // interleaved (interleave_supported) and need no interleaved gemm either.
  set(t, T::Q5_0, packed_gemm<pack_q5_0, kS>, nullptr);
  set(t, T::Q5_1, packed_gemm<pack_q5_1, kSh>, nullptr);
  set(t, T::Q4_K, packed_gemm<pack_k4<BlockQ4K, false>, kS>,
      packed_gemm<pack_k4<BlockQ4K, false>, kS, nullptr, T::Q4_K>);
  set(t, T::Q5_K, packed_gemm<pack_k4<BlockQ5K, true>, kS>, nullptr);
  set(t, T::Q6_K, packed_gemm<pack_q6_k, kSplit, fused_q6_k>,
      packed_gemm<pack_q6_k, kSplit, fused_q6_k, T::Q6_K>);
}

}  // namespace hearth::kernels
