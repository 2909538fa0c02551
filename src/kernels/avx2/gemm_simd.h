// Tiled matrix products for the legacy quant types, shared by avx2/gemm_avx2.cpp and
// avx512/gemm_avx512.cpp (each instantiates them with its own Isa policy; see
// legacy_simd.h for why everything sits in an unnamed namespace).
//
// A tile is R weight rows x T activation rows. Per 32-element block each weight block is
// decoded once and each activation block loaded once, then used R x T times, so the work
// per block pair is one integer dot, one conversion and two multiplies instead of a whole
// vec_dot. The per-pair arithmetic is the same as vec_dot_blocks' (exact i32 block dot,
// scaled in f32 once per block), so results differ from it only in the f32 summation order.
#pragma once

// The gemm files use the block steps only, not the activation quantizers defined beside them.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "kernels/avx2/legacy_simd.h"
#pragma GCC diagnostic pop
#include "kernels/half.h"

namespace hearth::kernels {
namespace {

inline float h2f(f16_t h) { return _cvtsh_ss(h); }  // F16C, one instruction

template <class Step, class Isa, int R, int T>
void gemm_tile(int64_t nb, const uint8_t* w, int64_t w_stride, const uint8_t* x,
               int64_t x_stride, float* y, int64_t ldy) {
  using W = typename Step::W;
  using X = typename Step::X;
  const W* wr[R];
  const X* xt[T];
  for (int r = 0; r < R; ++r) wr[r] = reinterpret_cast<const W*>(w + r * w_stride);
  for (int t = 0; t < T; ++t) xt[t] = reinterpret_cast<const X*>(x + t * x_stride);
  __m256 acc[R][T];
  float accm[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      acc[r][t] = _mm256_setzero_ps();
      accm[r][t] = 0;
    }
  // The next R rows (contiguous after these) are fetched while these are computed: with
  // one token (decode) the tile is bound by memory, and R interleaved row streams are
  // more than the hardware prefetcher follows. A prefetch never faults past the end.
  const char* next = reinterpret_cast<const char*>(w + R * w_stride);
  const int64_t next_step = R * static_cast<int64_t>(sizeof(W));
  for (int64_t b = 0; b < nb; ++b) {
    _mm_prefetch(next + b * next_step, _MM_HINT_T0);
    _mm_prefetch(next + b * next_step + 64, _MM_HINT_T0);
    __m256 dw[R], dx[T];
    float mw[R], sx[T];
    for (int r = 0; r < R; ++r) {
      dw[r] = _mm256_set1_ps(h2f(wr[r][b].d));
      if constexpr (Step::kMin) mw[r] = h2f(wr[r][b].m);
    }
    for (int t = 0; t < T; ++t) {
      dx[t] = _mm256_set1_ps(h2f(xt[t][b].d));
      if constexpr (Step::kMin) sx[t] = h2f(xt[t][b].s);
    }
    for (int t = 0; t < T; ++t)
      for (int r = 0; r < R; ++r) {
        const __m256 s = _mm256_cvtepi32_ps(Step::template dot<Isa>(wr[r][b], xt[t][b]));
        acc[r][t] = _mm256_fmadd_ps(_mm256_mul_ps(s, dx[t]), dw[r], acc[r][t]);
        if constexpr (Step::kMin) accm[r][t] += mw[r] * sx[t];
      }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) y[t * ldy + r] = hsum256(acc[r][t]) + accm[r][t];
}

// y[t * ldy + r] = dot(weight row r, activation row t) for r < n_rows, t < n_tokens.
template <class Step, class Isa, int R, int T>
void gemm_blocks(int64_t n, const void* vw, int64_t w_stride, int64_t n_rows, const void* vx,
                 int64_t x_stride, int64_t n_tokens, float* y, int64_t ldy) {
  const auto* w = static_cast<const uint8_t*>(vw);
  const auto* x = static_cast<const uint8_t*>(vx);
  const int64_t nb = n / kQK;
  int64_t r = 0;
  for (; r + R <= n_rows; r += R) {
    int64_t t = 0;
    for (; t + T <= n_tokens; t += T)
      gemm_tile<Step, Isa, R, T>(nb, w + r * w_stride, w_stride, x + t * x_stride, x_stride,
                                 y + t * ldy + r, ldy);
    for (; t < n_tokens; ++t)
      gemm_tile<Step, Isa, R, 1>(nb, w + r * w_stride, w_stride, x + t * x_stride, x_stride,
                                 y + t * ldy + r, ldy);
  }
  for (; r < n_rows; ++r)
    for (int64_t t = 0; t < n_tokens; ++t)
      vec_dot_blocks<Step, Isa>(n, &y[t * ldy + r], w + r * w_stride, x + t * x_stride);
}

}  // namespace
}  // namespace hearth::kernels
