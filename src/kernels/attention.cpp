#include "kernels/attention.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"

namespace hearth::kernels {
namespace {

constexpr int kLanes = 16;

// Lanes l and l + w are added for w = 8, 4, 2, 1; the result is lane 0.
inline float lane_tree(float* acc) {
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

// Lane l sums the products i = l (mod 16) in order, then the lane tree. No FMA
// contraction: this file is built for the baseline ISA (and with -ffp-contract=off).
inline float dot_fixed(const float* a, const f16_t* b, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += a[i + l] * f16_to_f32(b[i + l]);
  for (int l = 0; i < n; ++i, ++l) acc[l] += a[i] * f16_to_f32(b[i]);
  return lane_tree(acc);
}

void attention_one(const float* q, const f16_t* k, const f16_t* v, int64_t stride, int64_t n_kv,
                   int64_t hd, float scale, float* e, float* out) {
  float m = -INFINITY;
  for (int64_t j = 0; j < n_kv; ++j) {
    e[j] = dot_fixed(q, k + j * stride, hd) * scale;
    m = std::max(m, e[j]);
  }
  float acc[kLanes] = {};
  for (int64_t j = 0; j < n_kv; ++j) {
    e[j] = exp_fixed(e[j] - m);
    acc[j % kLanes] += e[j];
  }
  const float inv = 1.0f / lane_tree(acc);
  std::fill(out, out + hd, 0.0f);
  for (int64_t j = 0; j < n_kv; ++j) {
    const float p = e[j];
    const f16_t* vj = v + j * stride;
    for (int64_t d = 0; d < hd; ++d) out[d] += p * f16_to_f32(vj[d]);
  }
  for (int64_t d = 0; d < hd; ++d) out[d] *= inv;
}

}  // namespace

void attention_heads_portable(const float* q, int64_t q_stride, int64_t n_q, const f16_t* k,
                              const f16_t* v, int64_t stride, int64_t n_kv, int64_t hd,
                              float scale, float* scores, float* out, int64_t out_stride) {
  for (int64_t i = 0; i < n_q; ++i)
    attention_one(q + i * q_stride, k, v, stride, n_kv, hd, scale, scores + i * n_kv,
                  out + i * out_stride);
}

void attention_heads(const float* q, int64_t q_stride, int64_t n_q, const f16_t* k, const f16_t* v,
                     int64_t stride, int64_t n_kv, int64_t hd, float scale, float* scores,
                     float* out, int64_t out_stride) {
  static const auto form =
      f32_form(attention_heads_avx512, attention_heads_avx2, attention_heads_portable);
  form(q, q_stride, n_q, k, v, stride, n_kv, hd, scale, scores, out, out_stride);
}

void attention_head_ref(const float* q, const f16_t* k, const f16_t* v, int64_t stride,
                        int64_t n_kv, int64_t hd, float scale, float* scores, float* out) {
  for (int64_t j = 0; j < n_kv; ++j) {
    float s = 0;
    for (int64_t d = 0; d < hd; ++d) s += q[d] * f16_to_f32(k[j * stride + d]);
    scores[j] = s * scale;
  }
  softmax(scores, n_kv);
  std::fill(out, out + hd, 0.0f);
  for (int64_t j = 0; j < n_kv; ++j)
    for (int64_t d = 0; d < hd; ++d) out[d] += scores[j] * f16_to_f32(v[j * stride + d]);
}

}  // namespace hearth::kernels
