// 256-bit kernels for the legacy quant types, shared by quants_avx2.cpp and
// quants_avx512.cpp (and its activation quantizer, quantize_block_q8, by
// avx512/gemm_rowdot.cpp and avx2/gemm_packed_avx2.cpp). Each file includes this header and instantiates the kernels with its
// own Isa policy, which supplies the two operations that differ between the ISAs:
//   Isa::dot_u8s8(u, s): 8 x i32, each the sum of 4 adjacent u8 * s8 products
//                        (AVX2: maddubs + madd; AVX-512 VNNI: one vpdpbusd)
//   Isa::bits_to_bytes(qh): 32 bytes, 0xff where bit i of qh is set
//
// Everything here sits in an unnamed namespace on purpose: the including files are
// compiled with different ISA flags, and shared (weak) symbols would let the linker use
// the AVX-512 copy from the AVX2 path.
//
// Per block the integer dot product is exact; it is converted to f32 and scaled once per
// block, as the reference does, so results differ from the reference only by the order
// of the f32 additions across blocks.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/blocks.h"
#include "kernels/intrinsics.h"

namespace hearth::kernels {
namespace {

inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int hsum256_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

inline uint32_t load_u32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// 32 nibbles of a block as bytes 0..15, in element order (low nibbles, then high): the
// 16 bytes go to both halves (a load-port broadcast) and the upper half shifts by 4.
inline __m256i nibbles(const uint8_t* qs) {
  const __m256i v =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
  return _mm256_and_si256(_mm256_srlv_epi64(v, _mm256_set_epi64x(4, 4, 0, 0)),
                          _mm256_set1_epi8(0x0f));
}

inline __m256i load256(const int8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

template <class Isa>
inline __m256i dot_s8s8(__m256i a, __m256i b) {
  return Isa::dot_u8s8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

// Per type: the exact i32 dot product of one weight block with one activation block
// (8 partial sums), and whether the type has a min (the _1 types: + m_w * s_x).
struct Q4_0Step {
  using W = BlockQ4_0;
  using X = BlockQ8_0;
  static constexpr bool kMin = false;
  template <class Isa>
  static __m256i dot(const W& w, const X& x) {
    const __m256i q = _mm256_sub_epi8(nibbles(w.qs), _mm256_set1_epi8(8));
    return dot_s8s8<Isa>(q, load256(x.qs));
  }
};

struct Q4_1Step {
  using W = BlockQ4_1;
  using X = BlockQ8_1;
  static constexpr bool kMin = true;
  template <class Isa>
  static __m256i dot(const W& w, const X& x) {
    return Isa::dot_u8s8(nibbles(w.qs), load256(x.qs));
  }
};

struct Q5_0Step {
  using W = BlockQ5_0;
  using X = BlockQ8_0;
  static constexpr bool kMin = false;
  template <class Isa>
  static __m256i dot(const W& w, const X& x) {
    // (q | hb) - 16 as i8: where the fifth bit is clear, setting the top four bits
    // subtracts 16; where it is set, q + 16 - 16 = q.
    const __m256i hb = Isa::bits_to_bytes(load_u32(w.qh));
    const __m256i q = _mm256_or_si256(nibbles(w.qs),
                                      _mm256_andnot_si256(hb, _mm256_set1_epi8(char(0xf0))));
    return dot_s8s8<Isa>(q, load256(x.qs));
  }
};

struct Q5_1Step {
  using W = BlockQ5_1;
  using X = BlockQ8_1;
  static constexpr bool kMin = true;
  template <class Isa>
  static __m256i dot(const W& w, const X& x) {
    const __m256i hb = Isa::bits_to_bytes(load_u32(w.qh));
    const __m256i q =
        _mm256_or_si256(nibbles(w.qs), _mm256_and_si256(hb, _mm256_set1_epi8(0x10)));
    return Isa::dot_u8s8(q, load256(x.qs));
  }
};

struct Q8_0Step {
  using W = BlockQ8_0;
  using X = BlockQ8_0;
  static constexpr bool kMin = false;
  template <class Isa>
  static __m256i dot(const W& w, const X& x) {
    return dot_s8s8<Isa>(load256(w.qs), load256(x.qs));
  }
};

// Scales of up to 4 block pairs from the first 4 bytes of each block (d_w, m_w) and
// (d_x, s_x), converted in one go: lane 2i = d_w * d_x, lane 2i+1 = m_w * s_x of pair i
// (0 for the _0 types, whose second half-word is not a min and is masked off).
template <class Step>
inline __m256 scales(__m128i wv, __m128i xv) {
  if constexpr (!Step::kMin) {
    wv = _mm_and_si128(wv, _mm_set1_epi32(0xffff));
    xv = _mm_and_si128(xv, _mm_set1_epi32(0xffff));
  }
  return _mm256_mul_ps(_mm256_cvtph_ps(wv), _mm256_cvtph_ps(xv));
}

template <class Step>
inline __m256 scales4(const typename Step::W* w, const typename Step::X* x) {
  auto u = [](const void* p) { return static_cast<int>(load_u32(p)); };
  return scales<Step>(_mm_setr_epi32(u(w), u(w + 1), u(w + 2), u(w + 3)),
                      _mm_setr_epi32(u(x), u(x + 1), u(x + 2), u(x + 3)));
}

template <class Step>
inline __m256 scales1(const typename Step::W* w, const typename Step::X* x) {
  return scales<Step>(_mm_cvtsi32_si128(static_cast<int>(load_u32(w))),
                      _mm_cvtsi32_si128(static_cast<int>(load_u32(x))));
}

inline __m256 lane(__m256 v, int i) { return _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(i)); }

// acc += f32(sumi) * d_w * d_x per block, four blocks per step so the eight f16 scales
// convert together; two accumulators hide the FMA latency. The m_w * s_x products add
// up in the odd lanes of accm.
template <class Step, class Isa>
void vec_dot_blocks(int64_t n, float* out, const void* vw, const void* vx) {
  const auto* w = static_cast<const typename Step::W*>(vw);
  const auto* x = static_cast<const typename Step::X*>(vx);
  const int64_t nb = n / kQK;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 4 <= nb; b += 4) {
    const __m256 p = scales4<Step>(w + b, x + b);
    if constexpr (Step::kMin) accm = _mm256_add_ps(accm, p);
    const __m256i s0 = Step::template dot<Isa>(w[b], x[b]);
    const __m256i s1 = Step::template dot<Isa>(w[b + 1], x[b + 1]);
    const __m256i s2 = Step::template dot<Isa>(w[b + 2], x[b + 2]);
    const __m256i s3 = Step::template dot<Isa>(w[b + 3], x[b + 3]);
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), lane(p, 0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), lane(p, 2), acc1);
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s2), lane(p, 4), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s3), lane(p, 6), acc1);
  }
  for (; b < nb; ++b) {
    const __m256 p = scales1<Step>(w + b, x + b);
    if constexpr (Step::kMin) accm = _mm256_add_ps(accm, p);
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(Step::template dot<Isa>(w[b], x[b])),
                           _mm256_broadcastss_ps(_mm256_castps256_ps128(p)), acc0);
  }
  __m256 sum = _mm256_add_ps(acc0, acc1);
  if constexpr (Step::kMin) {
    const __m256 odd = _mm256_castsi256_ps(_mm256_set1_epi64x(int64_t{-1} << 32));
    sum = _mm256_add_ps(sum, _mm256_and_ps(accm, odd));
  }
  *out = hsum256(sum);
}

// ---- activations: f32 -> Q8_0 / Q8_1 ----

// roundf (ties away from zero), exactly as the reference quantizer rounds.
inline __m256 round_away(__m256 v) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));  // exact
  const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  const __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(v, sign));
  return _mm256_add_ps(t, _mm256_and_ps(up, one));
}

struct Q8Block {
  float d;  // before rounding to f16
  int sum;  // sum of the quants
};

// Quantizes one block of 32 floats to i8 with d = amax / 127.
inline Q8Block quantize_block_q8(const float* x, f16_t& d_out, int8_t* qs) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 v[4];
  __m256 amax = _mm256_setzero_ps();
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_loadu_ps(x + 8 * i);
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[i]));
  }
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  const float d = _mm_cvtss_f32(m) / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  d_out = f32_to_f16(d);
  const __m256 vid = _mm256_set1_ps(id);
  __m256i q[4];
  for (int i = 0; i < 4; ++i) q[i] = _mm256_cvtps_epi32(round_away(_mm256_mul_ps(v[i], vid)));
  const int sum =
      hsum256_i32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
  // packs work per 128-bit lane; the permute restores element order.
  const __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
  const __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
  const __m256i p = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23),
                                                _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), p);
  return {d, sum};
}

void q8_0_from_float_simd(const float* x, void* vy, int64_t n) {
  BlockQ8_0* y = static_cast<BlockQ8_0*>(vy);
  for (int64_t b = 0; b < n / kQK; ++b) quantize_block_q8(x + b * kQK, y[b].d, y[b].qs);
}

void q8_1_from_float_simd(const float* x, void* vy, int64_t n) {
  BlockQ8_1* y = static_cast<BlockQ8_1*>(vy);
  for (int64_t b = 0; b < n / kQK; ++b) {
    const Q8Block q = quantize_block_q8(x + b * kQK, y[b].d, y[b].qs);
    y[b].s = f32_to_f16(static_cast<float>(q.sum) * q.d);
  }
}

}  // namespace
}  // namespace hearth::kernels
