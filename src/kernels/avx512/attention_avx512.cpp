// attention_head's AVX-512 form: the same f32 operations in the same order as the
// portable code in attention.cpp (a 16-lane dot with mul then add, the fixed lane tree,
// axpy as mul then add), so the result is bit-identical on every ISA. CMakeLists.txt
// builds this file with -ffp-contract=off: fusing a mul and an add into an FMA would
// change the rounding.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "kernels/attention.h"
#include "kernels/ops.h"

namespace hearth::kernels {
namespace {

inline __mmask16 tail_mask(int64_t r) { return static_cast<__mmask16>((1u << r) - 1); }

// Lane l: products i = l (mod 16) in order; then lanes l += l + 8, l + 4, l + 2, l + 1.
inline float dot16(const float* a, const float* b, int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    acc = _mm512_mask_add_ps(acc, m, acc,
                             _mm512_mul_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i)));
  }
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));  // lanes 0, 1 += lanes 2, 3
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));  // lane 0 += lane 1
}

// out += p * v, element by element.
inline void axpy16(float p, const float* v, float* out, int64_t n) {
  const __m512 pv = _mm512_set1_ps(p);
  int64_t d = 0;
  for (; d + 16 <= n; d += 16)
    _mm512_storeu_ps(out + d, _mm512_add_ps(_mm512_loadu_ps(out + d), _mm512_mul_ps(pv, _mm512_loadu_ps(v + d))));
  if (d < n) {
    const __mmask16 m = tail_mask(n - d);
    _mm512_mask_storeu_ps(out + d, m,
                          _mm512_add_ps(_mm512_maskz_loadu_ps(m, out + d), _mm512_mul_ps(pv, _mm512_maskz_loadu_ps(m, v + d))));
  }
}

}  // namespace

void attention_head_avx512(const float* q, const float* k, const float* v, int64_t stride,
                           int64_t n_kv, int64_t hd, float scale, float* scores, float* out) {
  for (int64_t j = 0; j < n_kv; ++j) scores[j] = dot16(q, k + j * stride, hd) * scale;
  softmax(scores, n_kv);
  for (int64_t d = 0; d < hd; ++d) out[d] = 0.0f;
  for (int64_t j = 0; j < n_kv; ++j) axpy16(scores[j], v + j * stride, out, hd);
}

}  // namespace hearth::kernels
