// The AVX-512 forms of swiglu and rmsnorm: the portable code's operations (ops.cpp), 16
// elements at a time, so the bits do not depend on the ISA. Built with -ffp-contract=off
// (CMakeLists.txt).

#include "kernels/avx512/exp_avx512.h"
#include "kernels/intrinsics.h"
#include "kernels/ops.h"

namespace hearth::kernels {

void swiglu_avx512(const float* gate, const float* up, float* out, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail16(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 e = exp16_fixed(_mm512_xor_ps(g, _mm512_set1_ps(-0.0f)));  // -g
    const __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, e));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

// Elements 16c .. 16c + 7 and 16c + 8 .. 16c + 15 are lanes 0-7 of the two f64 halves:
// lane l adds its squares in the portable order i = l, l + 8, l + 16, ...
void rmsnorm_avx512(const float* x, const float* w, float* y, int64_t n, float eps) {
  __m512d acc = _mm512_setzero_pd();
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 xv = _mm512_maskz_loadu_ps(tail16(n - i), x + i);  // the tail adds +0
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(xv));
    const __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(xv, 1));
    acc = _mm512_add_pd(acc, _mm512_mul_pd(lo, lo));
    acc = _mm512_add_pd(acc, _mm512_mul_pd(hi, hi));
  }
  const __m256d s4 = _mm256_add_pd(_mm512_castpd512_pd256(acc), _mm512_extractf64x4_pd(acc, 1));
  const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
  const double sum_sq = _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
  const __m512 scale = _mm512_set1_ps(rmsnorm_scale(sum_sq, n, eps));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail16(n - i);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), scale);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + i)));
  }
}

}  // namespace hearth::kernels
