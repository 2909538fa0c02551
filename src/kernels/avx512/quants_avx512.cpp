// AVX-512 (F, BW, VL, DQ; VNNI where present) kernels for F32, F16, BF16 and the legacy
// quant types. Called only after the CPU check in dispatch.cpp.
//
// The quant dot products use the shared 256-bit block kernels (one 32-element block is
// one ymm) with AVX-512 VL instructions: vpdpbusd replaces maddubs + madd, and a mask
// register expands the Q5 fifth bits. 256-bit ops keep three execution ports busy where
// 512-bit ops get two, so per block this is no slower than zmm pairs of blocks.
// GCC 12's AVX-512 intrinsics self-initialise their "undefined" operands and then warn
// about them (GCC bug 105593); the warnings point into the intrinsic headers.

#include <cstdlib>
#include <cstring>

#include "kernels/avx2/legacy_simd.h"
#include "kernels/half.h"
#include "kernels/intrinsics.h"
#include "kernels/type_kernels.h"
#include "platform/cpu_features.h"

namespace hearth::kernels {
namespace {

struct Avx512Vnni {
  static __m256i dot_u8s8(__m256i u, __m256i s) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
  }
  static __m256i bits_to_bytes(uint32_t qh) { return _mm256_movm_epi8(qh); }
};

struct Avx512 {
  static __m256i dot_u8s8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
  }
  static __m256i bits_to_bytes(uint32_t qh) { return _mm256_movm_epi8(qh); }
};

// Float weight rows against f32 activations in the one order of type_kernels.h
// (kFloatDotLanes lanes as 4 zmm: acc[k] holds lanes 16k .. 16k + 15); Load(p) gives 16
// floats from element p, Scalar(v) one. The last partial group goes through zero-padded
// copies.
template <class T, class Load, class Scalar>
float dot_float(int64_t n, const T* w, const float* x, Load load, Scalar scalar) {
  constexpr int kVecs = static_cast<int>(kFloatDotLanes / 16);
  __m512 acc[kVecs];
  for (__m512& a : acc) a = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + kFloatDotLanes <= n; i += kFloatDotLanes)
    for (int k = 0; k < kVecs; ++k)
      acc[k] = _mm512_fmadd_ps(load(w + i + 16 * k), _mm512_loadu_ps(x + i + 16 * k), acc[k]);
  if (i < n) {
    alignas(64) float wt[kFloatDotLanes] = {}, xt[kFloatDotLanes] = {};
    for (int64_t j = i; j < n; ++j) {
      wt[j - i] = scalar(w[j]);
      xt[j - i] = x[j];
    }
    for (int k = 0; k < kVecs; ++k)
      acc[k] = _mm512_fmadd_ps(_mm512_load_ps(wt + 16 * k), _mm512_load_ps(xt + 16 * k), acc[k]);
  }
  for (int s = kVecs / 2; s >= 1; s /= 2)  // lanes + 32, + 16
    for (int k = 0; k < s; ++k) acc[k] = _mm512_add_ps(acc[k], acc[k + s]);
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(acc[0]), _mm512_extractf32x8_ps(acc[0], 1));  // + 8
  __m128 v = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));                     // + 4
  v = _mm_add_ps(v, _mm_movehl_ps(v, v));                                                            // + 2
  v = _mm_add_ss(v, _mm_movehdup_ps(v));                                                             // + 1
  return _mm_cvtss_f32(v);
}

void f32_vec_dot(int64_t n, float* out, const void* w, const void* x) {
  *out = dot_float(
      n, static_cast<const float*>(w), static_cast<const float*>(x),
      [](const float* p) { return _mm512_loadu_ps(p); }, [](float v) { return v; });
}

void f16_vec_dot(int64_t n, float* out, const void* w, const void* x) {
  *out = dot_float(
      n, static_cast<const f16_t*>(w), static_cast<const float*>(x),
      [](const f16_t* p) {
        return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
      },
      [](f16_t v) { return f16_to_f32(v); });
}

void bf16_vec_dot(int64_t n, float* out, const void* w, const void* x) {
  *out = dot_float(
      n, static_cast<const bf16_t*>(w), static_cast<const float*>(x),
      [](const bf16_t* p) {
        const __m512i u =
            _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
        return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
      },
      [](bf16_t v) { return bf16_to_f32(v); });
}

// Mirrors platform::isa_name(): HEARTH_ISA=avx512 (or lower) turns VNNI off. Plain C
// strings here: std::string code instantiated in this file would be compiled for AVX-512.
bool use_vnni() {
  if (!platform::cpu_features().avx512_vnni) return false;
  const char* cap = std::getenv("HEARTH_ISA");
  if (cap == nullptr) return true;
  return std::strcmp(cap, "avx512") != 0 && std::strcmp(cap, "avx2") != 0 &&
         std::strcmp(cap, "scalar") != 0;
}

template <class Isa>
void fill_quants(KernelTable& t) {
  t.types[static_cast<uint32_t>(TensorType::Q4_0)].vec_dot = vec_dot_blocks<Q4_0Step, Isa>;
  t.types[static_cast<uint32_t>(TensorType::Q4_1)].vec_dot = vec_dot_blocks<Q4_1Step, Isa>;
  t.types[static_cast<uint32_t>(TensorType::Q5_0)].vec_dot = vec_dot_blocks<Q5_0Step, Isa>;
  t.types[static_cast<uint32_t>(TensorType::Q5_1)].vec_dot = vec_dot_blocks<Q5_1Step, Isa>;
  t.types[static_cast<uint32_t>(TensorType::Q8_0)].vec_dot = vec_dot_blocks<Q8_0Step, Isa>;
}

}  // namespace

void fill_avx512_legacy(KernelTable& t) {
  t.types[static_cast<uint32_t>(TensorType::F32)].vec_dot = f32_vec_dot;
  t.types[static_cast<uint32_t>(TensorType::F16)].vec_dot = f16_vec_dot;
  t.types[static_cast<uint32_t>(TensorType::BF16)].vec_dot = bf16_vec_dot;
  if (use_vnni())
    fill_quants<Avx512Vnni>(t);
  else
    fill_quants<Avx512>(t);
  t.types[static_cast<uint32_t>(TensorType::Q8_0)].from_float = q8_0_from_float_simd;
  t.types[static_cast<uint32_t>(TensorType::Q8_1)].from_float = q8_1_from_float_simd;
}

}  // namespace hearth::kernels
