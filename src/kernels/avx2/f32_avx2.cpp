// The AVX2 forms of the f32 kernels whose order ops.h and attention.h fix (attention,
// SwiGLU, RMSNorm): the portable code's operations in the same order, 8 lanes at a time, so
// an AVX2-only CPU gets the same bits as the portable code and the AVX-512 forms. The
// 16-lane sums are two 8-lane halves (lanes 0-7 and 8-15). Built with -ffp-contract=off
// (CMakeLists.txt): fusing a mul and an add into an FMA would change the rounding.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/attention.h"
#include "kernels/attention_groups.h"
#include "kernels/ops.h"

namespace hearth::kernels {
namespace {

// Lanes [0, r) of 8 (r may exceed 8).
inline __m256i tail8(int64_t r) {
  const int n = static_cast<int>(std::clamp<int64_t>(r, 0, 8));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// exp_fixed (ops.cpp) on 8 lanes: the same operations.
inline __m256 exp8_fixed(__m256 x) {
  const __m256 live = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_GE_OQ);  // not NaN
  const __m256 big = _mm256_cmp_ps(x, _mm256_set1_ps(88.0f), _CMP_GT_OQ);
  const __m256 xc = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
  const __m256 magic = _mm256_set1_ps(12582912.0f);
  __m256 t = _mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f));
  t = _mm256_add_ps(t, magic);
  const __m256 n = _mm256_sub_ps(t, magic);
  __m256 r = _mm256_sub_ps(xc, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f)));
  r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(-2.12194440e-4f)));
  __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 720.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(0.5f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 y = _mm256_blendv_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)),
                                    _mm256_set1_ps(__builtin_inff()), big);
  return _mm256_and_ps(y, live);
}

// Lane tree of a 16-lane vector held as halves lo (lanes 0-7) and hi (8-15).
inline float lane_tree(__m256 lo, __m256 hi) {
  const __m256 s8 = _mm256_add_ps(lo, hi);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

// Steps 2-4 of the lane trees of 16 keys (s8[j]: key j after step 1, lanes l + l + 8),
// into scores[0..16) in key order.
inline void lane_trees16(const __m256* s8, float* out) {
  __m256 w[8], y[4], z[2];
  for (int p = 0; p < 8; ++p)  // lanes l, l + 4: [key 2p | key 2p + 1]
    w[p] = _mm256_add_ps(_mm256_permute2f128_ps(s8[2 * p], s8[2 * p + 1], 0x20),
                         _mm256_permute2f128_ps(s8[2 * p], s8[2 * p + 1], 0x31));
  for (int p = 0; p < 4; ++p)  // lanes l, l + 2: 128-bit lane L = [key 4p+L (2) | key 4p+2+L (2)]
    y[p] = _mm256_add_ps(_mm256_shuffle_ps(w[2 * p], w[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm256_shuffle_ps(w[2 * p], w[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  for (int p = 0; p < 2; ++p)  // lanes l, l + 1: element 4L + m holds key 8p + 2m + L
    z[p] = _mm256_add_ps(_mm256_shuffle_ps(y[2 * p], y[2 * p + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm256_shuffle_ps(y[2 * p], y[2 * p + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  _mm256_storeu_ps(out, _mm256_permutevar8x32_ps(z[0], order));
  _mm256_storeu_ps(out + 8, _mm256_permutevar8x32_ps(z[1], order));
}

// 8 f16 of the KV cache, widened to f32 (exact; F16C comes with the AVX2 level).
inline __m256 halves8(const f16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// attention_groups' kernel (attention_groups.h): NQ heads (1..4) of C * 16 dimensions each.
struct Heads {
  template <int NQ, int C>
  static void run(const float* q, int64_t q_stride, const f16_t* k, const f16_t* v, int64_t stride,
                  int64_t n_kv, float scale, float* scores, float* out, int64_t out_stride) {
    float mx[NQ];
    for (int i = 0; i < NQ; ++i) mx[i] = -INFINITY;

    for (int64_t j0 = 0; j0 < n_kv; j0 += 16) {
      const int nk = static_cast<int>(std::min<int64_t>(16, n_kv - j0));
      __m256 s8[NQ][16];
      for (int jj = 0; jj < 16; ++jj) {
        if (jj >= nk) {
          for (int i = 0; i < NQ; ++i) s8[i][jj] = _mm256_setzero_ps();
          continue;
        }
        const f16_t* kj = k + (j0 + jj) * stride;
        __m256 lo[NQ], hi[NQ];
        for (int i = 0; i < NQ; ++i) lo[i] = hi[i] = _mm256_setzero_ps();
        for (int c = 0; c < C; ++c) {
          const __m256 klo = halves8(kj + 16 * c), khi = halves8(kj + 16 * c + 8);
          for (int i = 0; i < NQ; ++i) {
            const float* qi = q + i * q_stride + 16 * c;
            lo[i] = _mm256_add_ps(lo[i], _mm256_mul_ps(_mm256_loadu_ps(qi), klo));
            hi[i] = _mm256_add_ps(hi[i], _mm256_mul_ps(_mm256_loadu_ps(qi + 8), khi));
          }
        }
        for (int i = 0; i < NQ; ++i) s8[i][jj] = _mm256_add_ps(lo[i], hi[i]);  // lanes l, l + 8
      }
      for (int i = 0; i < NQ; ++i) {
        alignas(32) float s[16];
        lane_trees16(s8[i], s);
        float* si = scores + i * n_kv + j0;
        for (int jj = 0; jj < nk; ++jj) {
          si[jj] = s[jj] * scale;
          mx[i] = std::max(mx[i], si[jj]);
        }
      }
    }

    // e_j = exp_fixed(s_j - max) in place, and their 16-lane sum (halves: keys 0-7 and 8-15
    // of each 16).
    float inv[NQ];
    for (int i = 0; i < NQ; ++i) {
      const __m256 vmax = _mm256_set1_ps(mx[i]);
      float* s = scores + i * n_kv;
      __m256 sum[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
      for (int64_t j0 = 0; j0 < n_kv; j0 += 8) {
        const __m256i m = tail8(n_kv - j0);
        const __m256 x = _mm256_maskload_ps(s + j0, m);
        const __m256 e = _mm256_and_ps(exp8_fixed(_mm256_sub_ps(x, vmax)), _mm256_castsi256_ps(m));
        _mm256_maskstore_ps(s + j0, m, e);
        sum[(j0 / 8) % 2] = _mm256_add_ps(sum[(j0 / 8) % 2], e);  // tail lanes add +0
      }
      inv[i] = 1.0f / lane_tree(sum[0], sum[1]);
    }

    // out = (sum_j e_j v_j) * inv, 32 dimensions and up to 2 heads at a time (16 registers).
    for (int i0 = 0; i0 < NQ; i0 += 2) {
      const int nq = std::min(2, NQ - i0);
      for (int d0 = 0; d0 < 16 * C; d0 += 32) {
        __m256 acc[2][4];
        for (auto& a : acc)
          for (__m256& x : a) x = _mm256_setzero_ps();
        for (int64_t j = 0; j < n_kv; ++j) {
          const f16_t* vj = v + j * stride + d0;
          __m256 vc[4];
          for (int c = 0; c < 4; ++c) vc[c] = halves8(vj + 8 * c);
          for (int i = 0; i < nq; ++i) {
            const __m256 e = _mm256_set1_ps(scores[(i0 + i) * n_kv + j]);
            for (int c = 0; c < 4; ++c) acc[i][c] = _mm256_add_ps(acc[i][c], _mm256_mul_ps(e, vc[c]));
          }
        }
        for (int i = 0; i < nq; ++i) {
          const __m256 vi = _mm256_set1_ps(inv[i0 + i]);
          for (int c = 0; c < 4; ++c)
            _mm256_storeu_ps(out + (i0 + i) * out_stride + d0 + 8 * c, _mm256_mul_ps(acc[i][c], vi));
        }
      }
    }
  }
};

}  // namespace

void attention_heads_avx2(const float* q, int64_t q_stride, int64_t n_q, const f16_t* k,
                          const f16_t* v, int64_t stride, int64_t n_kv, int64_t hd, float scale,
                          float* scores, float* out, int64_t out_stride) {
  attention_groups<Heads>(q, q_stride, n_q, k, v, stride, n_kv, hd, scale, scores, out, out_stride);
}

void swiglu_avx2(const float* gate, const float* up, float* out, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i m = tail8(n - i);
    const __m256 g = _mm256_maskload_ps(gate + i, m);
    const __m256 e = exp8_fixed(_mm256_xor_ps(g, _mm256_set1_ps(-0.0f)));  // -g
    const __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, e));
    _mm256_maskstore_ps(out + i, m, _mm256_mul_ps(s, _mm256_maskload_ps(up + i, m)));
  }
}

// Elements 8c .. 8c + 3 and 8c + 4 .. 8c + 7 are lanes 0-3 and 4-7 of the f64 sums: lane l
// adds its squares in the portable order i = l, l + 8, l + 16, ...
void rmsnorm_avx2(const float* x, const float* w, float* y, int64_t n, float eps) {
  __m256d acc[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
  for (int64_t i = 0; i < n; i += 8) {
    const __m256 xv = _mm256_maskload_ps(x + i, tail8(n - i));  // the tail adds +0
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(xv));
    const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(xv, 1));
    acc[0] = _mm256_add_pd(acc[0], _mm256_mul_pd(lo, lo));
    acc[1] = _mm256_add_pd(acc[1], _mm256_mul_pd(hi, hi));
  }
  const __m256d s4 = _mm256_add_pd(acc[0], acc[1]);
  const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
  const double sum_sq = _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
  const __m256 scale = _mm256_set1_ps(rmsnorm_scale(sum_sq, n, eps));
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i m = tail8(n - i);
    const __m256 v = _mm256_mul_ps(_mm256_maskload_ps(x + i, m), scale);
    _mm256_maskstore_ps(y + i, m, _mm256_mul_ps(v, _mm256_maskload_ps(w + i, m)));
  }
}

}  // namespace hearth::kernels
