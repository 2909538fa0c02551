// Scalar reference kernels for the K-quants (Q4_K, Q5_K, Q6_K weights; Q8_K activations).
//
// Layouts are in blocks_k.h. The dequantizers evaluate in the same float order as the
// gguf Python package ((d*sc)*q - dmin*m), so they match it bit for bit. The dot
// products accumulate q*q8 products in integers per sub-block, scale by the sub-block's
// integer scale, and only then apply the float super-block scales, as ggml's reference
// does. The quantizers follow ggml's published k-quant algorithms: a weighted
// least-squares search over candidate scales per sub-block (with a min for Q4_K/Q5_K,
// symmetric for Q6_K), then 6-bit (or 8-bit) quantization of those scales. Their output
// is byte-identical to llama.cpp's quantize_row_q{4,5,6,8}_K_ref (k_quants_test checks it
// against golden output of those functions).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/blocks_k.h"
#include "kernels/type_kernels.h"

namespace hearth::kernels {
namespace {

// Round to nearest, ties to even (as ggml's quantizers do): adding 1.5 * 2^23 leaves the
// rounded integer in the low mantissa bits, exact for |x| < 2^22. Saturates outside that
// range so garbage input (inf, NaN) cannot overflow a conversion.
inline int nearest_int(float x) {
  if (!(std::fabs(x) < 4194303.f)) return x > 0 ? 4194303 : -4194303;
  const float biased = x + 12582912.f;
  int32_t bits;
  std::memcpy(&bits, &biased, 4);
  return (bits & 0x007fffff) - 0x00400000;
}

// ---------------------------------------------------------------- dequantize

void to_float_q4_k(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4K*>(vx);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = f16_to_f32(x[i].d), dmin = f16_to_f32(x[i].dmin);
    uint8_t sm[16];
    unpack_scales_mins_k4(x[i].scales, sm);
    const uint8_t* q = x[i].qs;
    for (int c = 0; c < 4; ++c, q += 32) {
      const float d0 = d * sm[2 * c], m0 = dmin * sm[8 + 2 * c];
      const float d1 = d * sm[2 * c + 1], m1 = dmin * sm[8 + 2 * c + 1];
      for (int l = 0; l < 32; ++l) *y++ = d0 * static_cast<float>(q[l] & 0xf) - m0;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] >> 4) - m1;
    }
  }
}

void to_float_q5_k(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ5K*>(vx);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = f16_to_f32(x[i].d), dmin = f16_to_f32(x[i].dmin);
    uint8_t sm[16];
    unpack_scales_mins_k4(x[i].scales, sm);
    const uint8_t* q = x[i].qs;
    const uint8_t* qh = x[i].qh;
    for (int c = 0; c < 4; ++c, q += 32) {
      const float d0 = d * sm[2 * c], m0 = dmin * sm[8 + 2 * c];
      const float d1 = d * sm[2 * c + 1], m1 = dmin * sm[8 + 2 * c + 1];
      const int b0 = 2 * c, b1 = 2 * c + 1;
      for (int l = 0; l < 32; ++l)
        *y++ = d0 * static_cast<float>((q[l] & 0xf) | (((qh[l] >> b0) & 1) << 4)) - m0;
      for (int l = 0; l < 32; ++l)
        *y++ = d1 * static_cast<float>((q[l] >> 4) | (((qh[l] >> b1) & 1) << 4)) - m1;
    }
  }
}

// The 6-bit quant of element 128*g + 32*r + l (see blocks_k.h), in [0, 63].
inline int q6_at(const BlockQ6K& b, int g, int r, int l) {
  const uint8_t lo = b.ql[64 * g + 32 * (r & 1) + l];
  const int low4 = r < 2 ? (lo & 0xf) : (lo >> 4);
  const int high2 = (b.qh[32 * g + l] >> (2 * r)) & 3;
  return low4 | (high2 << 4);
}

void to_float_q6_k(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ6K*>(vx);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = f16_to_f32(x[i].d);
    for (int g = 0; g < 2; ++g)
      for (int r = 0; r < 4; ++r)
        for (int l = 0; l < 32; ++l) {
          const int e = 128 * g + 32 * r + l;
          const float ds = d * static_cast<float>(x[i].scales[e / 16]);
          y[e] = ds * static_cast<float>(q6_at(x[i], g, r, l) - 32);
        }
    y += kQK_K;
  }
}

void to_float_q8_k(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ8K*>(vx);
  for (int64_t i = 0; i < n / kQK_K; ++i)
    for (int l = 0; l < kQK_K; ++l) *y++ = x[i].d * static_cast<float>(x[i].qs[l]);
}

// ---------------------------------------------------------------- quantize

// Q8_K (activations): d = -max/127 where max is the signed value of largest magnitude
// (the first one, on ties), so the extreme maps to -127 exactly; q = round(x/d).
void from_float_q8_k(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockQ8K*>(vy);
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    float amax = 0, max = 0;
    for (int l = 0; l < kQK_K; ++l) {
      const float ax = std::fabs(x[l]);
      if (ax > amax) {
        amax = ax;
        max = x[l];
      }
    }
    if (amax == 0) {
      std::memset(&y[i], 0, sizeof(BlockQ8K));
      continue;
    }
    const float iscale = -127.f / max;
    for (int l = 0; l < kQK_K; ++l)
      y[i].qs[l] = static_cast<int8_t>(std::min(127, nearest_int(iscale * x[l])));
    for (int k = 0; k < kQK_K / 16; ++k) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[i].qs[16 * k + l];
      y[i].bsums[k] = static_cast<int16_t>(sum);
    }
    y[i].d = 1 / iscale;
  }
}

// Fits x ~ scale*L - mn with L in [0, nmax] under weights w, mn >= 0: first a plain
// min/max grid, then nstep candidate grids (rmin + rdelta*s + nmax levels over the
// range), each refined by weighted least squares for (scale, min); keeps the best
// weighted squared error. Returns scale; *mn_out = mn.
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* mn_out,
                    float rmin, float rdelta, int nstep) {
  float lo = x[0], hi = x[0], sum_w = 0, sum_x = 0;
  for (int i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  lo = std::min(lo, 0.f);
  if (hi == lo) {
    std::fill(L, L + n, uint8_t{0});
    *mn_out = -lo;
    return 0.f;
  }
  float iscale = static_cast<float>(nmax) / (hi - lo);
  float scale = 1 / iscale, best_err = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(std::clamp(nearest_int(iscale * (x[i] - lo)), 0, nmax));
    const float diff = scale * L[i] + lo - x[i];
    best_err += w[i] * diff * diff;
  }
  uint8_t trial[32];
  for (int s = 0; s <= nstep; ++s) {
    iscale = (rmin + rdelta * static_cast<float>(s) + static_cast<float>(nmax)) / (hi - lo);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - lo)), 0, nmax);
      trial[i] = static_cast<uint8_t>(l);
      sum_l += w[i] * l;
      sum_l2 += w[i] * l * l;
      sum_xl += w[i] * l * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det <= 0) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (this_min > 0) {  // the model is x = scale*L - mn with mn >= 0
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    float err = 0;
    for (int i = 0; i < n; ++i) {
      const float diff = this_scale * trial[i] + this_min - x[i];
      err += w[i] * diff * diff;
    }
    if (err < best_err) {
      std::copy(trial, trial + n, L);
      best_err = err;
      scale = this_scale;
      lo = this_min;
    }
  }
  *mn_out = -lo;
  return scale;
}

// Shared by Q4_K and Q5_K: per 32-element sub-block fit (scale, min), quantize both to
// 6 bits against the super-block maxima, then requantize x with the stored scales.
// Writes d, dmin (f16 bits), packed scales, and L[256] in [0, nmax].
void quantize_superblock_k4(const float* x, int nmax, float rmin, int nstep, f16_t* d_out,
                            f16_t* dmin_out, uint8_t packed[12], uint8_t L[kQK_K]) {
  float scales[8], mins[8], w[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(xs[l]);
    scales[j] = fit_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], rmin, 0.1f, nstep);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t sc[8], m[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = static_cast<uint8_t>(std::min(63, nearest_int(inv_scale * scales[j])));
    m[j] = static_cast<uint8_t>(std::min(63, nearest_int(inv_min * mins[j])));
  }
  pack_scales_mins_k4(sc, m, packed);
  *d_out = f32_to_f16(max_scale / 63.f);
  *dmin_out = f32_to_f16(max_min / 63.f);
  const float d = f16_to_f32(*d_out), dmin = f16_to_f32(*dmin_out);
  for (int j = 0; j < 8; ++j) {
    const float ds = d * sc[j];
    if (ds == 0) continue;  // keep the fit's L (all decode to -dm anyway)
    const float dm = dmin * m[j];
    for (int l = 0; l < 32; ++l)
      L[32 * j + l] =
          static_cast<uint8_t>(std::clamp(nearest_int((x[32 * j + l] + dm) / ds), 0, nmax));
  }
}

void from_float_q4_k(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockQ4K*>(vy);
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    quantize_superblock_k4(x, 15, -1.f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l)
        y[i].qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
  }
}

void from_float_q5_k(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockQ5K*>(vy);
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    quantize_superblock_k4(x, 31, -0.5f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
    std::memset(y[i].qh, 0, sizeof(y[i].qh));
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) {
        const int l0 = L[64 * c + l], l1 = L[64 * c + 32 + l];
        y[i].qs[32 * c + l] = static_cast<uint8_t>((l0 & 15) | ((l1 & 15) << 4));
        y[i].qh[l] |= static_cast<uint8_t>(((l0 >> 4) << (2 * c)) | ((l1 >> 4) << (2 * c + 1)));
      }
  }
}

// Symmetric fit x ~ scale*(L - nmax), L - nmax in [-nmax, nmax-1], weighted by x^2:
// tries 19 grids around nmax levels for the largest-magnitude value and keeps the one
// with the best least-squares scale. Returns scale (signed); L in [0, 2*nmax - 1].
float fit_scale_symmetric(int n, int nmax, const float* x, uint8_t* L) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < 1e-15f) {
    std::fill(L, L + n, uint8_t{0});
    return 0.f;
  }
  // Grid 0 (nmax levels) first, then +-0.1 .. +-0.9 around it; keep the grid whose
  // least-squares scale sum_lx/sum_l2 reduces the error most (by sum_lx^2/sum_l2).
  float best_scale = 0, best = 0;
  for (int k = 0; k < 19; ++k) {
    const int s = k == 0 ? 0 : (k <= 9 ? k - 10 : k - 9);
    const float iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(s)) / max;
    float sum_lx = 0, sum_l2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      const float w = x[i] * x[i];
      sum_lx += w * x[i] * static_cast<float>(l);
      sum_l2 += w * static_cast<float>(l * l);
    }
    if (k == 0 || (sum_l2 > 0 && sum_lx * sum_lx > best * sum_l2)) {
      best_scale = sum_l2 > 0 ? sum_lx / sum_l2 : 0.f;
      best = best_scale * sum_lx;
      for (int i = 0; i < n; ++i)
        L[i] = static_cast<uint8_t>(nmax + std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1));
    }
  }
  return best_scale;
}

void from_float_q6_k(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockQ6K*>(vy);
  uint8_t L[kQK_K];
  float scales[16];
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    float max_scale = 0, max_abs = 0;
    for (int j = 0; j < 16; ++j) {
      scales[j] = fit_scale_symmetric(16, 32, x + 16 * j, L + 16 * j);
      if (std::fabs(scales[j]) > max_abs) {
        max_abs = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    if (max_abs < 1e-15f) {
      std::memset(&y[i], 0, sizeof(BlockQ6K));
      continue;
    }
    const float iscale = -128.f / max_scale;
    y[i].d = f32_to_f16(1 / iscale);
    for (int j = 0; j < 16; ++j)
      y[i].scales[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[j])));
    const float d = f16_to_f32(y[i].d);
    for (int j = 0; j < 16; ++j) {
      const float ds = d * y[i].scales[j];
      if (ds == 0) continue;
      for (int l = 0; l < 16; ++l)
        L[16 * j + l] =
            static_cast<uint8_t>(32 + std::clamp(nearest_int(x[16 * j + l] / ds), -32, 31));
    }
    for (int g = 0; g < 2; ++g)
      for (int l = 0; l < 32; ++l) {
        const uint8_t* Lg = L + 128 * g + l;
        y[i].ql[64 * g + l] = static_cast<uint8_t>((Lg[0] & 15) | ((Lg[64] & 15) << 4));
        y[i].ql[64 * g + 32 + l] = static_cast<uint8_t>((Lg[32] & 15) | ((Lg[96] & 15) << 4));
        y[i].qh[32 * g + l] = static_cast<uint8_t>((Lg[0] >> 4) | ((Lg[32] >> 4) << 2) |
                                                   ((Lg[64] >> 4) << 4) | ((Lg[96] >> 4) << 6));
      }
  }
}

// ---------------------------------------------------------------- dot products

// sum over the super-block of sc[j] * dot(q, q8) for 8 sub-blocks of 32, in integers.
// q[256] holds the unsigned quants in element order.
inline int32_t scaled_dot_32(const uint8_t* q, const int8_t* q8, const uint8_t* sc) {
  int32_t total = 0;
  for (int j = 0; j < 8; ++j) {
    int32_t s = 0;
    for (int l = 0; l < 32; ++l) s += q[32 * j + l] * q8[32 * j + l];
    total += sc[j] * s;
  }
  return total;
}

// sum over the 8 sub-blocks of m[j] * (sum of q8 in sub-block j), from Q8_K's bsums.
inline int32_t mins_dot(const uint8_t* m, const int16_t* bsums) {
  int32_t s = 0;
  for (int j = 0; j < 8; ++j) s += m[j] * (bsums[2 * j] + bsums[2 * j + 1]);
  return s;
}

void vec_dot_q4_k(int64_t n, float* out, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ4K*>(vw);
  const auto* x = static_cast<const BlockQ8K*>(vx);
  float sum = 0;
  uint8_t q[kQK_K], sm[16];
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) {
        q[64 * c + l] = w[i].qs[32 * c + l] & 0xf;
        q[64 * c + 32 + l] = w[i].qs[32 * c + l] >> 4;
      }
    unpack_scales_mins_k4(w[i].scales, sm);
    const int32_t sumi = scaled_dot_32(q, x[i].qs, sm);
    const int32_t summ = mins_dot(sm + 8, x[i].bsums);
    sum += f16_to_f32(w[i].d) * x[i].d * static_cast<float>(sumi) -
           f16_to_f32(w[i].dmin) * x[i].d * static_cast<float>(summ);
  }
  *out = sum;
}

void vec_dot_q5_k(int64_t n, float* out, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ5K*>(vw);
  const auto* x = static_cast<const BlockQ8K*>(vx);
  float sum = 0;
  uint8_t q[kQK_K], sm[16];
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) {
        const int h = w[i].qh[l];
        q[64 * c + l] =
            static_cast<uint8_t>((w[i].qs[32 * c + l] & 0xf) | (((h >> (2 * c)) & 1) << 4));
        q[64 * c + 32 + l] =
            static_cast<uint8_t>((w[i].qs[32 * c + l] >> 4) | (((h >> (2 * c + 1)) & 1) << 4));
      }
    unpack_scales_mins_k4(w[i].scales, sm);
    const int32_t sumi = scaled_dot_32(q, x[i].qs, sm);
    const int32_t summ = mins_dot(sm + 8, x[i].bsums);
    sum += f16_to_f32(w[i].d) * x[i].d * static_cast<float>(sumi) -
           f16_to_f32(w[i].dmin) * x[i].d * static_cast<float>(summ);
  }
  *out = sum;
}

void vec_dot_q6_k(int64_t n, float* out, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ6K*>(vw);
  const auto* x = static_cast<const BlockQ8K*>(vx);
  float sum = 0;
  int8_t q[kQK_K];
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    for (int g = 0; g < 2; ++g)
      for (int r = 0; r < 4; ++r)
        for (int l = 0; l < 32; ++l)
          q[128 * g + 32 * r + l] = static_cast<int8_t>(q6_at(w[i], g, r, l) - 32);
    int32_t sumi = 0;
    for (int j = 0; j < 16; ++j) {  // sub-blocks of 16
      int32_t s = 0;
      for (int l = 0; l < 16; ++l) s += q[16 * j + l] * x[i].qs[16 * j + l];
      sumi += w[i].scales[j] * s;
    }
    sum += f16_to_f32(w[i].d) * x[i].d * static_cast<float>(sumi);
  }
  *out = sum;
}

}  // namespace

void fill_ref_k(KernelTable& t) {
  auto set = [&t](TensorType type, ToFloatFn to_float, FromFloatFn from_float, VecDotFn dot) {
    TypeKernels& k = t.types[static_cast<uint32_t>(type)];
    k.to_float = to_float;
    k.from_float = from_float;
    k.vec_dot_type = dot ? TensorType::Q8_K : type;
    k.vec_dot = dot;
  };
  set(TensorType::Q4_K, to_float_q4_k, from_float_q4_k, vec_dot_q4_k);
  set(TensorType::Q5_K, to_float_q5_k, from_float_q5_k, vec_dot_q5_k);
  set(TensorType::Q6_K, to_float_q6_k, from_float_q6_k, vec_dot_q6_k);
  set(TensorType::Q8_K, to_float_q8_k, from_float_q8_k, nullptr);
}

}  // namespace hearth::kernels
