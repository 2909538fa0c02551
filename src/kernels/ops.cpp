#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels/type_kernels.h"

namespace hearth::kernels {

namespace {

// Rows are handed out in groups of kRowGroup so the gemm tiles and packed panels stay whole.
constexpr int64_t kRowGroup = 16;
// Below this many input elements the conversion runs on the calling thread: a pool run
// (a barrier) costs more than converting a decode-sized row.
constexpr int64_t kSerialConvertElems = 32 * 1024;
constexpr int64_t kItemsPerThread = 4;

// HEARTH_PACKED_GEMM=0 (read once) turns the packed prompt gemm off: every row then takes
// the tiled path. For comparisons; the default is on.
bool packed_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("HEARTH_PACKED_GEMM");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return on;
}

bool has_packed(const TypeKernels& k) { return k.packed_gemm != nullptr && packed_enabled(); }

int64_t round_up64(int64_t b) { return (b + 63) / 64 * 64; }

// Rows [r0, r1) of W times activation rows [0, n_tokens) in the tiled (decode) order.
void tiled_rows(const TypeKernels& k, const uint8_t* w, int64_t w_row_bytes, int64_t r0,
                int64_t r1, int64_t n_cols, const uint8_t* xq, int64_t x_row_bytes,
                int64_t n_tokens, float* y, int64_t ldy) {
  if (r0 >= r1 || n_tokens == 0) return;
  if (k.gemm) {
    k.gemm(n_cols, w + r0 * w_row_bytes, w_row_bytes, r1 - r0, xq, x_row_bytes, n_tokens, y + r0,
           ldy);
    return;
  }
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t r = r0; r < r1; ++r)
      k.vec_dot(n_cols, &y[t * ldy + r], w + r * w_row_bytes, xq + t * x_row_bytes);
}

}  // namespace

int64_t matmul_scratch_bytes(format::TensorType wtype, int64_t n_cols, int64_t n_tokens) {
  const TypeKernels& k = type_kernels(wtype);
  int64_t bytes = round_up64(format::row_bytes(k.vec_dot_type, n_cols) * n_tokens);
  if (has_packed(k)) bytes += round_up64(packed_x_bytes(n_cols, n_tokens));
  return bytes + 64;
}

void matmul(format::TensorType wtype, const void* W, int64_t n_rows, int64_t n_cols,
            const float* x, int64_t n_tokens, float* y, void* scratch,
            platform::ThreadPool& pool, int64_t n_decode) {
  const MatmulOut out{wtype, W, n_rows, y};
  matmul_shared(&out, 1, n_cols, x, n_tokens, scratch, pool, n_decode);
}

void matmul_shared(const MatmulOut* outs, int n_outs, int64_t n_cols, const float* x,
                   int64_t n_tokens, void* scratch, platform::ThreadPool& pool,
                   int64_t n_decode) {
  n_decode = std::clamp<int64_t>(n_decode, 0, n_tokens);
  const int64_t n_prompt = n_tokens - n_decode;
  struct Prepared {
    const TypeKernels* k;
    bool packed;       // prompt rows take the packed gemm
    int64_t n_tiled;   // rows [0, n_tiled) take the tiled gemm: n_decode, or all
    const uint8_t* xq;  // those rows in vec_dot_type (or x itself for F32)
    const uint8_t* xp;  // prompt rows packed (when packed)
    int64_t x_row_bytes, w_row_bytes, first_group, n_groups;
  };
  Prepared prep[kMaxSharedOuts];
  n_outs = std::min(n_outs, kMaxSharedOuts);
  // Activation conversions needed: one per distinct (vec_dot_type, row count), and one
  // packing of the prompt rows for all the weights that take the packed path.
  struct Convert {
    const TypeKernels* ak;  // from_float of the activation type; or null: pack_x
    PackXFn pack_x;
    uint8_t* dst;
    int64_t row_bytes, n_rows;
  };
  Convert conv[2 * kMaxSharedOuts];
  int n_conv = 0;
  auto* free_scratch = static_cast<uint8_t*>(scratch);
  free_scratch += (64 - reinterpret_cast<uintptr_t>(free_scratch) % 64) % 64;
  const uint8_t* packed_x = nullptr;
  int64_t groups = 0;
  for (int i = 0; i < n_outs; ++i) {
    const TypeKernels& k = type_kernels(outs[i].wtype);
    const format::TensorType act = k.vec_dot_type;
    Prepared& p = prep[i];
    p.k = &k;
    p.packed = n_prompt > 0 && has_packed(k);
    p.n_tiled = p.packed ? n_decode : n_tokens;
    p.x_row_bytes = format::row_bytes(act, n_cols);
    p.w_row_bytes = format::row_bytes(outs[i].wtype, n_cols);
    p.first_group = groups;
    p.n_groups = (outs[i].n_rows + kRowGroup - 1) / kRowGroup;
    groups += p.n_groups;
    p.xq = reinterpret_cast<const uint8_t*>(x);
    p.xp = nullptr;
    if (p.packed) {
      if (packed_x == nullptr) {
        conv[n_conv++] = {nullptr, k.pack_x, free_scratch, 0, n_prompt};
        packed_x = free_scratch;
        free_scratch += round_up64(packed_x_bytes(n_cols, n_prompt));
      }
      p.xp = packed_x;
    }
    if (act == format::TensorType::F32 || p.n_tiled == 0) continue;
    int same = -1;  // an earlier weight reading the same converted rows
    for (int j = 0; j < i && same < 0; ++j)
      if (prep[j].k->vec_dot_type == act && prep[j].n_tiled == p.n_tiled) same = j;
    if (same >= 0) {
      p.xq = prep[same].xq;
      continue;
    }
    conv[n_conv++] = {&type_kernels(act), nullptr, free_scratch, p.x_row_bytes, p.n_tiled};
    p.xq = free_scratch;
    free_scratch += round_up64(p.x_row_bytes * p.n_tiled);
  }
  // Work unit i converts packed tile i of the prompt rows and rows [8i, 8i + 8) of each
  // row-wise conversion.
  auto convert = [&](int64_t u0, int64_t u1) {
    for (int c = 0; c < n_conv; ++c) {
      const Convert& cv = conv[c];
      const int64_t units = (cv.n_rows + kPackedTileTokens - 1) / kPackedTileTokens;
      const int64_t e = std::min(u1, units);
      if (u0 >= e) continue;
      if (cv.pack_x) {
        cv.pack_x(x + n_decode * n_cols, n_cols, n_prompt, u0, e, cv.dst);
        continue;
      }
      const int64_t t1 = std::min(cv.n_rows, e * kPackedTileTokens);
      for (int64_t t = u0 * kPackedTileTokens; t < t1; ++t)
        cv.ak->from_float(x + t * n_cols, cv.dst + t * cv.row_bytes, n_cols);
    }
  };
  const int64_t n_units = (n_tokens + kPackedTileTokens - 1) / kPackedTileTokens;
  if (n_tokens * n_cols <= kSerialConvertElems) {
    convert(0, n_units);
  } else {
    const int64_t n_items = std::min<int64_t>(n_units, kItemsPerThread * pool.size());
    pool.run_items(n_items, [&](int64_t item, int) {
      int64_t b, e;
      platform::ThreadPool::chunk(n_units, static_cast<int>(item), static_cast<int>(n_items), &b, &e);
      convert(b, e);
    });
  }
  // Row groups in a few items per thread, taken dynamically: a thread that is descheduled
  // on a busy machine holds up at most its current item.
  const int64_t n_items = std::min<int64_t>(groups, kItemsPerThread * pool.size());
  pool.run_items(n_items, [&](int64_t item, int) {
    int64_t gb, ge;
    platform::ThreadPool::chunk(groups, static_cast<int>(item), static_cast<int>(n_items), &gb, &ge);
    for (int i = 0; i < n_outs; ++i) {
      const Prepared& p = prep[i];
      const int64_t b = std::max(gb, p.first_group), e = std::min(ge, p.first_group + p.n_groups);
      if (b >= e) continue;
      const int64_t r0 = (b - p.first_group) * kRowGroup;
      const int64_t r1 = std::min(outs[i].n_rows, (e - p.first_group) * kRowGroup);
      const auto* w = static_cast<const uint8_t*>(outs[i].W);
      const int64_t ldy = outs[i].n_rows;
      tiled_rows(*p.k, w, p.w_row_bytes, r0, r1, n_cols, p.xq, p.x_row_bytes, p.n_tiled,
                 outs[i].y, ldy);
      if (p.packed)
        p.k->packed_gemm(n_cols, w + r0 * p.w_row_bytes, p.w_row_bytes, r1 - r0, p.xp, n_prompt,
                         outs[i].y + n_decode * ldy + r0, ldy);
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
