// How the SIMD forms of attention_heads (avx512/attention_avx512.cpp, avx2/f32_avx2.cpp)
// split their work: head sizes 64, 128 and 256 (C = 4, 8, 16 chunks of 16) go to the
// form's kernel in groups of up to 4 heads; other sizes to the portable code, which is the
// definition. Included only by those files, each with its own ISA flags.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/attention.h"

namespace hearth::kernels {

// Kernel::run<NQ, C>(q, q_stride, k, v, stride, n_kv, scale, scores, out, out_stride)
// computes NQ (1..4) heads of C * 16 dimensions.
template <class Kernel, int C>
inline void attention_groups_c(const float* q, int64_t q_stride, int64_t n_q, const f16_t* k,
                               const f16_t* v, int64_t stride, int64_t n_kv, float scale,
                               float* scores, float* out, int64_t out_stride) {
  for (int64_t i = 0; i < n_q; i += 4) {
    const float* qi = q + i * q_stride;
    float* oi = out + i * out_stride;
    float* si = scores + i * n_kv;
    switch (std::min<int64_t>(4, n_q - i)) {
      case 1: Kernel::template run<1, C>(qi, q_stride, k, v, stride, n_kv, scale, si, oi, out_stride); break;
      case 2: Kernel::template run<2, C>(qi, q_stride, k, v, stride, n_kv, scale, si, oi, out_stride); break;
      case 3: Kernel::template run<3, C>(qi, q_stride, k, v, stride, n_kv, scale, si, oi, out_stride); break;
      default: Kernel::template run<4, C>(qi, q_stride, k, v, stride, n_kv, scale, si, oi, out_stride); break;
    }
  }
}

template <class Kernel>
inline void attention_groups(const float* q, int64_t q_stride, int64_t n_q, const f16_t* k,
                             const f16_t* v, int64_t stride, int64_t n_kv, int64_t hd, float scale,
                             float* scores, float* out, int64_t out_stride) {
  switch (hd) {
    case 64:
      return attention_groups_c<Kernel, 4>(q, q_stride, n_q, k, v, stride, n_kv, scale, scores, out, out_stride);
    case 128:
      return attention_groups_c<Kernel, 8>(q, q_stride, n_q, k, v, stride, n_kv, scale, scores, out, out_stride);
    case 256:
      return attention_groups_c<Kernel, 16>(q, q_stride, n_q, k, v, stride, n_kv, scale, scores, out, out_stride);
    default:
      return attention_heads_portable(q, q_stride, n_q, k, v, stride, n_kv, hd, scale, scores, out,
                                      out_stride);
  }
}

}  // namespace hearth::kernels
