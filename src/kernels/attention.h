// Attention of query heads over the cached keys and values of their KV head.
#pragma once

#include <cstdint>

#include "kernels/half.h"

namespace hearth::kernels {

// For each of n_q query heads that share one KV head and see the same n_kv cache rows
// (the n_rep heads of one token in grouped-query attention):
//   out_i[hd] = sum_j softmax_j(scale * q_i . k_j) * v_j   for j < n_kv
//   q: head i at q + i * q_stride (hd f32); out likewise at out + i * out_stride.
//   k, v: n_kv rows of hd f16 (the KV cache's type), row j at k + j * stride (stride >= hd);
//         each is widened to f32 exactly, then everything below is f32.
//   scores: room for n_q * n_kv floats (caller-owned scratch, overwritten).
//
// Every head's result is fixed by this order of f32 operations, on every CPU and however
// the heads are grouped into calls:
//   s_j = (16-lane dot of q and k_j: lane l sums the products d = l (mod 16) in order from
//          0, then lanes l += l + w for w = 8, 4, 2, 1) * scale
//   m   = max_j s_j;  e_j = exp_fixed(s_j - m)   (ops.h)
//   sum = 16-lane sum of the e_j (lane l: j = l (mod 16), in order), the same lane tree
//   out[d] = (sum over j in order, from 0, of e_j * v_j[d]) * (1 / sum)
// with every multiply and add rounded on its own (no FMA). So a token's attention is the
// same bits alone, in a prompt chunk or in a batch of streams, and under any HEARTH_ISA;
// with the packed gemm's scalar twin that makes a prompt's logits under
// HEARTH_ISA=scalar equal to the AVX-512 VNNI ones.
void attention_heads(const float* q, int64_t q_stride, int64_t n_q, const f16_t* k, const f16_t* v,
                     int64_t stride, int64_t n_kv, int64_t hd, float scale, float* scores,
                     float* out, int64_t out_stride);

// The portable code attention_heads runs where the CPU has neither AVX-512 nor AVX2, and
// its AVX-512 and AVX2 forms (avx512/attention_avx512.cpp, avx2/f32_avx2.cpp), which work
// on up to 4 heads at once (each K and V row loaded once for all of them): the same bits
// (tests/kernels/gemm_test.cpp).
void attention_heads_portable(const float* q, int64_t q_stride, int64_t n_q, const f16_t* k,
                              const f16_t* v, int64_t stride, int64_t n_kv, int64_t hd,
                              float scale, float* scores, float* out, int64_t out_stride);
void attention_heads_avx512(const float* q, int64_t q_stride, int64_t n_q, const f16_t* k,
                            const f16_t* v, int64_t stride, int64_t n_kv, int64_t hd, float scale,
                            float* scores, float* out, int64_t out_stride);
void attention_heads_avx2(const float* q, int64_t q_stride, int64_t n_q, const f16_t* k,
                          const f16_t* v, int64_t stride, int64_t n_kv, int64_t hd, float scale,
                          float* scores, float* out, int64_t out_stride);

// One head with plain scalar loops and std::exp: the reference the test compares against.
void attention_head_ref(const float* q, const f16_t* k, const f16_t* v, int64_t stride,
                        int64_t n_kv, int64_t hd, float scale, float* scores, float* out);

}  // namespace hearth::kernels
