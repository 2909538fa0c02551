// Scalar reference kernels for F32, F16, BF16 and the legacy 32-element quant types.
//
// Quantizers round exactly as GGUF's reference quantizers do, so a file we write
// dequantizes the same in llama.cpp. Dot products sum integers per block and scale once
// per block (sumi * d_w * d_x, plus m_w * s_x for the _1 types), which is the numerical
// recipe of the reference implementation; the SIMD variants must agree with these up to
// float summation order.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "kernels/blocks.h"
#include "kernels/type_kernels.h"

namespace hearth::kernels {
namespace {

// Element j's fifth bit, as 0 or 16.
inline int q5_high(uint32_t qh, int j) { return static_cast<int>((qh >> j) & 1u) << 4; }

inline uint32_t load_qh(const uint8_t* qh) {
  uint32_t v;
  std::memcpy(&v, qh, 4);
  return v;
}

// ---- f32 / f16 / bf16 ----

void f32_to_float(const void* x, float* y, int64_t n) {
  std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float));
}
void f32_from_float(const float* x, void* y, int64_t n) {
  std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float));
}
// The float types' one f32 order (type_kernels.h, kFloatDotLanes): lane l of 64 sums
// w[i] * x[i] for i = l (mod 64) with fma, in order, the last partial group of 64 padded with
// zeros; then lane l += lane l + s for s = 32, 16, 8, 4, 2, 1.
template <class T, class ToF32>
float dot_float_lanes(int64_t n, const T* w, const float* x, ToF32 to_f32) {
  float acc[kFloatDotLanes] = {};
  for (int64_t i0 = 0; i0 < n; i0 += kFloatDotLanes)
    for (int64_t l = 0; l < kFloatDotLanes; ++l) {
      const int64_t i = i0 + l;
      acc[l] = std::fmaf(i < n ? to_f32(w[i]) : 0.0f, i < n ? x[i] : 0.0f, acc[l]);
    }
  for (int64_t s = kFloatDotLanes / 2; s >= 1; s /= 2)
    for (int64_t l = 0; l < s; ++l) acc[l] += acc[l + s];
  return acc[0];
}

void f32_vec_dot(int64_t n, float* out, const void* w, const void* x) {
  *out = dot_float_lanes(n, static_cast<const float*>(w), static_cast<const float*>(x),
                         [](float v) { return v; });
}

void f16_to_float(const void* x, float* y, int64_t n) {
  const f16_t* h = static_cast<const f16_t*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] = f16_to_f32(h[i]);
}
void f16_from_float(const float* x, void* y, int64_t n) {
  f16_t* h = static_cast<f16_t*>(y);
  for (int64_t i = 0; i < n; ++i) h[i] = f32_to_f16(x[i]);
}
void f16_vec_dot(int64_t n, float* out, const void* w, const void* x) {
  *out = dot_float_lanes(n, static_cast<const f16_t*>(w), static_cast<const float*>(x),
                         [](f16_t v) { return f16_to_f32(v); });
}

void bf16_to_float(const void* x, float* y, int64_t n) {
  const bf16_t* h = static_cast<const bf16_t*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(h[i]);
}
void bf16_from_float(const float* x, void* y, int64_t n) {
  bf16_t* h = static_cast<bf16_t*>(y);
  for (int64_t i = 0; i < n; ++i) h[i] = f32_to_bf16(x[i]);
}
void bf16_vec_dot(int64_t n, float* out, const void* w, const void* x) {
  *out = dot_float_lanes(n, static_cast<const bf16_t*>(w), static_cast<const float*>(x),
                         [](bf16_t v) { return bf16_to_f32(v); });
}

// ---- block helpers shared by the quantizers ----

// Value with the largest magnitude (sign kept) and that magnitude.
inline void abs_max(const float* x, float& amax, float& max) {
  amax = 0.0f;
  max = 0.0f;
  for (int j = 0; j < kQK; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
}

inline void min_max(const float* x, float& min, float& max) {
  min = FLT_MAX;
  max = -FLT_MAX;
  for (int j = 0; j < kQK; ++j) {
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
}

// ---- Q4_0 ----

void q4_0_from_float(const float* x, void* vy, int64_t n) {
  BlockQ4_0* y = static_cast<BlockQ4_0*>(vy);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float amax, max;
    abs_max(x, amax, max);
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
      const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f)));
      y[b].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}
void q4_0_to_float(const void* vx, float* y, int64_t n) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(vx);
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = static_cast<float>((x[b].qs[j] & 0x0f) - 8) * d;
      y[j + 16] = static_cast<float>((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}
void q4_0_vec_dot(int64_t n, float* out, const void* vw, const void* vx) {
  const BlockQ4_0* w = static_cast<const BlockQ4_0*>(vw);
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(vx);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int sumi = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      sumi += ((w[b].qs[j] & 0x0f) - 8) * x[b].qs[j];
      sumi += ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + 16];
    }
    sum += static_cast<float>(sumi) * (f16_to_f32(w[b].d) * f16_to_f32(x[b].d));
  }
  *out = sum;
}

// ---- Q4_1 ----

void q4_1_from_float(const float* x, void* vy, int64_t n) {
  BlockQ4_1* y = static_cast<BlockQ4_1*>(vy);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float min, max;
    min_max(x, min, max);
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    y[b].m = f32_to_f16(min);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - min) * id + 0.5f)));
      const int q1 =
          std::min(15, static_cast<int>(static_cast<int8_t>((x[j + 16] - min) * id + 0.5f)));
      y[b].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}
void q4_1_to_float(const void* vx, float* y, int64_t n) {
  const BlockQ4_1* x = static_cast<const BlockQ4_1*>(vx);
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d), m = f16_to_f32(x[b].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = static_cast<float>(x[b].qs[j] & 0x0f) * d + m;
      y[j + 16] = static_cast<float>(x[b].qs[j] >> 4) * d + m;
    }
  }
}
void q4_1_vec_dot(int64_t n, float* out, const void* vw, const void* vx) {
  const BlockQ4_1* w = static_cast<const BlockQ4_1*>(vw);
  const BlockQ8_1* x = static_cast<const BlockQ8_1*>(vx);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int sumi = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      sumi += (w[b].qs[j] & 0x0f) * x[b].qs[j];
      sumi += (w[b].qs[j] >> 4) * x[b].qs[j + 16];
    }
    sum += (f16_to_f32(w[b].d) * f16_to_f32(x[b].d)) * static_cast<float>(sumi) +
           f16_to_f32(w[b].m) * f16_to_f32(x[b].s);
  }
  *out = sum;
}

// ---- Q5_0 ----

void q5_0_from_float(const float* x, void* vy, int64_t n) {
  BlockQ5_0* y = static_cast<BlockQ5_0*>(vy);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float amax, max;
    abs_max(x, amax, max);
    const float d = max / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(31, static_cast<int>(static_cast<int8_t>(x[j] * id + 16.5f)));
      const int q1 = std::min(31, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 16.5f)));
      y[b].qs[j] = static_cast<uint8_t>((q0 & 0x0f) | ((q1 & 0x0f) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
    }
    std::memcpy(y[b].qh, &qh, 4);
  }
}
void q5_0_to_float(const void* vx, float* y, int64_t n) {
  const BlockQ5_0* x = static_cast<const BlockQ5_0*>(vx);
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    const uint32_t qh = load_qh(x[b].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = static_cast<float>(((x[b].qs[j] & 0x0f) | q5_high(qh, j)) - 16) * d;
      y[j + 16] = static_cast<float>(((x[b].qs[j] >> 4) | q5_high(qh, j + 16)) - 16) * d;
    }
  }
}
void q5_0_vec_dot(int64_t n, float* out, const void* vw, const void* vx) {
  const BlockQ5_0* w = static_cast<const BlockQ5_0*>(vw);
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(vx);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    const uint32_t qh = load_qh(w[b].qh);
    int sumi = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      sumi += (((w[b].qs[j] & 0x0f) | q5_high(qh, j)) - 16) * x[b].qs[j];
      sumi += (((w[b].qs[j] >> 4) | q5_high(qh, j + 16)) - 16) * x[b].qs[j + 16];
    }
    sum += static_cast<float>(sumi) * (f16_to_f32(w[b].d) * f16_to_f32(x[b].d));
  }
  *out = sum;
}

// ---- Q5_1 ----

void q5_1_from_float(const float* x, void* vy, int64_t n) {
  BlockQ5_1* y = static_cast<BlockQ5_1*>(vy);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float min, max;
    min_max(x, min, max);
    const float d = (max - min) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    y[b].m = f32_to_f16(min);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(31, static_cast<int>((x[j] - min) * id + 0.5f));
      const int q1 = std::min(31, static_cast<int>((x[j + 16] - min) * id + 0.5f));
      y[b].qs[j] = static_cast<uint8_t>((q0 & 0x0f) | ((q1 & 0x0f) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
    }
    std::memcpy(y[b].qh, &qh, 4);
  }
}
void q5_1_to_float(const void* vx, float* y, int64_t n) {
  const BlockQ5_1* x = static_cast<const BlockQ5_1*>(vx);
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d), m = f16_to_f32(x[b].m);
    const uint32_t qh = load_qh(x[b].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = static_cast<float>((x[b].qs[j] & 0x0f) | q5_high(qh, j)) * d + m;
      y[j + 16] = static_cast<float>((x[b].qs[j] >> 4) | q5_high(qh, j + 16)) * d + m;
    }
  }
}
void q5_1_vec_dot(int64_t n, float* out, const void* vw, const void* vx) {
  const BlockQ5_1* w = static_cast<const BlockQ5_1*>(vw);
  const BlockQ8_1* x = static_cast<const BlockQ8_1*>(vx);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    const uint32_t qh = load_qh(w[b].qh);
    int sumi = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      sumi += ((w[b].qs[j] & 0x0f) | q5_high(qh, j)) * x[b].qs[j];
      sumi += ((w[b].qs[j] >> 4) | q5_high(qh, j + 16)) * x[b].qs[j + 16];
    }
    sum += (f16_to_f32(w[b].d) * f16_to_f32(x[b].d)) * static_cast<float>(sumi) +
           f16_to_f32(w[b].m) * f16_to_f32(x[b].s);
  }
  *out = sum;
}

// ---- Q8_0 / Q8_1 ----

void q8_0_from_float(const float* x, void* vy, int64_t n) {
  BlockQ8_0* y = static_cast<BlockQ8_0*>(vy);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float amax, max;
    abs_max(x, amax, max);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < kQK; ++j) y[b].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}
void q8_0_to_float(const void* vx, float* y, int64_t n) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(vx);
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
  }
}
void q8_0_vec_dot(int64_t n, float* out, const void* vw, const void* vx) {
  const BlockQ8_0* w = static_cast<const BlockQ8_0*>(vw);
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(vx);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int sumi = 0;
    for (int j = 0; j < kQK; ++j) sumi += w[b].qs[j] * x[b].qs[j];
    sum += static_cast<float>(sumi) * (f16_to_f32(w[b].d) * f16_to_f32(x[b].d));
  }
  *out = sum;
}

void q8_1_from_float(const float* x, void* vy, int64_t n) {
  BlockQ8_1* y = static_cast<BlockQ8_1*>(vy);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float amax, max;
    abs_max(x, amax, max);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      y[b].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
      sum += y[b].qs[j];
    }
    y[b].s = f32_to_f16(static_cast<float>(sum) * d);
  }
}
void q8_1_to_float(const void* vx, float* y, int64_t n) {
  const BlockQ8_1* x = static_cast<const BlockQ8_1*>(vx);
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
  }
}

void set(KernelTable& t, TensorType type, ToFloatFn to, FromFloatFn from, TensorType dot_type,
         VecDotFn dot) {
  t.types[static_cast<uint32_t>(type)] = TypeKernels{to, from, dot_type, dot};
}

}  // namespace

void fill_ref_legacy(KernelTable& t) {
  set(t, TensorType::F32, f32_to_float, f32_from_float, TensorType::F32, f32_vec_dot);
  set(t, TensorType::F16, f16_to_float, f16_from_float, TensorType::F32, f16_vec_dot);
  set(t, TensorType::BF16, bf16_to_float, bf16_from_float, TensorType::F32, bf16_vec_dot);
  set(t, TensorType::Q4_0, q4_0_to_float, q4_0_from_float, TensorType::Q8_0, q4_0_vec_dot);
  set(t, TensorType::Q4_1, q4_1_to_float, q4_1_from_float, TensorType::Q8_1, q4_1_vec_dot);
  set(t, TensorType::Q5_0, q5_0_to_float, q5_0_from_float, TensorType::Q8_0, q5_0_vec_dot);
  set(t, TensorType::Q5_1, q5_1_to_float, q5_1_from_float, TensorType::Q8_1, q5_1_vec_dot);
  set(t, TensorType::Q8_0, q8_0_to_float, q8_0_from_float, TensorType::Q8_0, q8_0_vec_dot);
  // Q8_1 is an activation type only: no weight dot product.
  set(t, TensorType::Q8_1, q8_1_to_float, q8_1_from_float, TensorType::Q8_1, nullptr);
}

}  // namespace hearth::kernels
