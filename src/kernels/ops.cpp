#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/type_kernels.h"

namespace hearth::kernels {

int64_t matmul_scratch_bytes(format::TensorType wtype, int64_t n_cols, int64_t n_tokens) {
  const TypeKernels& k = type_kernels(wtype);
  return format::row_bytes(k.vec_dot_type, n_cols) * n_tokens + 64;
}

void matmul(format::TensorType wtype, const void* W, int64_t n_rows, int64_t n_cols,
            const float* x, int64_t n_tokens, float* y, void* scratch,
            platform::ThreadPool& pool) {
  const TypeKernels& k = type_kernels(wtype);
  const format::TensorType act_type = k.vec_dot_type;
  const int64_t w_row_bytes = format::row_bytes(wtype, n_cols);
  const int64_t x_row_bytes = format::row_bytes(act_type, n_cols);
  const auto* w = static_cast<const uint8_t*>(W);
  const uint8_t* xq = reinterpret_cast<const uint8_t*>(x);
  if (act_type != format::TensorType::F32) {
    // Activations converted once per call, shared by every row.
    const TypeKernels& ak = type_kernels(act_type);
    auto* q = static_cast<uint8_t*>(scratch);
    pool.run([&](int ti, int nt) {
      int64_t b, e;
      platform::ThreadPool::chunk(n_tokens, ti, nt, &b, &e);
      for (int64_t t = b; t < e; ++t) ak.from_float(x + t * n_cols, q + t * x_row_bytes, n_cols);
    });
    xq = q;
  }
  pool.run([&](int ti, int nt) {
    int64_t b, e;
    platform::ThreadPool::chunk(n_rows, ti, nt, &b, &e);
    for (int64_t t = 0; t < n_tokens; ++t) {
      const uint8_t* xt = xq + t * x_row_bytes;
      float* yt = y + t * n_rows;
      for (int64_t r = b; r < e; ++r) k.vec_dot(n_cols, &yt[r], w + r * w_row_bytes, xt);
    }
  });
}

void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void softmax(float* x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void rope_angles(float* cs, int64_t rot_dim, int64_t pos, float freq_base, float freq_scale,
                 const float* freq_factors) {
  const int64_t half = rot_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double theta0 = static_cast<double>(pos) * freq_scale *
                         std::pow(static_cast<double>(freq_base), -2.0 * static_cast<double>(i) / static_cast<double>(rot_dim));
    const double theta = freq_factors ? theta0 / freq_factors[i] : theta0;
    cs[2 * i] = static_cast<float>(std::cos(theta));
    cs[2 * i + 1] = static_cast<float>(std::sin(theta));
  }
}

void rope_apply(float* x, const float* cs, int64_t rot_dim, bool neox) {
  const int64_t half = rot_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float c = cs[2 * i], s = cs[2 * i + 1];
    const int64_t a = neox ? i : 2 * i;
    const int64_t b = neox ? i + half : 2 * i + 1;
    const float x0 = x[a], x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
  }
}

void get_row(format::TensorType type, const void* W, int64_t n_cols, int64_t row, float* out) {
  const auto* w = static_cast<const uint8_t*>(W) + row * format::row_bytes(type, n_cols);
  type_kernels(type).to_float(w, out, n_cols);
}

}  // namespace hearth::kernels
