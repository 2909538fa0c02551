// attention_heads' AVX-512 form: the same f32 operations in the same order as the portable
// code in attention.cpp, so the result is bit-identical on every ISA. It works on up to 4
// heads at once, so each K and V row is loaded once for all of them:
//   scores: for each key, each head's 16-lane products; 16 keys' lane vectors are then
//           summed with the portable lane tree (l += l + 8, 4, 2, 1) all at once by
//           shuffles, which leaves one vector of 16 scores;
//   softmax: exp_fixed on 16 scores at a time, the 16-lane sum and its lane tree;
//   values: 4 heads x 64 dimensions of accumulators in registers, one mul and one add per
//           key and element, in key order.
// CMakeLists.txt builds this file with -ffp-contract=off: fusing a mul and an add into an
// FMA would change the rounding.

#include <algorithm>
#include <cmath>

#include "kernels/attention.h"
#include "kernels/attention_groups.h"
#include "kernels/avx512/exp_avx512.h"
#include "kernels/intrinsics.h"

namespace hearth::kernels {
namespace {

// 16 f16 of the KV cache, widened to f32 (exact).
inline __m512 halves16(const f16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// Loads a K or V row chunk into a register once for all heads: without this the compiler
// folds the load into each head's multiply, loading it up to 4 times.
inline void keep_in_register(__m512& v) { asm("" : "+v"(v)); }

// a[i]'s lane tree (lanes l += l + w for w = 8, 4, 2, 1) for 16 vectors at once; lane j
// of the result is a[j]'s sum. Each step adds the same pairs of lanes as the tree; the
// shuffles only move lanes, so every sum is rounded exactly as in the portable code.
inline __m512 lane_trees16(const __m512* a) {
  __m512 u[8], w[4], y[2];
  for (int p = 0; p < 8; ++p)  // lanes l, l + 8: [a.l0-7 + a.l8-15 | b.l0-7 + b.l8-15]
    u[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  for (int p = 0; p < 4; ++p)  // lanes l, l + 4: 128-bit lane k holds key 4p + k
    w[p] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * p], u[2 * p + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(u[2 * p], u[2 * p + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  for (int p = 0; p < 2; ++p)  // lanes l, l + 2: lane k = [key 8p+k (2) | key 8p+4+k (2)]
    y[p] = _mm512_add_ps(_mm512_shuffle_ps(w[2 * p], w[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(w[2 * p], w[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  // lanes l, l + 1: element 4k + m holds key k + 4m.
  const __m512 z = _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_ps(y[0], y[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(order, z);
}

// One vector's lane tree, lane 0 of the result.
inline float lane_tree(__m512 acc) {
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));     // lanes 0, 1 += lanes 2, 3
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));  // lane 0 += lane 1
}

// attention_groups' kernel (attention_groups.h): NQ heads (1..4) of C * 16 dimensions each.
struct Heads {
  template <int NQ, int C>
  static void run(const float* q, int64_t q_stride, const f16_t* k, const f16_t* v, int64_t stride,
                  int64_t n_kv, float scale, float* scores, float* out, int64_t out_stride) {
    const __m512 vscale = _mm512_set1_ps(scale);
    __m512 mx[NQ];
    for (int i = 0; i < NQ; ++i) mx[i] = _mm512_set1_ps(-INFINITY);

    // Scores, 16 keys at a time.
    for (int64_t j0 = 0; j0 < n_kv; j0 += 16) {
      const int nk = static_cast<int>(std::min<int64_t>(16, n_kv - j0));
      __m512 acc[NQ][16];
      for (int jj = 0; jj < nk; ++jj) {
        const f16_t* kj = k + (j0 + jj) * stride;
        __m512 a[NQ];
        for (int i = 0; i < NQ; ++i) a[i] = _mm512_setzero_ps();
        for (int c = 0; c < C; ++c) {
          __m512 kc = halves16(kj + 16 * c);
          keep_in_register(kc);
          for (int i = 0; i < NQ; ++i)
            a[i] = _mm512_add_ps(a[i], _mm512_mul_ps(_mm512_loadu_ps(q + i * q_stride + 16 * c), kc));
        }
        for (int i = 0; i < NQ; ++i) acc[i][jj] = a[i];
      }
      for (int jj = nk; jj < 16; ++jj)
        for (int i = 0; i < NQ; ++i) acc[i][jj] = _mm512_setzero_ps();
      const __mmask16 m = tail16(nk);
      for (int i = 0; i < NQ; ++i) {
        const __m512 s = _mm512_mul_ps(lane_trees16(acc[i]), vscale);
        _mm512_mask_storeu_ps(scores + i * n_kv + j0, m, s);
        mx[i] = _mm512_mask_max_ps(mx[i], m, mx[i], s);
      }
    }

    // e_j = exp_fixed(s_j - max), in place, and their 16-lane sum.
    float inv[NQ];
    for (int i = 0; i < NQ; ++i) {
      const __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(mx[i]));
      float* s = scores + i * n_kv;
      __m512 sum = _mm512_setzero_ps();
      for (int64_t j0 = 0; j0 < n_kv; j0 += 16) {
        const __mmask16 m = tail16(n_kv - j0);
        const __m512 e = _mm512_maskz_mov_ps(m, exp16_fixed(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j0), vmax)));
        _mm512_mask_storeu_ps(s + j0, m, e);
        sum = _mm512_add_ps(sum, e);  // the tail's lanes add +0: no change
      }
      inv[i] = 1.0f / lane_tree(sum);
    }

    // out = (sum_j e_j v_j) * inv, 64 dimensions at a time.
    for (int c0 = 0; c0 < C; c0 += 4) {
      constexpr int W = C < 4 ? C : 4;
      __m512 acc[NQ][W];
      for (int i = 0; i < NQ; ++i)
        for (int c = 0; c < W; ++c) acc[i][c] = _mm512_setzero_ps();
      for (int64_t j = 0; j < n_kv; ++j) {
        const f16_t* vj = v + j * stride + 16 * c0;
        __m512 vc[W];
        for (int c = 0; c < W; ++c) {
          vc[c] = halves16(vj + 16 * c);
          keep_in_register(vc[c]);
        }
        for (int i = 0; i < NQ; ++i) {
          const __m512 e = _mm512_set1_ps(scores[i * n_kv + j]);
          for (int c = 0; c < W; ++c) acc[i][c] = _mm512_add_ps(acc[i][c], _mm512_mul_ps(e, vc[c]));
        }
      }
      for (int i = 0; i < NQ; ++i) {
        const __m512 vi = _mm512_set1_ps(inv[i]);
        for (int c = 0; c < W; ++c)
          _mm512_storeu_ps(out + i * out_stride + 16 * (c0 + c), _mm512_mul_ps(acc[i][c], vi));
      }
    }
  }
};

}  // namespace

void attention_heads_avx512(const float* q, int64_t q_stride, int64_t n_q, const f16_t* k,
                            const f16_t* v, int64_t stride, int64_t n_kv, int64_t hd, float scale,
                            float* scores, float* out, int64_t out_stride) {
  attention_groups<Heads>(q, q_stride, n_q, k, v, stride, n_kv, hd, scale, scores, out, out_stride);
}

}  // namespace hearth::kernels
