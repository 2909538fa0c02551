// AVX2 K-quant kernels: Q4_K/Q5_K/Q6_K x Q8_K dot products and f32 -> Q8_K.
//
// The dot products follow the reference (quants_k_ref.cpp): u8 x s8 products summed in
// pairs (maddubs, |sum| <= 2*63*127, no saturation), multiplied by the integer sub-block
// scale and summed to int32 (madd), per super-block; only then are the float scales
// applied. The mins (Q4_K/Q5_K) and Q6_K's -32 offset use Q8_K's bsums instead of a
// second pass over the quants. Results equal the reference up to float summation order.
#include <immintrin.h>

#include <cstring>

#include "kernels/blocks_k.h"
#include "kernels/type_kernels.h"

namespace hearth::kernels {
namespace {

inline float hsum(__m128 v) {
  v = _mm_add_ps(v, _mm_movehl_ps(v, v));
  v = _mm_add_ss(v, _mm_movehdup_ps(v));
  return _mm_cvtss_f32(v);
}

inline float hsum(__m256 v) {
  return hsum(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}

// Shuffle mask selecting int16 element k of each 128-bit lane into every position.
inline __m256i pick_epi16(int k) {
  return _mm256_set1_epi16(static_cast<int16_t>(0x0100 + 0x0202 * k));
}

// Q4_K/Q5_K: 8 int16 scales (replicated in both lanes) and the mins term, from the
// packed scales and Q8_K's bsums. Returns the sum over sub-blocks of m[j]*sum(q8 in j).
inline __m128i scales_and_mins(const uint8_t* packed, const int16_t* bsums, __m256i* scales) {
  uint8_t sm[16];
  unpack_scales_mins_k4(packed, sm);
  const __m256i sm16 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sm)));
  *scales = _mm256_permute2x128_si256(sm16, sm16, 0x00);
  const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bsums));
  // Sums of q8 per 32-element sub-block (two bsums each), then times the mins.
  const __m128i q8s = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
  return _mm_madd_epi16(_mm256_extracti128_si256(sm16, 1), q8s);
}

void vec_dot_q4_k(int64_t n, float* out, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ4K*>(vw);
  const auto* x = static_cast<const BlockQ8K*>(vx);
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  __m256 acc = _mm256_setzero_ps();
  __m128 acc_m = _mm_setzero_ps();
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = _cvtsh_ss(w[i].d) * x[i].d;
    const float dmin = -_cvtsh_ss(w[i].dmin) * x[i].d;
    __m256i scales;
    const __m128i mins = scales_and_mins(w[i].scales, x[i].bsums, &scales);
    acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(mins), acc_m);

    const uint8_t* q4 = w[i].qs;
    const int8_t* q8 = x[i].qs;
    __m256i sumi = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q4 + 32 * c));
      const __m256i lo = _mm256_and_si256(bits, m4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
      const __m256i y0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 64 * c));
      const __m256i y1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 64 * c + 32));
      const __m256i p0 = _mm256_madd_epi16(_mm256_shuffle_epi8(scales, pick_epi16(2 * c)),
                                           _mm256_maddubs_epi16(lo, y0));
      const __m256i p1 = _mm256_madd_epi16(_mm256_shuffle_epi8(scales, pick_epi16(2 * c + 1)),
                                           _mm256_maddubs_epi16(hi, y1));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  *out = hsum(acc) + hsum(acc_m);
}

void vec_dot_q5_k(int64_t n, float* out, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ5K*>(vw);
  const auto* x = static_cast<const BlockQ8K*>(vx);
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i m16 = _mm256_set1_epi8(0x10);
  __m256 acc = _mm256_setzero_ps();
  __m128 acc_m = _mm_setzero_ps();
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = _cvtsh_ss(w[i].d) * x[i].d;
    const float dmin = -_cvtsh_ss(w[i].dmin) * x[i].d;
    __m256i scales;
    const __m128i mins = scales_and_mins(w[i].scales, x[i].bsums, &scales);
    acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(mins), acc_m);

    const uint8_t* q4 = w[i].qs;
    const int8_t* q8 = x[i].qs;
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qh));
    __m256i sumi = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      // Bit 2c of each qh byte is the 5th bit of the low nibbles, bit 2c+1 of the high
      // ones; 16-bit shifts are safe because the 0x10 mask drops bits from the other byte.
      const __m256i h = _mm256_srli_epi16(qh, 2 * c);
      const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q4 + 32 * c));
      const __m256i lo = _mm256_or_si256(_mm256_and_si256(bits, m4),
                                         _mm256_and_si256(_mm256_slli_epi16(h, 4), m16));
      const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                                         _mm256_and_si256(_mm256_slli_epi16(h, 3), m16));
      const __m256i y0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 64 * c));
      const __m256i y1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 64 * c + 32));
      const __m256i p0 = _mm256_madd_epi16(_mm256_shuffle_epi8(scales, pick_epi16(2 * c)),
                                           _mm256_maddubs_epi16(lo, y0));
      const __m256i p1 = _mm256_madd_epi16(_mm256_shuffle_epi8(scales, pick_epi16(2 * c + 1)),
                                           _mm256_maddubs_epi16(hi, y1));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  *out = hsum(acc) + hsum(acc_m);
}

// Shuffle mask: bytes 0-7 take int8 scale k, bytes 8-15 scale k+1.
inline __m128i pick_pair_epi8(int k) {
  return _mm_set_epi64x(static_cast<int64_t>(0x0101010101010101ull * static_cast<uint64_t>(k + 1)),
                        static_cast<int64_t>(0x0101010101010101ull * static_cast<uint64_t>(k)));
}

void vec_dot_q6_k(int64_t n, float* out, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ6K*>(vw);
  const auto* x = static_cast<const BlockQ8K*>(vx);
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i m30 = _mm256_set1_epi8(0x30);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = _cvtsh_ss(w[i].d) * x[i].d;
    const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i].scales));
    // Quants are stored +32: subtract 32 * sum_j sc[j] * sum(q8 in sub-block j).
    const __m256i offset =
        _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8),
                          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].bsums)));
    __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(offset, 5));
    for (int g = 0; g < 2; ++g) {
      const uint8_t* ql = w[i].ql + 64 * g;
      const int8_t* q8 = x[i].qs + 128 * g;
      const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
      const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qh + 32 * g));
      // Quarter r of the 128 elements: low nibble of l0/l1 (r = 0, 1) or high (r = 2, 3),
      // high two bits from bits 2r, 2r+1 of h moved to bits 4-5.
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(h, 4), m30)),
          _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(h, 2), m30)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(h, m30)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                          _mm256_and_si256(_mm256_srli_epi16(h, 2), m30)),
      };
      for (int r = 0; r < 4; ++r) {
        const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 32 * r));
        const __m256i sc =
            _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, pick_pair_epi8(8 * g + 2 * r)));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(sc, _mm256_maddubs_epi16(q[r], y)));
      }
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  *out = hsum(acc);
}

// f32 -> Q8_K, identical to the reference: the first element of largest magnitude maps
// to -127; conversion rounds to nearest even (MXCSR default, as nearbyint).
void from_float_q8_k(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockQ8K*>(vy);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    __m256 vmax = _mm256_setzero_ps();
    for (int k = 0; k < kQK_K; k += 8)
      vmax = _mm256_max_ps(vmax, _mm256_and_ps(_mm256_loadu_ps(x + k), abs_mask));
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float amax = _mm_cvtss_f32(m);
    if (amax == 0) {
      std::memset(&y[i], 0, sizeof(BlockQ8K));
      continue;
    }
    float max = 0;
    const __m256 vamax = _mm256_set1_ps(amax);
    for (int k = 0; k < kQK_K; k += 8) {
      const int hit = _mm256_movemask_ps(
          _mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + k), abs_mask), vamax, _CMP_EQ_OQ));
      if (hit) {
        max = x[k + __builtin_ctz(static_cast<unsigned>(hit))];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m256 vs = _mm256_set1_ps(iscale);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int k = 0; k < kQK_K; k += 32) {
      const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(x + k)));
      const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(x + k + 8)));
      const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(x + k + 16)));
      const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(x + k + 24)));
      // packs interleave 4-element groups per lane; the permute restores element order.
      const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs + k),
                          _mm256_permutevar8x32_epi32(p, perm));
    }
    // bsums: sum of 16 signed bytes = sad(q ^ 0x80, 0) - 16*128 per 8-byte half, paired.
    const __m128i bias = _mm_set1_epi8(static_cast<char>(0x80));
    for (int k = 0; k < kQK_K / 16; ++k) {
      const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(y[i].qs + 16 * k));
      const __m128i s = _mm_sad_epu8(_mm_xor_si128(q, bias), _mm_setzero_si128());
      y[i].bsums[k] = static_cast<int16_t>(_mm_cvtsi128_si32(s) + _mm_extract_epi16(s, 4) - 2048);
    }
    y[i].d = 1 / iscale;
  }
}

}  // namespace

void fill_avx2_k(KernelTable& t) {
  auto set_dot = [&t](TensorType type, VecDotFn dot) {
    TypeKernels& k = t.types[static_cast<uint32_t>(type)];
    k.vec_dot_type = TensorType::Q8_K;
    k.vec_dot = dot;
  };
  set_dot(TensorType::Q4_K, vec_dot_q4_k);
  set_dot(TensorType::Q5_K, vec_dot_q5_k);
  set_dot(TensorType::Q6_K, vec_dot_q6_k);
  t.types[static_cast<uint32_t>(TensorType::Q8_K)].from_float = from_float_q8_k;
}

}  // namespace hearth::kernels
