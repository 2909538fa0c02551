// Shared by the AVX-512 forms of the f32 kernels (attention, SwiGLU, RMSNorm): exp_fixed
// (ops.h) on 16 lanes, with the same f32 operations in the same order, so each lane is
// bit-identical to the portable function; and the mask of a row's last 16 elements. For
// files built with -ffp-contract=off and -mavx512f (CMakeLists.txt).
#pragma once

#include <cstdint>

#include "kernels/intrinsics.h"

namespace hearth::kernels {

// Lanes of the 16 elements from here that are inside the row (r of them remain).
inline __mmask16 tail16(int64_t r) {
  return r >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << r) - 1);
}

inline __m512 exp16_fixed(__m512 x) {
  const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_GE_OQ);  // not NaN
  const __mmask16 big = _mm512_cmp_ps_mask(x, _mm512_set1_ps(88.0f), _CMP_GT_OQ);
  const __m512 xc = _mm512_min_ps(x, _mm512_set1_ps(88.0f));
  const __m512 magic = _mm512_set1_ps(12582912.0f);
  __m512 t = _mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f));
  t = _mm512_add_ps(t, magic);
  const __m512 n = _mm512_sub_ps(t, magic);
  __m512 r = _mm512_sub_ps(xc, _mm512_mul_ps(n, _mm512_set1_ps(0.693359375f)));
  r = _mm512_sub_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(-2.12194440e-4f)));
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(0.5f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  const __m512 y = _mm512_mask_mov_ps(_mm512_mul_ps(p, _mm512_castsi512_ps(e)), big,
                                      _mm512_set1_ps(__builtin_inff()));
  return _mm512_maskz_mov_ps(live, y);
}

}  // namespace hearth::kernels
