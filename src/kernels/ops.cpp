#include "kernels/ops.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/type_kernels.h"
#include "platform/cpu_features.h"

namespace hearth::kernels {

namespace {

// Rows are handed out in groups of kRowGroup so the gemm tiles and packed panels stay whole.
constexpr int64_t kRowGroup = 16;
// Below this many input elements the conversion runs on the calling thread: a pool run
// (a barrier) costs more than converting a decode-sized row.
constexpr int64_t kSerialConvertElems = 32 * 1024;
constexpr int64_t kItemsPerThread = 4;

bool has_packed(const TypeKernels& k) { return k.packed_gemm != nullptr && packed_gemm_enabled(); }

// Up to this many tokens a type with a rowdot kernel takes it; from more on, the packed
// panels (their transposition then pays for itself: measured with `hearth bench
// --parallel 2..4`, see BENCHMARKS.md). Both give the same bits: a speed choice only.
constexpr int64_t kRowdotMaxTokens = 2;

int64_t round_up64(int64_t b) { return (b + 63) / 64 * 64; }

// Rows [r0, r1) of W times activation rows [0, n_tokens) with the tiled gemm (or vec_dot).
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

bool packed_gemm_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("HEARTH_PACKED_GEMM");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return on;
}

int64_t matmul_scratch_bytes(format::TensorType wtype, int64_t n_cols, int64_t n_tokens) {
  const TypeKernels& k = type_kernels(wtype);
  int64_t bytes = round_up64(format::row_bytes(k.vec_dot_type, n_cols) * n_tokens);
  if (has_packed(k)) bytes = std::max(bytes, round_up64(packed_x_bytes(n_cols, n_tokens)));
  if (k.rowdot_pack_x) bytes = std::max(bytes, round_up64(rowdot_x_bytes(n_cols, n_tokens)));
  return bytes + 64;
}

void matmul(format::TensorType wtype, const void* W, int64_t n_rows, int64_t n_cols,
            const float* x, int64_t n_tokens, float* y, void* scratch,
            platform::ThreadPool& pool, bool interleaved) {
  const MatmulOut out{wtype, W, n_rows, y, interleaved};
  matmul_shared(&out, 1, n_cols, x, n_tokens, scratch, pool);
}

void matmul_shared(const MatmulOut* outs, int n_outs, int64_t n_cols, const float* x,
                   int64_t n_tokens, void* scratch, platform::ThreadPool& pool) {
  // Per weight type one arithmetic for every row: the packed gemm's (rowdot for a few
  // tokens where the CPU has it, the packed gemm otherwise) where the type has it, else the
  // tiled gemm's. Interleaved weights: kRowdotIl, or kPackedIl (the packed gemm reading
  // interleaved rows).
  enum class Path { kTiled, kPacked, kRowdot, kRowdotIl, kPackedIl };
  struct Prepared {
    const TypeKernels* k;
    Path path;
    const uint8_t* xq;  // x converted for the path (or x itself for F32 tiled)
    int64_t x_row_bytes, w_row_bytes, first_group, n_groups;
  };
  Prepared prep[kMaxSharedOuts];
  n_outs = std::min(n_outs, kMaxSharedOuts);
  // One conversion per distinct (path, activation type); weights sharing one share it.
  struct Convert {
    const TypeKernels* ak;  // row-wise from_float of the activation type; or null:
    PackXFn pack;           // the packed / rowdot converter
    Path path;
    format::TensorType act;
    uint8_t* dst;
    int64_t row_bytes;
  };
  Convert conv[kMaxSharedOuts];
  int n_conv = 0;
  auto* free_scratch = static_cast<uint8_t*>(scratch);
  free_scratch += (64 - reinterpret_cast<uintptr_t>(free_scratch) % 64) % 64;
  int64_t groups = 0;
  for (int i = 0; i < n_outs; ++i) {
    const TypeKernels& k = type_kernels(outs[i].wtype);
    const format::TensorType act = k.vec_dot_type;
    Prepared& p = prep[i];
    p.k = &k;
    if (outs[i].interleaved)
      p.path = n_tokens <= kRowdotMaxTokens && k.il_rowdot_gemm ? Path::kRowdotIl : Path::kPackedIl;
    else
      p.path = !has_packed(k)                                  ? Path::kTiled
               : k.rowdot_gemm && n_tokens <= kRowdotMaxTokens ? Path::kRowdot
                                                               : Path::kPacked;
    const bool packed_x = p.path == Path::kPacked || p.path == Path::kPackedIl;
    const PackXFn pack = p.path == Path::kTiled ? nullptr : packed_x ? k.pack_x : k.rowdot_pack_x;
    p.x_row_bytes = format::row_bytes(act, n_cols);
    p.w_row_bytes = format::row_bytes(outs[i].wtype, n_cols);
    p.first_group = groups;
    p.n_groups = (outs[i].n_rows + kRowGroup - 1) / kRowGroup;
    groups += p.n_groups;
    p.xq = reinterpret_cast<const uint8_t*>(x);
    if (p.path == Path::kTiled && act == format::TensorType::F32) continue;
    int same = -1;
    for (int c = 0; c < n_conv && same < 0; ++c)
      if (p.path == Path::kTiled ? conv[c].path == Path::kTiled && conv[c].act == act : conv[c].pack == pack)
        same = c;
    if (same >= 0) {
      p.xq = conv[same].dst;
      continue;
    }
    Convert& cv = conv[n_conv++];
    cv = {nullptr, nullptr, p.path, act, free_scratch, p.x_row_bytes};
    int64_t bytes = 0;
    if (p.path == Path::kTiled) {
      cv.ak = &type_kernels(act);
      bytes = p.x_row_bytes * n_tokens;
    } else {
      cv.pack = pack;
      bytes = packed_x ? packed_x_bytes(n_cols, n_tokens) : rowdot_x_bytes(n_cols, n_tokens);
    }
    p.xq = free_scratch;
    free_scratch += round_up64(bytes);
  }
  // Work unit i converts tokens [8i, 8i + 8) (packed tile i).
  auto convert = [&](int64_t u0, int64_t u1) {
    for (int c = 0; c < n_conv; ++c) {
      const Convert& cv = conv[c];
      if (cv.pack) {
        cv.pack(x, n_cols, n_tokens, u0, u1, cv.dst);
        continue;
      }
      const int64_t t1 = std::min(n_tokens, u1 * kPackedTileTokens);
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
      const auto* w = static_cast<const uint8_t*>(outs[i].W) + r0 * p.w_row_bytes;
      float* y = outs[i].y + r0;
      const int64_t ldy = outs[i].n_rows;
      switch (p.path) {
        case Path::kTiled:
          tiled_rows(*p.k, static_cast<const uint8_t*>(outs[i].W), p.w_row_bytes, r0, r1, n_cols,
                     p.xq, p.x_row_bytes, n_tokens, outs[i].y, ldy);
          break;
        case Path::kPacked:
          p.k->packed_gemm(n_cols, w, p.w_row_bytes, r1 - r0, p.xq, n_tokens, y, ldy);
          break;
        case Path::kRowdot:
          p.k->rowdot_gemm(n_cols, w, p.w_row_bytes, r1 - r0, p.xq, n_tokens, y, ldy);
          break;
        case Path::kRowdotIl:
          p.k->il_rowdot_gemm(n_cols, w, p.w_row_bytes, r1 - r0, p.xq, n_tokens, y, ldy);
          break;
        case Path::kPackedIl:
          p.k->il_packed_gemm(n_cols, w, p.w_row_bytes, r1 - r0, p.xq, n_tokens, y, ldy);
          break;
      }
    }
  });
}

void rmsnorm_portable(const float* x, const float* w, float* y, int64_t n, float eps) {
  double acc[8] = {};  // lane l: x[i]^2 (exact in double) for i = l (mod 8), in order
  for (int64_t i = 0; i < n; ++i) acc[i % 8] += static_cast<double>(x[i]) * x[i];
  for (int s = 4; s >= 1; s /= 2)
    for (int l = 0; l < s; ++l) acc[l] += acc[l + s];
  const float scale = rmsnorm_scale(acc[0], n, eps);
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

float rmsnorm_scale(double sum_sq, int64_t n, float eps) {
  return static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(n) + eps));
}

void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps) {
  static const auto form = f32_form(rmsnorm_avx512, rmsnorm_avx2, rmsnorm_portable);
  form(x, w, y, n, eps);
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

float exp_fixed(float x) {
  if (!(x >= -87.0f)) return 0.0f;  // also NaN
  if (x > 88.0f) return INFINITY;
  float t = x * 1.44269504088896341f;  // x / ln 2
  t = t + 12582912.0f;                 // 1.5 * 2^23: rounds to an integer
  const float n = t - 12582912.0f;
  float r = x - n * 0.693359375f;  // ln 2, high part (n * it is exact)
  r = r - n * -2.12194440e-4f;     // ln 2, low part
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  return p * std::bit_cast<float>(bits);
}

bool f32_avx512_forms() {
  static const bool on = [] {
    const std::string isa = platform::isa_name();
    return platform::cpu_features().avx512 && (isa == "avx512" || isa == "avx512_vnni");
  }();
  return on;
}

bool f32_avx2_forms() {
  static const bool on = platform::cpu_features().avx2 && platform::isa_name() == "avx2";
  return on;
}

void swiglu_portable(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + exp_fixed(-g)) * up[i];
  }
}

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  static const auto form = f32_form(swiglu_avx512, swiglu_avx2, swiglu_portable);
  form(gate, up, out, n);
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
