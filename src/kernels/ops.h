// Elementwise and row kernels used by the forward passes. All f32, row-major.
#pragma once

#include <cstdint>

#include "format/tensor_type.h"
#include "platform/thread_pool.h"

namespace hearth::kernels {

// y[t, r] = sum_c W[r, c] * x[t, c]
//   W: [n_rows, n_cols] of wtype (GGUF ne0 = n_cols), row-major, read in place.
//   x: [n_tokens, n_cols] f32; y: [n_tokens, n_rows] f32.
//   scratch: at least matmul_scratch_bytes(wtype, n_cols, n_tokens) bytes.
// A row of y never depends on how many rows x has, nor on the ISA: each weight type has one
// summation order for every row (the packed gemm's where the type has one, computed by the
// rowdot kernel for 1 or 2 rows where the CPU has it and by the packed gemm otherwise; else
// the tiled gemm's), so a token's logits are the same bits alone, in a prefill chunk, in a
// batch of streams and on every ISA.
//   interleaved: W is laid out by kernels/interleave.h (interleave_supported said yes for
//     it): one or two rows take the interleaved rowdot kernel where there is one, the rest
//     the packed gemm reading the interleaved rows. The same bits as W unchanged.
void matmul(format::TensorType wtype, const void* W, int64_t n_rows, int64_t n_cols,
            const float* x, int64_t n_tokens, float* y, void* scratch,
            platform::ThreadPool& pool, bool interleaved = false);
int64_t matmul_scratch_bytes(format::TensorType wtype, int64_t n_cols, int64_t n_tokens);
// HEARTH_PACKED_GEMM=0 (read once) turns the packed gemm, rowdot and interleaved weights
// off: every row then takes the tiled gemm, which sums in another order. For comparisons;
// the default is on.
bool packed_gemm_enabled();

// One of several weights that read the same input (matmul_shared).
struct MatmulOut {
  format::TensorType wtype;
  const void* W;   // [n_rows, n_cols]
  int64_t n_rows;
  float* y;        // [n_tokens, n_rows]
  bool interleaved = false;  // see matmul
};
// y_i = x W_i^T for up to kMaxSharedOuts weights reading the same x [n_tokens, n_cols]
// (q, k, v; gate, up): x is converted once per distinct activation type and the rows of
// all the weights are split over the pool in a single run (one barrier, not three).
//   scratch: at least n_outs * max_i matmul_scratch_bytes(wtype_i, n_cols, n_tokens).
constexpr int kMaxSharedOuts = 4;
void matmul_shared(const MatmulOut* outs, int n_outs, int64_t n_cols, const float* x,
                   int64_t n_tokens, void* scratch, platform::ThreadPool& pool);

// y = x / sqrt(mean(x^2) + eps) * w   (n elements; y may alias x)
// The sum of squares is in double, 8 lanes (lane l: i = l (mod 8), in order) then lanes
// l += l + 4, 2, 1; y[i] = (x[i] * scale) * w[i] in f32. Its AVX-512 form
// (avx512/activations_avx512.cpp) and AVX2 form (avx2/f32_avx2.cpp) do the same operations:
// the same bits on every ISA.
void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps);
void rmsnorm_portable(const float* x, const float* w, float* y, int64_t n, float eps);
void rmsnorm_avx512(const float* x, const float* w, float* y, int64_t n, float eps);
void rmsnorm_avx2(const float* x, const float* w, float* y, int64_t n, float eps);
// 1 / sqrt(sum_sq / n + eps), rounded to f32: the scale both forms use.
float rmsnorm_scale(double sum_sq, int64_t n, float eps);
// In place softmax over n values.
void softmax(float* x, int64_t n);
// out[i] = silu(gate[i]) * up[i] = gate[i] / (1 + exp_fixed(-gate[i])) * up[i]
// (out may alias gate or up). Its AVX-512 and AVX2 forms (avx512/activations_avx512.cpp,
// avx2/f32_avx2.cpp) do the same f32 operations, so the bits do not depend on the ISA.
void swiglu(const float* gate, const float* up, float* out, int64_t n);
void swiglu_portable(const float* gate, const float* up, float* out, int64_t n);
void swiglu_avx512(const float* gate, const float* up, float* out, int64_t n);
void swiglu_avx2(const float* gate, const float* up, float* out, int64_t n);

// exp(x) from f32 multiplies and adds only, so its AVX-512 form (avx512/exp_avx512.h) gives
// the same bits: 2^n * p(r) with n = round(x / ln 2), r = x - n ln 2 (two-part ln 2) and p
// the degree-7 Taylor polynomial; within 2 ulp of exp on [-87, 0]. 0 below -87 and for
// NaN, +inf above 88. Used by the attention softmax and SwiGLU.
float exp_fixed(float x);

// Whether the AVX-512 forms of the f32 kernels (attention, SwiGLU, RMSNorm) run: the CPU has
// AVX-512 and HEARTH_ISA does not ask for less; else whether their AVX2 forms
// (avx2/f32_avx2.cpp) do. Their bits equal the portable code's.
bool f32_avx512_forms();
bool f32_avx2_forms();
// The form of an f32 kernel to run: its AVX-512, AVX2 or portable function, by the above.
template <class Fn>
Fn f32_form(Fn avx512, Fn avx2, Fn portable) {
  return f32_avx512_forms() ? avx512 : f32_avx2_forms() ? avx2 : portable;
}
// Rotary embedding. rope_angles fills cs[2*i], cs[2*i+1] = cos, sin of
// pos * freq_scale * freq_base^(-2i/rot_dim) for i < rot_dim/2 (once per position);
// rope_apply rotates one head vector in place with them. neox=false: pairs (2i, 2i+1)
// (GGUF llama); neox=true: pairs (i, i + rot_dim/2) (Gemma, Qwen). Values past rot_dim
// are left as they are.
// freq_factors (rot_dim/2 values, or null) divide each frequency (Llama 3.1 rope_freqs).
void rope_angles(float* cs, int64_t rot_dim, int64_t pos, float freq_base, float freq_scale,
                 const float* freq_factors = nullptr);
void rope_apply(float* x, const float* cs, int64_t rot_dim, bool neox);
// Row of a weight (any supported type) as f32: used for token embeddings.
void get_row(format::TensorType type, const void* W, int64_t n_cols, int64_t row, float* out);

}  // namespace hearth::kernels
