// Attention of one query head over the cached keys and values of its KV head.
#pragma once

#include <cstdint>

namespace hearth::kernels {

// out[hd] = sum_j softmax_j(scale * q . k_j) * v_j   for j < n_kv
//   q: [hd] f32; k, v: n_kv rows of hd f32, row j at k + j * stride (stride >= hd).
//   scores: room for n_kv floats (caller-owned scratch, overwritten).
// The q . k dots sum in one fixed order on every CPU (16 lanes, then a fixed tree; code
// compiled once, for the baseline ISA), so attention gives the same bits whatever
// HEARTH_ISA selects: with the packed gemm's scalar twin that makes a prompt's logits
// under HEARTH_ISA=scalar equal to the AVX-512 VNNI ones.
void attention_head(const float* q, const float* k, const float* v, int64_t stride, int64_t n_kv,
                    int64_t hd, float scale, float* scores, float* out);

// The portable code attention_head runs where the CPU has no AVX-512, and its AVX-512
// form (avx512/attention_avx512.cpp): the same bits (tests/kernels/gemm_test.cpp).
void attention_head_portable(const float* q, const float* k, const float* v, int64_t stride,
                             int64_t n_kv, int64_t hd, float scale, float* scores, float* out);
void attention_head_avx512(const float* q, const float* k, const float* v, int64_t stride,
                           int64_t n_kv, int64_t hd, float scale, float* scores, float* out);

// The same with plain scalar loops: the reference the test compares against.
void attention_head_ref(const float* q, const float* k, const float* v, int64_t stride,
                        int64_t n_kv, int64_t hd, float scale, float* scores, float* out);

}  // namespace hearth::kernels
