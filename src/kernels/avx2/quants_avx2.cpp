// AVX2 + FMA + F16C kernels for F32, F16, BF16 and the legacy quant types.
// Called only after the CPU check in dispatch.cpp.
#include <immintrin.h>

#include "kernels/avx2/legacy_simd.h"
#include "kernels/half.h"
#include "kernels/type_kernels.h"

namespace hearth::kernels {
namespace {

struct Avx2 {
  static __m256i dot_u8s8(__m256i u, __m256i s) {
    // Pair sums fit in i16: u is a 4/5-bit quant or |i8| <= 128, s is an i8.
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
  }
  static __m256i bits_to_bytes(uint32_t qh) {
    // Byte i gets byte i/8 of qh; OR with all bits but bit i%8 set, then compare to all ones.
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(static_cast<int>(qh)),
        _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
    const __m256i v = _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
  }
};

// Float weight rows against f32 activations in the one order of type_kernels.h
// (kFloatDotLanes lanes as 8 ymm: acc[k] holds lanes 8k .. 8k + 7); Load(p) gives 8 floats
// from element p, Scalar(v) one. The last partial group goes through zero-padded copies.
template <class T, class Load, class Scalar>
float dot_float(int64_t n, const T* w, const float* x, Load load, Scalar scalar) {
  constexpr int kVecs = static_cast<int>(kFloatDotLanes / 8);
  __m256 acc[kVecs];
  for (__m256& a : acc) a = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + kFloatDotLanes <= n; i += kFloatDotLanes)
    for (int k = 0; k < kVecs; ++k)
      acc[k] = _mm256_fmadd_ps(load(w + i + 8 * k), _mm256_loadu_ps(x + i + 8 * k), acc[k]);
  if (i < n) {
    alignas(32) float wt[kFloatDotLanes] = {}, xt[kFloatDotLanes] = {};
    for (int64_t j = i; j < n; ++j) {
      wt[j - i] = scalar(w[j]);
      xt[j - i] = x[j];
    }
    for (int k = 0; k < kVecs; ++k)
      acc[k] = _mm256_fmadd_ps(_mm256_load_ps(wt + 8 * k), _mm256_load_ps(xt + 8 * k), acc[k]);
  }
  for (int s = kVecs / 2; s >= 1; s /= 2)  // lanes + 32, + 16, + 8
    for (int k = 0; k < s; ++k) acc[k] = _mm256_add_ps(acc[k], acc[k + s]);
  __m128 v = _mm_add_ps(_mm256_castps256_ps128(acc[0]), _mm256_extractf128_ps(acc[0], 1));  // + 4
  v = _mm_add_ps(v, _mm_movehl_ps(v, v));                                                   // + 2
  v = _mm_add_ss(v, _mm_movehdup_ps(v));                                                    // + 1
  return _mm_cvtss_f32(v);
}

void f32_vec_dot(int64_t n, float* out, const void* w, const void* x) {
  *out = dot_float(
      n, static_cast<const float*>(w), static_cast<const float*>(x),
      [](const float* p) { return _mm256_loadu_ps(p); }, [](float v) { return v; });
}

void f16_vec_dot(int64_t n, float* out, const void* w, const void* x) {
  *out = dot_float(
      n, static_cast<const f16_t*>(w), static_cast<const float*>(x),
      [](const f16_t* p) {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      },
      [](f16_t v) { return f16_to_f32(v); });
}

void bf16_vec_dot(int64_t n, float* out, const void* w, const void* x) {
  *out = dot_float(
      n, static_cast<const bf16_t*>(w), static_cast<const float*>(x),
      [](const bf16_t* p) {
        const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
      },
      [](bf16_t v) { return bf16_to_f32(v); });
}

void set_dot(KernelTable& t, TensorType type, VecDotFn fn) {
  t.types[static_cast<uint32_t>(type)].vec_dot = fn;
}

}  // namespace

void fill_avx2_legacy(KernelTable& t) {
  set_dot(t, TensorType::F32, f32_vec_dot);
  set_dot(t, TensorType::F16, f16_vec_dot);
  set_dot(t, TensorType::BF16, bf16_vec_dot);
  set_dot(t, TensorType::Q4_0, vec_dot_blocks<Q4_0Step, Avx2>);
  set_dot(t, TensorType::Q4_1, vec_dot_blocks<Q4_1Step, Avx2>);
  set_dot(t, TensorType::Q5_0, vec_dot_blocks<Q5_0Step, Avx2>);
  set_dot(t, TensorType::Q5_1, vec_dot_blocks<Q5_1Step, Avx2>);
  set_dot(t, TensorType::Q8_0, vec_dot_blocks<Q8_0Step, Avx2>);
  t.types[static_cast<uint32_t>(TensorType::Q8_0)].from_float = q8_0_from_float_simd;
  t.types[static_cast<uint32_t>(TensorType::Q8_1)].from_float = q8_1_from_float_simd;
}

}  // namespace hearth::kernels
