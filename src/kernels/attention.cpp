#include "kernels/attention.h"

#include <algorithm>

#include <string>

#include "kernels/ops.h"
#include "platform/cpu_features.h"

namespace hearth::kernels {
namespace {

// out += p * v; independent lanes, so the compiler vectorizes it without reassociation.
inline void axpy(float p, const float* v, float* out, int64_t n) {
  for (int64_t d = 0; d < n; ++d) out[d] += p * v[d];
}

// Lane l sums the products i = l (mod 16) in order; then lanes l and l + w are added for
// w = 8, 4, 2, 1. No FMA contraction: this file is built for the baseline ISA.
inline float dot_fixed(const float* a, const float* b, int64_t n) {
  constexpr int kLanes = 16;
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += a[i + l] * b[i + l];
  for (int l = 0; i < n; ++i, ++l) acc[l] += a[i] * b[i];
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

template <class Dot>
void attention(const float* q, const float* k, const float* v, int64_t stride, int64_t n_kv,
               int64_t hd, float scale, float* scores, float* out, Dot dot) {
  for (int64_t j = 0; j < n_kv; ++j) scores[j] = dot(q, k + j * stride) * scale;
  softmax(scores, n_kv);
  std::fill(out, out + hd, 0.0f);
  for (int64_t j = 0; j < n_kv; ++j) axpy(scores[j], v + j * stride, out, hd);
}

}  // namespace

void attention_head_portable(const float* q, const float* k, const float* v, int64_t stride,
                             int64_t n_kv, int64_t hd, float scale, float* scores, float* out) {
  attention(q, k, v, stride, n_kv, hd, scale, scores, out,
            [&](const float* a, const float* b) { return dot_fixed(a, b, hd); });
}

void attention_head(const float* q, const float* k, const float* v, int64_t stride, int64_t n_kv,
                    int64_t hd, float scale, float* scores, float* out) {
  static const bool avx512 = [] {
    const std::string isa = platform::isa_name();
    return platform::cpu_features().avx512 && (isa == "avx512" || isa == "avx512_vnni");
  }();
  (avx512 ? attention_head_avx512 : attention_head_portable)(q, k, v, stride, n_kv, hd, scale,
                                                               scores, out);
}

void attention_head_ref(const float* q, const float* k, const float* v, int64_t stride,
                        int64_t n_kv, int64_t hd, float scale, float* scores, float* out) {
  attention(q, k, v, stride, n_kv, hd, scale, scores, out, [&](const float* a, const float* b) {
    float s = 0;
    for (int64_t d = 0; d < hd; ++d) s += a[d] * b[d];
    return s;
  });
}

}  // namespace hearth::kernels
