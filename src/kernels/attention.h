// Attention of one query head over the cached keys and values of its KV head.
#pragma once

#include <cstdint>

namespace hearth::kernels {

// out[hd] = sum_j softmax_j(scale * q . k_j) * v_j   for j < n_kv
//   q: [hd] f32; k, v: n_kv rows of hd f32, row j at k + j * stride (stride >= hd).
//   scores: room for n_kv floats (caller-owned scratch, overwritten).
// The q . k dots use the dispatched F32 dot product (SIMD where the CPU has it).
void attention_head(const float* q, const float* k, const float* v, int64_t stride, int64_t n_kv,
                    int64_t hd, float scale, float* scores, float* out);

// The same with plain scalar loops: the reference the test compares against.
void attention_head_ref(const float* q, const float* k, const float* v, int64_t stride,
                        int64_t n_kv, int64_t hd, float scale, float* scores, float* out);

}  // namespace hearth::kernels
