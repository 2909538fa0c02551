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
// From this many tokens on, types with a packed gemm use it (prefill); below, the tiled
// gemm or vec_dot reads the weights once with nothing to amortize a panel's packing over.
constexpr int64_t kPackedMinTokens = 8;

// The packed gemm is opt-in (HEARTH_PACKED_GEMM=1, read once): it is about 2x faster for
// prefill but sums in another order than vec_dot, so a token's logits then depend on how
// many tokens share its matmul (batched prefill vs token-by-token decode differ by up to
// ~1 logit on SmolLM2 after int8 re-quantization amplifies the rounding). Off, every path
// gives bit-identical rows, which the seed-reproducibility, batched-serving and perplexity
// tests rely on. See BENCHMARKS.md.
bool packed_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("HEARTH_PACKED_GEMM");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  return on;
}

bool use_packed(const TypeKernels& k, int64_t n_tokens) {
  return k.packed_gemm != nullptr && n_tokens >= kPackedMinTokens && packed_enabled();
}

// Rows [r0, r1) of W times every activation row.
void matmul_rows(const TypeKernels& k, bool packed, const uint8_t* w, int64_t w_row_bytes,
                 int64_t r0, int64_t r1, int64_t n_cols, const uint8_t* xq, int64_t x_row_bytes,
                 int64_t n_tokens, float* y, int64_t ldy) {
  if (r0 >= r1) return;
  if (packed) {
    k.packed_gemm(n_cols, w + r0 * w_row_bytes, w_row_bytes, r1 - r0, xq, n_tokens, y + r0, ldy);
    return;
  }
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
  int64_t bytes = format::row_bytes(k.vec_dot_type, n_cols) * n_tokens;
  if (use_packed(k, n_tokens)) bytes = std::max(bytes, packed_x_bytes(n_cols, n_tokens));
  return bytes + 64;
}

void matmul(format::TensorType wtype, const void* W, int64_t n_rows, int64_t n_cols,
            const float* x, int64_t n_tokens, float* y, void* scratch,
            platform::ThreadPool& pool) {
  const MatmulOut out{wtype, W, n_rows, y};
  matmul_shared(&out, 1, n_cols, x, n_tokens, scratch, pool);
}

void matmul_shared(const MatmulOut* outs, int n_outs, int64_t n_cols, const float* x,
                   int64_t n_tokens, void* scratch, platform::ThreadPool& pool) {
  struct Prepared {
    const TypeKernels* k;
    bool packed;
    const uint8_t* xq;
    int64_t x_row_bytes, w_row_bytes, first_group, n_groups;
  };
  Prepared prep[kMaxSharedOuts];
  n_outs = std::min(n_outs, kMaxSharedOuts);
  // Activation conversions needed: one per distinct vec_dot_type, or one packing for all
  // the weights that take the packed path.
  struct Convert {
    const TypeKernels* ak;  // from_float of the activation type; or null: pack_x
    PackXFn pack_x;
    uint8_t* dst;
    int64_t row_bytes;
  };
  Convert conv[kMaxSharedOuts];
  int n_conv = 0;
  auto* free_scratch = static_cast<uint8_t*>(scratch);
  int64_t groups = 0;
  for (int i = 0; i < n_outs; ++i) {
    const TypeKernels& k = type_kernels(outs[i].wtype);
    const format::TensorType act = k.vec_dot_type;
    Prepared& p = prep[i];
    p.k = &k;
    p.packed = use_packed(k, n_tokens);
    p.x_row_bytes = format::row_bytes(act, n_cols);
    p.w_row_bytes = format::row_bytes(outs[i].wtype, n_cols);
    p.first_group = groups;
    p.n_groups = (outs[i].n_rows + kRowGroup - 1) / kRowGroup;
    groups += p.n_groups;
    p.xq = reinterpret_cast<const uint8_t*>(x);
    if (act == format::TensorType::F32 && !p.packed) continue;
    int same = -1;  // an earlier weight reading the same converted activations
    for (int j = 0; j < i && same < 0; ++j)
      if (prep[j].packed == p.packed && (p.packed || prep[j].k->vec_dot_type == act)) same = j;
    if (same >= 0) {
      p.xq = prep[same].xq;
      continue;
    }
    conv[n_conv++] = {p.packed ? nullptr : &type_kernels(act), p.packed ? k.pack_x : nullptr,
                      free_scratch, p.x_row_bytes};
    p.xq = free_scratch;
    free_scratch += p.packed ? packed_x_bytes(n_cols, n_tokens) : p.x_row_bytes * n_tokens;
  }
  // Tokens are converted in whole packed tiles [tile0, tile1).
  auto convert = [&](int64_t tile0, int64_t tile1) {
    for (int c = 0; c < n_conv; ++c) {
      if (conv[c].pack_x) {
        conv[c].pack_x(x, n_cols, n_tokens, tile0, tile1, conv[c].dst);
        continue;
      }
      const int64_t t1 = std::min(n_tokens, tile1 * kPackedTileTokens);
      for (int64_t t = tile0 * kPackedTileTokens; t < t1; ++t)
        conv[c].ak->from_float(x + t * n_cols, conv[c].dst + t * conv[c].row_bytes, n_cols);
    }
  };
  const int64_t n_tiles = (n_tokens + kPackedTileTokens - 1) / kPackedTileTokens;
  if (n_tokens * n_cols <= kSerialConvertElems) {
    convert(0, n_tiles);
  } else {
    const int64_t n_items = std::min<int64_t>(n_tiles, kItemsPerThread * pool.size());
    pool.run_items(n_items, [&](int64_t item, int) {
      int64_t b, e;
      platform::ThreadPool::chunk(n_tiles, static_cast<int>(item), static_cast<int>(n_items), &b, &e);
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
      matmul_rows(*p.k, p.packed, static_cast<const uint8_t*>(outs[i].W), p.w_row_bytes, r0, r1,
                  n_cols, p.xq, p.x_row_bytes, n_tokens, outs[i].y, outs[i].n_rows);
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
