// The packed gemm (gemm_packed_ref.cpp states its arithmetic) on AVX2: the prefill and
// decode matrix products of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and Q6_K on CPUs
// without AVX-512 VNNI, bit-identical to the scalar twin and so to every other ISA.
//
// Weights are read as kernels/interleave.h lays them out: a group of 16 rows whose block
// fields lie side by side, so one 32-byte load is dword j of 8 rows (lane i = row i) and a
// group is two halves of 8 rows. Interleaved matrices (il_packed_gemm) are read in place;
// the file's layout (packed_gemm) is interleaved a panel (16 rows x kPackedPanelBlocks
// blocks, at most 17 KiB on the stack) at a time by interleave_panel.
//
// Activations: pack_x's token tiles, the layout avx512/gemm_packed.cpp describes (per block
// of 32 and tile of 8 tokens: d[8], s[8], sh[8], o16[2][8], then q[8 chunks][8 tokens][4]),
// so one token's 4 activations of a chunk are a dword to broadcast; for one or two tokens
// over interleaved weights (decode: il_rowdot_gemm), rowdot_pack_x's compact per-token
// layout (type_kernels.h) instead.
//
// Per block of 32, half of 8 rows and token: the exact i32 block dot of the u8 weight quants
// with the int8 activations from vpmaddubsw (u8 x s8 pairs into i16) and vpmaddwd (i16 pairs
// into i32). vpmaddubsw saturates a pair sum past 32767, so the i16 sums of several chunks
// are added only as far as they provably fit (|q_x| <= 127, rounded from amax / 127):
//   4-bit quants (0..15):  8 chunks, 16 x 15 x 127 = 30480
//   5-bit quants (0..31):  4 chunks,  8 x 31 x 127 = 31496
//   6-bit quants (0..63):  2 chunks,  4 x 63 x 127 = 32004
//   Q8_0 (signed -128..127): one chunk, as |w| * sign(x, w): 2 x 128 x 127 = 32512; the dot of
//   q + 128 (the twin's u8 form) is that plus 128 * sum(q_x) = -4 * (o16[0] + o16[1]).
// Then the twin's f32 steps, lane by lane and in block order: f = f32(dot) * d_w,
// acc = fma(f, d_x, acc), acc = fma(m_w, s_x, acc) (Q6_K: two scaled halves), restarting
// every kPackedPanelBlocks blocks. Only those f32 operations' order matters for the bits.
#include <algorithm>
#include <cstring>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "kernels/avx2/legacy_simd.h"
#pragma GCC diagnostic pop
#include "kernels/avx2/transpose_avx2.h"
#include "kernels/blocks.h"
#include "kernels/blocks_k.h"
#include "kernels/interleave.h"
#include "kernels/intrinsics.h"
#include "kernels/type_kernels.h"

namespace hearth::kernels {
namespace {

constexpr int kGroup = kInterleaveRows;  // rows of an interleaved group: two halves of 8
constexpr int kTile = static_cast<int>(kPackedTileTokens);
constexpr int kRun = static_cast<int>(kPackedPanelBlocks);
constexpr int kChunks = 8;  // 4-byte chunks per block of 32
// How far ahead of the unit being read decode prefetches the interleaved weights.
constexpr int kPrefetchBytes = 4096;
// pack_x's block of a tile, in floats from its start (see avx512/gemm_packed.cpp).
constexpr int kXS = kTile, kXSh = 2 * kTile, kXO16 = 3 * kTile, kXQ = 5 * kTile;

// Where a block's offset term m_w multiplies: s, the f16-rounded sh (the _1 types), or
// Q6_K's split halves (offset in the integer dot).
enum class Offset { kS, kSh, kSplit };
// How the integer dot may group chunks (see the file comment).
enum class Dot { kNib4, kNib5, kQ6, kQ8 };

// The fields of rows 8h .. 8h + 7 of one interleaved unit (a block; a super-block for the
// K-quants) at u, with L lead halves and D body dwords (interleave.h).
template <int kL, int kD>
struct Fields {
  const uint8_t* u;
  int h;
  __m256 half(int i) const {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(u + 32 * i + 16 * h)));
  }
  __m256i dword(int j) const {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(u + 32 * kL + 64 * j + 32 * h));
  }
  __m256 tail(int i) const {
    return _mm256_cvtph_ps(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(u + 32 * kL + 64 * kD + 32 * i + 16 * h)));
  }
};

// The low (hi = false) or high f16 of each dword lane, as f32.
inline __m256 half_of(__m256i v, bool hi) {
  const __m256i sel = hi ? _mm256_setr_epi8(2, 3, 6, 7, 10, 11, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1,
                                            2, 3, 6, 7, 10, 11, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1)
                         : _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,
                                            0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i p = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(v, sel), 0x08);
  return _mm256_cvtph_ps(_mm256_castsi256_si128(p));
}

inline __m256i nib_lo(__m256i v) { return _mm256_and_si256(v, _mm256_set1_epi8(0x0f)); }
inline __m256i nib_hi(__m256i v) { return nib_lo(_mm256_srli_epi32(v, 4)); }

// Byte i (0..3) of every lane as f32 of the unsigned / signed value.
inline __m256 byte_u(__m256i v, int i) {
  return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(v, 8 * i), _mm256_set1_epi32(0xff)));
}
inline __m256 byte_s(__m256i v, int i) {
  return _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(v, 24 - 8 * i), 24));
}

// Q5_0 / Q5_1: bits 4k .. 4k + 3 of each lane's qh as 0x10 in the bytes of chunk k.
inline __m256i fifth_q5(__m256i qh, int k) {
  const char j = static_cast<char>(k / 2);
  const __m128i rep = _mm_setr_epi8(j, j, j, j, char(4 + j), char(4 + j), char(4 + j), char(4 + j),
                                    char(8 + j), char(8 + j), char(8 + j), char(8 + j), char(12 + j),
                                    char(12 + j), char(12 + j), char(12 + j));
  const __m256i spread = _mm256_shuffle_epi8(qh, _mm256_broadcastsi128_si256(rep));
  const __m256i bit = _mm256_set1_epi32(static_cast<int>(0x08040201u << (4 * (k % 2))));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

// Bit `bit` of every byte, moved to 0x10 (Q5_K's fifth bits).
inline __m256i fifth_k(__m256i h, int bit) {
  return _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, bit), _mm256_set1_epi8(1)), 4);
}

// One decoder per type, built on a unit's fields (8 rows): for block j of the unit
// (kUnitBlocks of them), scales(j, d, m) gives its scale d and offset m (Q6_K: the scales of
// its two halves) and chunk(j, k) its chunk k as u8 quants (Q8_0: the signed quants), made
// where the dot needs it so the tokens' sums keep the registers.
struct DecQ4_0 {
  static constexpr TensorType kType = TensorType::Q4_0;
  static constexpr int kUnitBlocks = 1, kBytes = sizeof(BlockQ4_0);
  static constexpr Dot kDot = Dot::kNib4;
  static constexpr Offset kOffset = Offset::kS;
  Fields<1, 4> f;
  void scales(int, __m256& d, __m256& m) const {
    d = f.half(0);
    m = _mm256_mul_ps(d, _mm256_set1_ps(-8.0f));
  }
  __m256i chunk(int, int k) const { return k < 4 ? nib_lo(f.dword(k)) : nib_hi(f.dword(k - 4)); }
};

struct DecQ4_1 {
  static constexpr TensorType kType = TensorType::Q4_1;
  static constexpr int kUnitBlocks = 1, kBytes = sizeof(BlockQ4_1);
  static constexpr Dot kDot = Dot::kNib4;
  static constexpr Offset kOffset = Offset::kSh;
  Fields<0, 5> f;
  void scales(int, __m256& d, __m256& m) const {
    const __m256i dm = f.dword(0);
    d = half_of(dm, false);
    m = half_of(dm, true);
  }
  __m256i chunk(int, int k) const { return k < 4 ? nib_lo(f.dword(1 + k)) : nib_hi(f.dword(k - 3)); }
};

// Q5_0 / Q5_1: chunk k from the qh dword and the quants' dwords from qs on.
template <class F>
inline __m256i q5_chunk(const F& f, int qh, int qs, int k) {
  const __m256i lo = k < 4 ? nib_lo(f.dword(qs + k)) : nib_hi(f.dword(qs + k - 4));
  return _mm256_or_si256(lo, fifth_q5(f.dword(qh), k));
}

struct DecQ5_0 {
  static constexpr TensorType kType = TensorType::Q5_0;
  static constexpr int kUnitBlocks = 1, kBytes = sizeof(BlockQ5_0);
  static constexpr Dot kDot = Dot::kNib5;
  static constexpr Offset kOffset = Offset::kS;
  Fields<1, 5> f;
  void scales(int, __m256& d, __m256& m) const {
    d = f.half(0);
    m = _mm256_mul_ps(d, _mm256_set1_ps(-16.0f));
  }
  __m256i chunk(int, int k) const { return q5_chunk(f, 0, 1, k); }
};

struct DecQ5_1 {
  static constexpr TensorType kType = TensorType::Q5_1;
  static constexpr int kUnitBlocks = 1, kBytes = sizeof(BlockQ5_1);
  static constexpr Dot kDot = Dot::kNib5;
  static constexpr Offset kOffset = Offset::kSh;
  Fields<0, 6> f;
  void scales(int, __m256& d, __m256& m) const {
    const __m256i dm = f.dword(0);
    d = half_of(dm, false);
    m = half_of(dm, true);
  }
  __m256i chunk(int, int k) const { return q5_chunk(f, 1, 2, k); }
};

struct DecQ8_0 {
  static constexpr TensorType kType = TensorType::Q8_0;
  static constexpr int kUnitBlocks = 1, kBytes = sizeof(BlockQ8_0);
  static constexpr Dot kDot = Dot::kQ8;
  static constexpr Offset kOffset = Offset::kS;
  Fields<1, 8> f;
  void scales(int, __m256& d, __m256& m) const {
    d = f.half(0);
    m = _mm256_mul_ps(d, _mm256_set1_ps(-128.0f));
  }
  __m256i chunk(int, int k) const { return f.dword(k); }
};

// Q4_K / Q5_K: sub-blocks of 32 of a super-block; 2c and 2c + 1 share the qs dwords from
// kQs + 8c (low, high nibbles); Q5_K's fifth bit of sub-block j is bit j of qh's bytes.
template <class Block, bool kFifth>
struct DecK4 {
  static constexpr TensorType kType = kFifth ? TensorType::Q5_K : TensorType::Q4_K;
  static constexpr int kUnitBlocks = 8, kBytes = sizeof(Block);
  static constexpr Dot kDot = kFifth ? Dot::kNib5 : Dot::kNib4;
  static constexpr Offset kOffset = Offset::kS;
  static constexpr int kQs = static_cast<int>(offsetof(Block, qs)) / 4;
  Fields<0, kBytes / 4> f;
  // unpack_scales_mins_k4 on every lane: bytes 0..3 of sm[0], sm[1] the 8 scales, of
  // sm[2], sm[3] the 8 mins.
  __m256i sm[4];
  __m256 d, neg_dmin;
  explicit DecK4(Fields<0, kBytes / 4> fields) : f(fields) {
    const __m256i w0 = f.dword(1), w1 = f.dword(2), w2 = f.dword(3);
    const __m256i k6 = _mm256_set1_epi8(0x3f), k4 = _mm256_set1_epi8(0x0f), k2 = _mm256_set1_epi8(0x03);
    sm[0] = _mm256_and_si256(w0, k6);
    sm[1] = _mm256_or_si256(_mm256_and_si256(w2, k4),
                            _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(w0, 6), k2), 4));
    sm[2] = _mm256_and_si256(w1, k6);
    sm[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(w2, 4), k4),
                            _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(w1, 6), k2), 4));
    const __m256i dd = f.dword(0);
    d = half_of(dd, false);
    neg_dmin = _mm256_xor_ps(half_of(dd, true), _mm256_set1_ps(-0.0f));
  }
  void scales(int j, __m256& dj, __m256& mj) const {
    dj = _mm256_mul_ps(d, byte_u(sm[j / 4], j % 4));
    mj = _mm256_mul_ps(neg_dmin, byte_u(sm[2 + j / 4], j % 4));
  }
  __m256i chunk(int j, int k) const {
    const __m256i v = f.dword(kQs + 8 * (j / 2) + k);
    const __m256i q = j % 2 ? nib_hi(v) : nib_lo(v);
    if constexpr (kFifth) return _mm256_or_si256(q, fifth_k(f.dword(4 + k), j));
    return q;
  }
};

// Q6_K: blocks of 32 of a super-block, block 4h + r: low bits in ql dwords 16h + 8(r & 1)
// (high nibbles for r >= 2), high bits 2r, 2r + 1 of the qh dwords 32 + 8h; d and m are
// d * scales[2j] and d * scales[2j + 1], the scales of the block's halves.
struct DecQ6K {
  static constexpr TensorType kType = TensorType::Q6_K;
  static constexpr int kUnitBlocks = 8, kBytes = sizeof(BlockQ6K);
  static constexpr Dot kDot = Dot::kQ6;
  static constexpr Offset kOffset = Offset::kSplit;
  Fields<0, 52> f;
  __m256 d;
  explicit DecQ6K(Fields<0, 52> fields) : f(fields), d(f.tail(0)) {}
  void scales(int j, __m256& dj, __m256& mj) const {
    const __m256i sc = f.dword(48 + j / 2);
    dj = _mm256_mul_ps(d, byte_s(sc, 2 * (j % 2)));
    mj = _mm256_mul_ps(d, byte_s(sc, 2 * (j % 2) + 1));
  }
  __m256i chunk(int j, int k) const {
    const int h = j / 4, r = j % 4;
    const __m256i lo = f.dword(16 * h + 8 * (r & 1) + k);
    const __m256i hi = f.dword(32 + 8 * h + k);
    return _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(lo, 4 * (r >> 1)), _mm256_set1_epi8(0x0f)),
                           _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hi, 2 * r), _mm256_set1_epi8(0x03)), 4));
  }
};

template <class Dec>
inline Dec make_dec(const uint8_t* u, int h) {
  using F = decltype(Dec::f);
  if constexpr (Dec::kUnitBlocks == 1)
    return Dec{F{u, h}};
  else
    return Dec(F{u, h});
}

inline __m256i bcast(const int32_t* p) { return _mm256_set1_epi32(*p); }

// One block's activations for a few tokens, in one of two layouts. Token t's d, s, sh (f32),
// o16[h] (int32) and chunk k (4 int8, one int32 to broadcast) are at
//   tile layout (pack_x, the prefill path): fields [field][8 tokens] of 4 bytes each;
//   token layout (rowdot_pack_x, 1-2 tokens: 52 bytes per block and token, so a decode
//   token's activations stay in L1 while the weights stream past): per token q[nb][32],
//   d[nb], s[nb], sh[nb], o16[nb][2] (avx512/gemm_rowdot.cpp's layout).
struct TileX {
  const uint8_t* xb;  // the block in a tile
  const float* f(int field, int t) const { return reinterpret_cast<const float*>(xb) + field + t; }
  float d(int t) const { return *f(0, t); }
  float s(int t) const { return *f(kXS, t); }
  float sh(int t) const { return *f(kXSh, t); }
  int32_t o16(int h, int t) const { return reinterpret_cast<const int32_t*>(xb)[kXO16 + h * kTile + t]; }
  const int32_t* q(int k, int t) const { return reinterpret_cast<const int32_t*>(xb) + kXQ + k * kTile + t; }
};
struct TokX {
  const uint8_t* base;  // token 0's q of block 0
  int64_t nb, b, token_bytes;
  const uint8_t* tok(int t) const { return base + t * token_bytes; }
  const float* fl(int t) const { return reinterpret_cast<const float*>(tok(t) + nb * kQK); }
  float d(int t) const { return fl(t)[b]; }
  float s(int t) const { return fl(t)[nb + b]; }
  float sh(int t) const { return fl(t)[2 * nb + b]; }
  int32_t o16(int h, int t) const { return reinterpret_cast<const int32_t*>(fl(t) + 3 * nb)[2 * b + h]; }
  const int32_t* q(int k, int t) const { return reinterpret_cast<const int32_t*>(tok(t) + b * kQK) + k; }
};

// Chunks of one group whose i16 sums provably fit (see the file comment).
template <Dot kDot>
constexpr int kGroupChunks = kDot == Dot::kNib4 ? 8 : kDot == Dot::kNib5 ? 4 : kDot == Dot::kQ6 ? 2 : 1;

// s[t] += the exact i32 dot of 8 rows' chunks [k0, k0 + n) with token kT0 + t's, t < kNT.
// Chunk-major: each chunk's quants serve every token while the tokens' sums stay in
// registers.
template <class Dec, int kT0, int kNT, class X>
inline void idot(const Dec& dec, int j, const X& x, int k0, int n, __m256i* s) {
  constexpr Dot kDot = Dec::kDot;
  constexpr int kG = kGroupChunks<kDot>;
  const __m256i ones = _mm256_set1_epi16(1);
  for (int g = k0; g < k0 + n; g += kG) {
    __m256i s16[kNT];
    for (int k = g; k < g + kG; ++k) {
      const __m256i q = dec.chunk(j, k);
      const __m256i w = kDot == Dot::kQ8 ? _mm256_sign_epi8(q, q) : q;
      for (int t = 0; t < kNT; ++t) {
        __m256i xv = bcast(x.q(k, kT0 + t));
        if constexpr (kDot == Dot::kQ8) xv = _mm256_sign_epi8(xv, q);
        const __m256i p = _mm256_maddubs_epi16(w, xv);
        s16[t] = k == g ? p : _mm256_add_epi16(s16[t], p);
      }
    }
    for (int t = 0; t < kNT; ++t) s[t] = _mm256_add_epi32(s[t], _mm256_madd_epi16(s16[t], ones));
  }
}

// acc[t] (8 rows of token t) += one block against tokens [kT0, kT0 + kNT): the twin's f32
// steps.
template <class Dec, int kT0, int kNT, class X>
inline void block_token_range(const Dec& dec, int j, const X& x, __m256* acc) {
  acc += kT0;
  if constexpr (Dec::kOffset == Offset::kSplit) {
    __m256i s0[kNT], s1[kNT];
    for (int t = 0; t < kNT; ++t) {
      s0[t] = _mm256_set1_epi32(x.o16(0, kT0 + t));
      s1[t] = _mm256_set1_epi32(x.o16(1, kT0 + t));
    }
    idot<Dec, kT0, kNT>(dec, j, x, 0, 4, s0);
    idot<Dec, kT0, kNT>(dec, j, x, 4, 4, s1);
    __m256 dw, mw;
    dec.scales(j, dw, mw);
    for (int t = 0; t < kNT; ++t) {
      const __m256 xd = _mm256_set1_ps(x.d(kT0 + t));
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(s0[t]), dw), xd, acc[t]);
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(s1[t]), mw), xd, acc[t]);
    }
  } else {
    __m256i s[kNT];
    for (int t = 0; t < kNT; ++t)  // Q8_0: the twin's q + 128 adds 128 * sum(q_x)
      s[t] = Dec::kDot == Dot::kQ8 ? _mm256_set1_epi32(-4 * (x.o16(0, kT0 + t) + x.o16(1, kT0 + t)))
                                   : _mm256_setzero_si256();
    idot<Dec, kT0, kNT>(dec, j, x, 0, kChunks, s);
    __m256 dw, mw;
    dec.scales(j, dw, mw);
    for (int t = 0; t < kNT; ++t) {
      const __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(s[t]), dw);
      const float xs = Dec::kOffset == Offset::kSh ? x.sh(kT0 + t) : x.s(kT0 + t);
      acc[t] = _mm256_fmadd_ps(f, _mm256_set1_ps(x.d(kT0 + t)), acc[t]);
      acc[t] = _mm256_fmadd_ps(mw, _mm256_set1_ps(xs), acc[t]);
    }
  }
}

// The first kNT tokens, at most 4 at a time: 4 tokens' sums, a chunk and a broadcast fit
// the 16 registers with room to spare (8 tokens' did not, and GCC spilled the sums).
template <class Dec, int kNT, class X>
inline void block_tokens(const Dec& dec, int j, const X& x, __m256* acc) {
  block_token_range<Dec, 0, std::min(kNT, 4)>(dec, j, x, acc);
  if constexpr (kNT > 4) block_token_range<Dec, 4, kNT - 4>(dec, j, x, acc);
}

// Halves [h0, h0 + kNH) of a group against the first kNT tokens, over the nb blocks (a
// multiple of the unit's) of units `units` (16 * kBytes apart); x_at(b) is block b's
// activations: acc[h][t] for half h0 + h.
template <class Dec, int kNT, int kNH, class XAt>
inline void run_blocks(const uint8_t* units, int h0, int nb, XAt x_at, __m256 (*acc)[kTile]) {
  constexpr int kUnitBytes = kGroup * Dec::kBytes;
  for (int u = 0; u * Dec::kUnitBlocks < nb; ++u) {
    if constexpr (kNH == 2) {  // decode streams the weights: fetch kPrefetchBytes ahead
      const uint8_t* ahead = units + u * kUnitBytes + kPrefetchBytes;
      for (int a = 0; a < kUnitBytes; a += 64) _mm_prefetch(reinterpret_cast<const char*>(ahead + a), _MM_HINT_T0);
    }
    for (int h = 0; h < kNH; ++h) {
      const Dec dec = make_dec<Dec>(units + u * kUnitBytes, h0 + h);
#pragma GCC unroll 8
      for (int j = 0; j < Dec::kUnitBlocks; ++j)
        block_tokens<Dec, kNT>(dec, j, x_at(u * Dec::kUnitBlocks + j), acc[h]);
    }
  }
}

// y[0..nv) of 8 rows (nv <= 8) = v, or v + y for a later run (the twin's acc + out).
inline void store_rows(float* y, __m256 v, int nv, bool add) {
  if (nv <= 0) return;
  if (nv == 8) {
    if (add) v = _mm256_add_ps(v, _mm256_loadu_ps(y));
    _mm256_storeu_ps(y, v);
    return;
  }
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(nv), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  if (add) v = _mm256_add_ps(v, _mm256_maskload_ps(y, mask));
  _mm256_maskstore_ps(y, mask, v);
}

// One or two tokens against one run of a group: both halves of each unit in turn, so the
// group is read in address order.
template <class Dec, class XAt>
void group_run_few(const uint8_t* units, int n_rows, int nb, XAt x_at, int64_t n_tokens, float* y,
                   int64_t ldy, bool later) {
  __m256 acc[2][kTile];
  for (auto& a : acc)
    for (__m256& v : a) v = _mm256_setzero_ps();
  if (n_tokens == 1)
    run_blocks<Dec, 1, 2>(units, 0, nb, x_at, acc);
  else
    run_blocks<Dec, 2, 2>(units, 0, nb, x_at, acc);
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int h = 0; h < 2; ++h) store_rows(y + t * ldy + 8 * h, acc[h][t], n_rows - 8 * h, later);
}

// One run of nb blocks (units from `units`) of a group of 16 rows (n_rows valid) against
// every token of pack_x's tiles (x at the run's first block of tile 0): y rows [0, n_rows)
// of each token, added to what earlier runs left there.
template <class Dec>
void group_run(const uint8_t* units, int n_rows, int nb, const uint8_t* x, int64_t tile_bytes,
               int64_t n_tokens, float* y, int64_t ldy, bool later) {
  if (n_tokens <= 2) {
    group_run_few<Dec>(units, n_rows, nb, [x](int b) { return TileX{x + b * kPackedXBlockBytes}; },
                       n_tokens, y, ldy, later);
    return;
  }
  const int64_t n_tiles = (n_tokens + kTile - 1) / kTile;
  for (int h = 0; h < 2 && 8 * h < n_rows; ++h)
    for (int64_t tile = 0; tile < n_tiles; ++tile) {
      __m256 acc[1][kTile];
      for (__m256& v : acc[0]) v = _mm256_setzero_ps();
      const int nt = static_cast<int>(std::min<int64_t>(kTile, n_tokens - tile * kTile));
      const uint8_t* xt = x + tile * tile_bytes;
      auto x_at = [xt](int b) { return TileX{xt + b * kPackedXBlockBytes}; };
      switch (nt) {
        case 1: run_blocks<Dec, 1, 1>(units, h, nb, x_at, acc); break;
        case 2: run_blocks<Dec, 2, 1>(units, h, nb, x_at, acc); break;
        case 3: run_blocks<Dec, 3, 1>(units, h, nb, x_at, acc); break;
        case 4: run_blocks<Dec, 4, 1>(units, h, nb, x_at, acc); break;
        case 5: run_blocks<Dec, 5, 1>(units, h, nb, x_at, acc); break;
        case 6: run_blocks<Dec, 6, 1>(units, h, nb, x_at, acc); break;
        case 7: run_blocks<Dec, 7, 1>(units, h, nb, x_at, acc); break;
        default: run_blocks<Dec, kTile, 1>(units, h, nb, x_at, acc); break;
      }
      for (int t = 0; t < nt; ++t)
        store_rows(y + (tile * kTile + t) * ldy + 8 * h, acc[0][t], n_rows - 8 * h, later);
    }
}

// One or two tokens (rowdot_pack_x's layout) against interleaved weights (whole groups of
// 16 rows): decode's matrix products.
template <class Dec>
void il_rowdot_gemm(int64_t n, const void* vw, int64_t w_stride, int64_t n_rows, const void* xp,
                    int64_t n_tokens, float* y, int64_t ldy) {
  const auto* w = static_cast<const uint8_t*>(vw);
  const int64_t nb = n / kQK;
  const TokX x0{static_cast<const uint8_t*>(xp), nb, 0, kRowdotXBlockBytes * nb};
  for (int64_t r0 = 0; r0 < n_rows; r0 += kGroup) {
    const int rows = static_cast<int>(std::min<int64_t>(kGroup, n_rows - r0));
    const uint8_t* group = w + r0 * w_stride;
    for (int64_t b0 = 0; b0 < nb; b0 += kRun) {
      const int pb = static_cast<int>(std::min<int64_t>(kRun, nb - b0));
      const uint8_t* units = group + b0 / Dec::kUnitBlocks * kGroup * Dec::kBytes;
      auto x_at = [&x0, b0](int b) {
        TokX x = x0;
        x.b = b0 + b;
        return x;
      };
      group_run_few<Dec>(units, rows, pb, x_at, n_tokens, y + r0, ldy, b0 > 0);
    }
  }
}

// kInterleaved: w holds whole interleaved groups of 16 rows (kernels/interleave.h);
// otherwise the file's layout, interleaved a panel at a time on the stack.
template <class Dec, bool kInterleaved>
void packed_gemm(int64_t n, const void* vw, int64_t w_stride, int64_t n_rows, const void* xp,
                 int64_t n_tokens, float* y, int64_t ldy) {
  constexpr int kRunUnits = kRun / Dec::kUnitBlocks;  // a run is whole units
  const auto* w = static_cast<const uint8_t*>(vw);
  const auto* x = static_cast<const uint8_t*>(xp);
  const int64_t nb = n / kQK;
  const int64_t tile_bytes = nb * kPackedXBlockBytes;
  alignas(32) uint8_t panel[kInterleaved ? 1 : kGroup * kRunUnits * Dec::kBytes];
  for (int64_t r0 = 0; r0 < n_rows; r0 += kGroup) {
    const int rows = static_cast<int>(std::min<int64_t>(kGroup, n_rows - r0));
    const uint8_t* group = w + r0 * w_stride;
    for (int64_t b0 = 0; b0 < nb; b0 += kRun) {
      const int pb = static_cast<int>(std::min<int64_t>(kRun, nb - b0));
      const int64_t u0 = b0 / Dec::kUnitBlocks;
      const uint8_t* units;
      if constexpr (kInterleaved) {
        units = group + u0 * kGroup * Dec::kBytes;
      } else {
        interleave_panel(Dec::kType, group, w_stride, rows, u0, pb / Dec::kUnitBlocks, panel);
        units = panel;
      }
      group_run<Dec>(units, rows, pb, x + b0 * kPackedXBlockBytes, tile_bytes, n_tokens, y + r0,
                     ldy, b0 > 0);
    }
  }
}

// One token's block of 32 quantized by quantize_block_q8 (legacy_simd.h; pack_x_ref computes
// the same): d unrounded (for sh), the sums of q over elements 0..15 and 16..31, and the 32
// int8 q in order in a ymm.
struct QuantBlock {
  float d;
  int32_t half, rest;
  __m256i q;
};
inline QuantBlock quantize_block(const float* xt) {
  alignas(32) int8_t qs[kQK];
  f16_t unused;
  const Q8Block b = quantize_block_q8(xt, unused, qs);
  QuantBlock r;
  r.d = b.d;
  r.q = _mm256_load_si256(reinterpret_cast<const __m256i*>(qs));
  const __m256i lo16 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(r.q));
  r.half = hsum256_i32(_mm256_madd_epi16(lo16, _mm256_set1_epi16(1)));
  r.rest = b.sum - r.half;
  return r;
}

inline __m256 round_f16(__m256 v) {
  return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// pack_x's tiles (the layout avx512/gemm_packed.cpp describes); tokens past n_tokens are 0.
void pack_x(const float* x, int64_t n, int64_t n_tokens, int64_t tile0, int64_t tile1, void* xp) {
  const int64_t nb = n / kQK;
  auto* out = static_cast<uint8_t*>(xp);
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
        const QuantBlock r = quantize_block(x + (tile * kTile + t) * n + b * kQK);
        dq[t] = r.d;
        sums[t] = static_cast<float>(r.half + r.rest);
        o16[0][t] = -32 * r.half;
        o16[1][t] = -32 * r.rest;
        rows[t] = r.q;
      }
      // d, s = d * sum, sh = f16(d_unrounded * sum), for the 8 tokens at once.
      const __m256 dv = _mm256_load_ps(dq), sv = _mm256_load_ps(sums);
      const __m256 dr = round_f16(dv);
      _mm256_storeu_ps(d, dr);
      _mm256_storeu_ps(d + kXS, _mm256_mul_ps(dr, sv));
      _mm256_storeu_ps(d + kXSh, round_f16(_mm256_mul_ps(dv, sv)));
      std::memcpy(d + kXO16, o16, sizeof(o16));
      transpose8x8_epi32(rows);
      uint8_t* q = blk + kXQ * sizeof(float);
      for (int k = 0; k < kChunks; ++k) _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + k * 32), rows[k]);
    }
  }
}

// rowdot_pack_x's per-token layout (TokX), the same values as pack_x's: tokens of tiles
// [tile0, tile1) that are below n_tokens.
void rowdot_pack_x(const float* x, int64_t n, int64_t n_tokens, int64_t tile0, int64_t tile1, void* xp) {
  const int64_t nb = n / kQK;
  const int64_t t1 = std::min(n_tokens, tile1 * kTile);
  for (int64_t t = tile0 * kTile; t < t1; ++t) {
    auto* q = static_cast<uint8_t*>(xp) + t * nb * kRowdotXBlockBytes;
    auto* d = reinterpret_cast<float*>(q + nb * kQK);
    float* s = d + nb;
    float* sh = s + nb;
    auto* o16 = reinterpret_cast<int32_t*>(sh + nb);
    for (int64_t b = 0; b < nb; ++b) {
      const QuantBlock r = quantize_block(x + t * n + b * kQK);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * kQK), r.q);
      const float sum = static_cast<float>(r.half + r.rest);
      const __m128 dr = _mm_cvtph_ps(_mm_cvtps_ph(_mm_set_ss(r.d), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      d[b] = _mm_cvtss_f32(dr);
      s[b] = d[b] * sum;
      sh[b] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph(_mm_set_ss(r.d * sum), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
      o16[2 * b] = -32 * r.half;
      o16[2 * b + 1] = -32 * r.rest;
    }
  }
}

template <class Dec>
void set(KernelTable& t) {
  TypeKernels& k = t.types[static_cast<uint32_t>(Dec::kType)];
  k.pack_x = pack_x;
  k.packed_gemm = packed_gemm<Dec, false>;
  k.il_packed_gemm = packed_gemm<Dec, true>;
  // Interleaved weights: one or two tokens in the per-token layout. The file's layout has no
  // rowdot form here (rowdot_gemm null): packed_gemm serves a few tokens there.
  k.rowdot_pack_x = rowdot_pack_x;
  k.rowdot_gemm = nullptr;
  k.il_rowdot_gemm = il_rowdot_gemm<Dec>;
}

}  // namespace

void fill_avx2_packed(KernelTable& t) {
  set<DecQ4_0>(t);
  set<DecQ4_1>(t);
  set<DecQ5_0>(t);
  set<DecQ5_1>(t);
  set<DecQ8_0>(t);
  set<DecK4<BlockQ4K, false>>(t);
  set<DecK4<BlockQ5K, true>>(t);
  set<DecQ6K>(t);
}

}  // namespace hearth::kernels
