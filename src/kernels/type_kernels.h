// Per-weight-type kernels behind one table, filled once at start from CPU features.
//
// For a weight type W, a matrix-vector product first converts the f32 activations to
// W's activation type (vec_dot_type: F32, Q8_0, Q8_1 or Q8_K, as in GGUF's block
// layouts), then calls vec_dot once per weight row. Every entry has a scalar reference
// twin (type_kernels_ref) that SIMD variants are tested against.
//
// Units: n is a count of elements and a multiple of the type's block size.
#pragma once

#include <cstdint>

#include "format/tensor_type.h"

namespace hearth::kernels {

using format::TensorType;

// F32, F16 and BF16 weights (vec_dot against f32 activations) have one f32 order on every
// ISA: lane l of kFloatDotLanes sums w[i] * x[i] for i = l (mod kFloatDotLanes) with fma,
// in order, the last partial group padded with zeros; then lane l += lane l + s for
// s = 32, 16, 8, 4, 2, 1 (quants_ref.cpp's dot_float_lanes; AVX2: 8 ymm, AVX-512: 4 zmm).
constexpr int64_t kFloatDotLanes = 64;

// y (f32, n) = dequantize(x)
using ToFloatFn = void (*)(const void* x, float* y, int64_t n);
// y (type, n) = quantize(x); used for activations and by `hearth quantize` later.
using FromFloatFn = void (*)(const float* x, void* y, int64_t n);
// *out = dot(w_row (weight type, n), x (vec_dot_type, n))
using VecDotFn = void (*)(int64_t n, float* out, const void* w_row, const void* x);
// y[t * ldy + r] = dot(w row r, x row t) for r < n_rows, t < n_tokens: a tile of a matrix
// product, rows w_stride / x_stride bytes apart. Optional (null: matmul loops vec_dot,
// which is also the reference a gemm is tested against).
using GemmFn = void (*)(int64_t n, const void* w, int64_t w_stride, int64_t n_rows,
                        const void* x, int64_t x_stride, int64_t n_tokens, float* y,
                        int64_t ldy);

// Prefill path over packed operands (AVX2, AVX-512 VNNI; the scalar twin in the reference
// table). pack_x quantizes
// activation rows into token tiles of kPackedTileTokens (one layout for every weight type,
// see avx512/gemm_packed.cpp): tiles [tile0, tile1) of x [n_tokens, n] f32 into xp, which
// holds packed_x_bytes(n, n_tokens) bytes; tokens past n_tokens are packed as zeros.
using PackXFn = void (*)(const float* x, int64_t n, int64_t n_tokens, int64_t tile0,
                         int64_t tile1, void* xp);
// y[t * ldy + r] = dot(w row r, x token t), r < n_rows, t < n_tokens, with x packed by
// pack_x; the weight rows are repacked into 16-row panels on the fly (a few KiB on the
// stack, no copy of the weights is kept).
using PackedGemmFn = void (*)(int64_t n, const void* w, int64_t w_stride, int64_t n_rows,
                              const void* xp, int64_t n_tokens, float* y, int64_t ldy);
constexpr int64_t kPackedTileTokens = 8;
// The f32 sum of a row restarts every kPackedPanelBlocks blocks of 32 (a weight panel's
// depth) and the partial sums are added in order: part of the packed gemm's arithmetic,
// which gemm_packed_ref.cpp reproduces.
constexpr int64_t kPackedPanelBlocks = 32;
// Per block of 32 activations and tile: 8 d, 8 exact s = d * sum(q), 8 f16-rounded s (f32),
// 2 x 8 i32 o16 = -32 * sum(q) over each half of 16 (Q6_K's offset) and 8 x 32 int8 quants.
constexpr int64_t kPackedXBlockBytes = 5 * 8 * 4 + 8 * 32;
inline int64_t packed_x_bytes(int64_t n, int64_t n_tokens) {
  return (n_tokens + kPackedTileTokens - 1) / kPackedTileTokens * (n / 32) * kPackedXBlockBytes;
}

struct TypeKernels {
  ToFloatFn to_float = nullptr;
  FromFloatFn from_float = nullptr;
  TensorType vec_dot_type = TensorType::F32;
  VecDotFn vec_dot = nullptr;
  GemmFn gemm = nullptr;
  PackXFn pack_x = nullptr;            // set together with packed_gemm
  PackedGemmFn packed_gemm = nullptr;
  // The packed gemm's arithmetic straight from the row-major weights, for a few tokens
  // (avx512/gemm_rowdot.cpp): bit-identical results, no panel to build. Activations
  // converted by rowdot_pack_x (token ranges in kPackedTileTokens units) into
  // rowdot_x_bytes(n, n_tokens) bytes.
  PackXFn rowdot_pack_x = nullptr;
  PackedGemmFn rowdot_gemm = nullptr;
  // The same for weights interleaved by kernels/interleave.h (rows in whole groups of 16,
  // w_stride the file's row bytes): il_rowdot_gemm with activations from rowdot_pack_x,
  // il_packed_gemm from pack_x. AVX2 and AVX-512 VNNI (AVX2 has no file-layout rowdot_gemm:
  // its packed_gemm serves a few tokens there).
  PackedGemmFn il_rowdot_gemm = nullptr;
  PackedGemmFn il_packed_gemm = nullptr;  // packed_gemm over interleaved weights
};
// The rowdot kernels' activations, per token and block of 32: q[32] int8, d, s, sh (f32) and
// o16[2] (int32), laid out per token as q[nb][32], d[nb], s[nb], sh[nb], o16[nb][2].
constexpr int64_t kRowdotXBlockBytes = 32 + 3 * 4 + 2 * 4;
inline int64_t rowdot_x_bytes(int64_t n, int64_t n_tokens) {
  return n / 32 * kRowdotXBlockBytes * n_tokens;
}

// Dispatched (widest ISA available, capped by HEARTH_ISA) and scalar reference tables.
// Entries are null for types without kernels.
const TypeKernels& type_kernels(TensorType t);
const TypeKernels& type_kernels_ref(TensorType t);
// The ISA the dispatched table uses: "avx512_vnni", "avx512", "avx2" or "scalar".
const char* kernels_isa();

// Tables per ISA, filled by the files in kernels/ (ref), kernels/avx2/, kernels/avx512/.
// Each fill function overwrites the entries it has kernels for and leaves the rest.
struct KernelTable {
  TypeKernels types[32];
};
// The table dispatch builds (once, for type_kernels) for the ISA platform::isa_name() names
// at the call, HEARTH_ISA included; *isa (if given) is set to that ISA's name. Tests build
// each ISA level's table with it under a HEARTH_ISA cap.
KernelTable build_kernel_table(const char** isa = nullptr);
void fill_ref_legacy(KernelTable& t);    // F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q8_1
void fill_ref_k(KernelTable& t);         // Q4_K Q5_K Q6_K Q8_K
void fill_avx2_legacy(KernelTable& t);
void fill_avx2_k(KernelTable& t);
void fill_avx512_legacy(KernelTable& t);
void fill_avx512_k(KernelTable& t);
void fill_avx2_gemm(KernelTable& t);    // tiled gemm for Q4_0 Q4_1 Q5_0 Q5_1 Q8_0
void fill_avx512_gemm(KernelTable& t);
// Packed prefill gemm (VNNI): Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K.
void fill_avx512_packed(KernelTable& t);
// The packed gemm's arithmetic on AVX2 (avx2/gemm_packed_avx2.cpp), for the file's layout and
// interleaved weights: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K.
void fill_avx2_packed(KernelTable& t);
// The scalar reference of the packed gemm (same arithmetic, for the ref table).
void fill_ref_packed(KernelTable& t);
// Rowdot (VNNI): Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K; interleaved: Q4_0 Q4_1 Q8_0 Q4_K Q6_K.
void fill_avx512_rowdot(KernelTable& t);

}  // namespace hearth::kernels
