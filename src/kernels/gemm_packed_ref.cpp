// Scalar reference of the packed prompt gemm (avx512/gemm_packed.cpp): the same
// arithmetic, element by element, so the SIMD version can be checked bit for bit and
// `HEARTH_ISA=scalar` evaluates prompt rows exactly as the AVX-512 VNNI path does.
//
// For weight row r and token t, with the weights written as w = d_w * q + m_w (q in
// u8, see gemm_packed.cpp) and the activations as Q8_0/Q8_1 quantize them (d_x, q_x,
// s_x = d_x * sum(q_x), or for the _1 types s_x rounded to f16 as Q8_1 stores it):
//   for each run of kPackedPanelBlocks blocks:
//     acc = 0
//     for each block b:  acc = fma(f32(sum_i q_w[i] * q_x[i]) * d_w, d_x, acc)
//                        acc = fma(m_w, s_x, acc)
//     y = first run ? acc : y + acc
// Only the f32 operations' order matters: the block dot is exact in i32.
//
// Q6_K (two scales per block of 32, q - 32 with q in 0..63) takes, per half of 16,
//   acc = fma(f32(o16 + sum_i q_w[i] * q_x[i]) * d_half, d_x, acc),  o16 = -32 * sum q_x
// with the lower half first.
//
// Activations are stored per token and block (52 bytes: d, s, sh, o16[2], q[32]), a
// layout of its own: packed_x_bytes reserves 8 x 52 bytes per tile and block.
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/blocks.h"
#include "kernels/blocks_k.h"
#include "kernels/half.h"
#include "kernels/type_kernels.h"

namespace hearth::kernels {
namespace {

struct XBlock {
  float d, s, sh;
  int32_t o16[2];  // -32 * sum(q) over elements 0..15 and 16..31
  int8_t q[kQK];
};
static_assert(sizeof(XBlock) * kPackedTileTokens <= kPackedXBlockBytes);

// One weight block as u8 quants with its scale and offset (Q6_K: the scales of elements
// 0..15 and 16..31, the offset being -32 in the integer dot).
struct WBlock {
  uint8_t q[kQK];
  float d, m;
};

void nibbles(const uint8_t* qs, uint8_t* q) {
  for (int j = 0; j < kQK / 2; ++j) {
    q[j] = qs[j] & 0x0f;
    q[j + kQK / 2] = qs[j] >> 4;
  }
}

void unpack_q4_0(const uint8_t* row, int64_t nb, WBlock* out) {
  const auto* w = reinterpret_cast<const BlockQ4_0*>(row);
  for (int64_t b = 0; b < nb; ++b) {
    out[b].d = f16_to_f32(w[b].d);
    out[b].m = out[b].d * -8.0f;
    nibbles(w[b].qs, out[b].q);
  }
}

void unpack_q4_1(const uint8_t* row, int64_t nb, WBlock* out) {
  const auto* w = reinterpret_cast<const BlockQ4_1*>(row);
  for (int64_t b = 0; b < nb; ++b) {
    out[b].d = f16_to_f32(w[b].d);
    out[b].m = f16_to_f32(w[b].m);
    nibbles(w[b].qs, out[b].q);
  }
}

// Element j's fifth bit is bit j of qh.
void q5(const uint8_t* qh, const uint8_t* qs, uint8_t* q) {
  nibbles(qs, q);
  uint32_t h;
  std::memcpy(&h, qh, 4);
  for (int j = 0; j < kQK; ++j) q[j] = static_cast<uint8_t>(q[j] | ((h >> j) & 1) << 4);
}

void unpack_q5_0(const uint8_t* row, int64_t nb, WBlock* out) {
  const auto* w = reinterpret_cast<const BlockQ5_0*>(row);
  for (int64_t b = 0; b < nb; ++b) {
    out[b].d = f16_to_f32(w[b].d);
    out[b].m = out[b].d * -16.0f;
    q5(w[b].qh, w[b].qs, out[b].q);
  }
}

void unpack_q5_1(const uint8_t* row, int64_t nb, WBlock* out) {
  const auto* w = reinterpret_cast<const BlockQ5_1*>(row);
  for (int64_t b = 0; b < nb; ++b) {
    out[b].d = f16_to_f32(w[b].d);
    out[b].m = f16_to_f32(w[b].m);
    q5(w[b].qh, w[b].qs, out[b].q);
  }
}

void unpack_q8_0(const uint8_t* row, int64_t nb, WBlock* out) {
  const auto* w = reinterpret_cast<const BlockQ8_0*>(row);
  for (int64_t b = 0; b < nb; ++b) {
    out[b].d = f16_to_f32(w[b].d);
    out[b].m = out[b].d * -128.0f;
    for (int i = 0; i < kQK; ++i) out[b].q[i] = static_cast<uint8_t>(w[b].qs[i] + 128);
  }
}

// Blocks are Q4_K's / Q5_K's sub-blocks of 32: sub-blocks 2c and 2c + 1 share qs[32c ..];
// Q5_K's fifth bit of sub-block j is bit j of qh[l].
template <typename Block, bool kFifth>
void unpack_k4(const uint8_t* row, int64_t nb, WBlock* out) {
  const auto* w = reinterpret_cast<const Block*>(row);
  for (int64_t sb = 0; sb < nb / 8; ++sb) {
    const float d = f16_to_f32(w[sb].d), dmin = f16_to_f32(w[sb].dmin);
    uint8_t sm[16];
    unpack_scales_mins_k4(w[sb].scales, sm);
    for (int c = 0; c < 4; ++c) {
      WBlock& lo = out[8 * sb + 2 * c];
      WBlock& hi = out[8 * sb + 2 * c + 1];
      for (int i = 0; i < kQK; ++i) {
        lo.q[i] = w[sb].qs[32 * c + i] & 0x0f;
        hi.q[i] = w[sb].qs[32 * c + i] >> 4;
        if constexpr (kFifth) {
          const uint8_t h = w[sb].qh[i];
          lo.q[i] = static_cast<uint8_t>(lo.q[i] | ((h >> (2 * c)) & 1) << 4);
          hi.q[i] = static_cast<uint8_t>(hi.q[i] | ((h >> (2 * c + 1)) & 1) << 4);
        }
      }
    }
    for (int j = 0; j < 8; ++j) {
      out[8 * sb + j].d = d * static_cast<float>(sm[j]);
      out[8 * sb + j].m = -dmin * static_cast<float>(sm[8 + j]);
    }
  }
}

// Blocks are Q6_K's blocks of 32: block 4h + r of a super-block (see blocks_k.h).
void unpack_q6_k(const uint8_t* row, int64_t nb, WBlock* out) {
  const auto* w = reinterpret_cast<const BlockQ6K*>(row);
  for (int64_t sb = 0; sb < nb / 8; ++sb) {
    const float d = f16_to_f32(w[sb].d);
    for (int h = 0; h < 2; ++h)
      for (int r = 0; r < 4; ++r) {
        WBlock& o = out[8 * sb + 4 * h + r];
        for (int l = 0; l < kQK; ++l) {
          const int lo = (w[sb].ql[64 * h + 32 * (r & 1) + l] >> (4 * (r >> 1))) & 0x0f;
          const int hi = (w[sb].qh[32 * h + l] >> (2 * r)) & 0x03;
          o.q[l] = static_cast<uint8_t>(lo | hi << 4);
        }
        o.d = d * static_cast<float>(w[sb].scales[8 * h + 2 * r]);
        o.m = d * static_cast<float>(w[sb].scales[8 * h + 2 * r + 1]);
      }
  }
}

void pack_x_ref(const float* x, int64_t n, int64_t n_tokens, int64_t tile0, int64_t tile1,
                void* xp) {
  const int64_t nb = n / kQK;
  auto* out = static_cast<XBlock*>(xp);
  const TypeKernels& q8_1 = type_kernels_ref(TensorType::Q8_1);
  BlockQ8_1 blk;
  for (int64_t t = tile0 * kPackedTileTokens; t < tile1 * kPackedTileTokens && t < n_tokens; ++t)
    for (int64_t b = 0; b < nb; ++b) {
      XBlock& o = out[t * nb + b];
      q8_1.from_float(x + t * n + b * kQK, &blk, kQK);
      int sum = 0, half = 0;
      for (int i = 0; i < kQK; ++i) {
        sum += blk.qs[i];
        if (i < kQK / 2) half += blk.qs[i];
      }
      o.o16[0] = -32 * half;
      o.o16[1] = -32 * (sum - half);
      std::memcpy(o.q, blk.qs, kQK);
      o.d = f16_to_f32(blk.d);
      o.s = o.d * static_cast<float>(sum);
      o.sh = f16_to_f32(blk.s);
    }
}

using UnpackFn = void (*)(const uint8_t* row, int64_t nb, WBlock* out);

// Which activation term a block's offset takes (w = d q + m): s, the f16-rounded sh, or
// kSplit for Q6_K (two scaled halves, offset o16 in the integer dot).
enum class Offset { kS, kSh, kSplit };

template <UnpackFn kUnpack, Offset kOffset>
void packed_gemm_ref(int64_t n, const void* vw, int64_t w_stride, int64_t n_rows,
                     const void* xp, int64_t n_tokens, float* y, int64_t ldy) {
  const int64_t nb = n / kQK;
  const auto* x = static_cast<const XBlock*>(xp);
  std::vector<WBlock> row(static_cast<size_t>(nb));
  for (int64_t r = 0; r < n_rows; ++r) {
    kUnpack(static_cast<const uint8_t*>(vw) + r * w_stride, nb, row.data());
    for (int64_t t = 0; t < n_tokens; ++t) {
      const XBlock* xt = x + t * nb;
      float out = 0;
      for (int64_t b0 = 0; b0 < nb; b0 += kPackedPanelBlocks) {
        float acc = 0;
        for (int64_t b = b0; b < nb && b < b0 + kPackedPanelBlocks; ++b) {
          if constexpr (kOffset == Offset::kSplit) {
            int32_t dot[2] = {xt[b].o16[0], xt[b].o16[1]};
            for (int i = 0; i < kQK; ++i) dot[i / 16] += row[b].q[i] * xt[b].q[i];
            acc = std::fmaf(static_cast<float>(dot[0]) * row[b].d, xt[b].d, acc);
            acc = std::fmaf(static_cast<float>(dot[1]) * row[b].m, xt[b].d, acc);
          } else {
            int32_t dot = 0;
            for (int i = 0; i < kQK; ++i) dot += row[b].q[i] * xt[b].q[i];
            const float f = static_cast<float>(dot) * row[b].d;
            acc = std::fmaf(f, xt[b].d, acc);
            acc = std::fmaf(row[b].m, kOffset == Offset::kSh ? xt[b].sh : xt[b].s, acc);
          }
        }
        out = b0 == 0 ? acc : acc + out;
      }
      y[t * ldy + r] = out;
    }
  }
}

void set(KernelTable& t, TensorType type, PackedGemmFn gemm) {
  TypeKernels& k = t.types[static_cast<uint32_t>(type)];
  k.pack_x = pack_x_ref;
  k.packed_gemm = gemm;
}

}  // namespace

void fill_ref_packed(KernelTable& t) {
  set(t, TensorType::Q4_0, packed_gemm_ref<unpack_q4_0, Offset::kS>);
  set(t, TensorType::Q4_1, packed_gemm_ref<unpack_q4_1, Offset::kSh>);
  set(t, TensorType::Q5_0, packed_gemm_ref<unpack_q5_0, Offset::kS>);
  set(t, TensorType::Q5_1, packed_gemm_ref<unpack_q5_1, Offset::kSh>);
  set(t, TensorType::Q8_0, packed_gemm_ref<unpack_q8_0, Offset::kS>);
  set(t, TensorType::Q4_K, packed_gemm_ref<unpack_k4<BlockQ4K, false>, Offset::kS>);
  set(t, TensorType::Q5_K, packed_gemm_ref<unpack_k4<BlockQ5K, true>, Offset::kS>);
  set(t, TensorType::Q6_K, packed_gemm_ref<unpack_q6_k, Offset::kSplit>);
}

}  // namespace hearth::kernels
