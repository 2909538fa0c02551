// AVX-512 (BW/VL, optionally VNNI) K-quant kernels: Q4_K/Q5_K/Q6_K x Q8_K dot products,
// a tiled gemm over them (rows in order, prefetched) and f32 -> Q8_K.
//
// Same integer scheme as the AVX2 file and the reference: u8 x s8 pair products (maddubs,
// no saturation for <= 6-bit quants), times the integer sub-block scale summed to int32
// (madd, or VNNI's dpwssd which fuses the add), per super-block; float scales last.
// One 512-bit register covers 64 elements = two 32-element sub-blocks (Q4_K/Q5_K: the
// low and high nibbles of one 32-byte group, broadcast to both halves) or four
// 16-element sub-blocks (Q6_K), so each q8 load is one contiguous 64-byte load.
// GCC 12's AVX-512 intrinsics self-initialise their "undefined" operands and then warn
// about them (GCC bug 105593); the warnings point into the intrinsic headers.

#include <cstdlib>
#include <cstring>

#include "kernels/blocks_k.h"
#include "kernels/intrinsics.h"
#include "kernels/type_kernels.h"
#include "platform/cpu_features.h"

namespace hearth::kernels {
namespace {

struct Avx512 {
  static __m512i dot_add(__m512i acc, __m512i a16, __m512i b16) {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(a16, b16));
  }
};
struct Avx512Vnni {
  static __m512i dot_add(__m512i acc, __m512i a16, __m512i b16) {
    return _mm512_dpwssd_epi32(acc, a16, b16);
  }
};

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline __m512i load512(const void* p) { return _mm512_loadu_si512(p); }
inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Two 256-bit halves into one register.
inline __m512i join(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// Q4_K/Q5_K per super-block: unpacks the 6-bit scales, returns the 8 int16 scales in each
// 128-bit lane, and the int32 terms m[j] * sum(q8 in sub-block j) (8 lanes).
inline __m512i scales_and_mins(const uint8_t* packed, const int16_t* bsums, __m256i* mins_out) {
  uint8_t sm[16];
  unpack_scales_mins_k4(packed, sm);
  const __m256i sm16 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sm)));
  // m[j] in both int16 halves of int32 lane j, against bsums[2j], bsums[2j+1].
  const __m256i m32 = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(sm16, 1));
  *mins_out = _mm256_madd_epi16(_mm256_or_si256(m32, _mm256_slli_epi32(m32, 16)), load256(bsums));
  return _mm512_broadcast_i32x4(_mm256_castsi256_si128(sm16));
}

// In-lane shuffle masks: int16 scale 2c to the low 256 bits, 2c+1 to the high 256 bits.
inline __m512i pick_pair_epi16(int c) {
  return join(_mm256_set1_epi16(static_cast<int16_t>(0x0100 + 0x0404 * c)),
              _mm256_set1_epi16(static_cast<int16_t>(0x0302 + 0x0404 * c)));
}

constexpr __mmask32 kHighWords = 0xffff0000u;  // the upper 256 bits, as 16-bit lanes

template <class Isa>
void vec_dot_q4_k(int64_t n, float* out, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ4K*>(vw);
  const auto* x = static_cast<const BlockQ8K*>(vx);
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  __m512 acc = _mm512_setzero_ps();
  __m256 acc_m = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = _cvtsh_ss(w[i].d) * x[i].d;
    const float dmin = -_cvtsh_ss(w[i].dmin) * x[i].d;
    __m256i mins;
    const __m512i scales = scales_and_mins(w[i].scales, x[i].bsums, &mins);
    acc_m = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(mins), acc_m);
    __m512i sumi = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {
      // Low nibbles (sub-block 2c) in the low half, high nibbles (2c+1) in the high half.
      const __m512i bits = _mm512_broadcast_i64x4(load256(w[i].qs + 32 * c));
      const __m512i q = _mm512_and_si512(_mm512_mask_srli_epi16(bits, kHighWords, bits, 4), m4);
      const __m512i p = _mm512_maddubs_epi16(q, load512(x[i].qs + 64 * c));
      sumi = Isa::dot_add(sumi, p, _mm512_shuffle_epi8(scales, pick_pair_epi16(c)));
    }
    acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
  }
  *out = _mm512_reduce_add_ps(acc) + hsum(acc_m);
}

template <class Isa>
void vec_dot_q5_k(int64_t n, float* out, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ5K*>(vw);
  const auto* x = static_cast<const BlockQ8K*>(vx);
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const __m512i c16 = _mm512_set1_epi8(0x10);
  __m512 acc = _mm512_setzero_ps();
  __m256 acc_m = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = _cvtsh_ss(w[i].d) * x[i].d;
    const float dmin = -_cvtsh_ss(w[i].dmin) * x[i].d;
    __m256i mins;
    const __m512i scales = scales_and_mins(w[i].scales, x[i].bsums, &mins);
    acc_m = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(mins), acc_m);
    const __m512i qh = _mm512_broadcast_i64x4(load256(w[i].qh));
    __m512i sumi = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {
      const __m512i bits = _mm512_broadcast_i64x4(load256(w[i].qs + 32 * c));
      __m512i q = _mm512_and_si512(_mm512_mask_srli_epi16(bits, kHighWords, bits, 4), m4);
      // 5th bit: bit 2c of qh for the low half, bit 2c+1 for the high half.
      const __m512i bit = join(_mm256_set1_epi8(static_cast<char>(1 << (2 * c))),
                               _mm256_set1_epi8(static_cast<char>(1 << (2 * c + 1))));
      q = _mm512_mask_add_epi8(q, _mm512_test_epi8_mask(qh, bit), q, c16);
      const __m512i p = _mm512_maddubs_epi16(q, load512(x[i].qs + 64 * c));
      sumi = Isa::dot_add(sumi, p, _mm512_shuffle_epi8(scales, pick_pair_epi16(c)));
    }
    acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
  }
  *out = _mm512_reduce_add_ps(acc) + hsum(acc_m);
}

// Word index vector: int16 lanes 8k..8k+7 take element first + k (k = 0..3).
inline __m512i quad_index(int first) {
  alignas(64) int16_t idx[32];
  for (int l = 0; l < 32; ++l) idx[l] = static_cast<int16_t>(first + l / 8);
  return _mm512_load_si512(idx);
}

template <class Isa>
void vec_dot_q6_k(int64_t n, float* out, const void* vw, const void* vx) {
  const auto* w = static_cast<const BlockQ6K*>(vw);
  const auto* x = static_cast<const BlockQ8K*>(vx);
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const __m512i m30 = _mm512_set1_epi8(0x30);
  // Per-half shift counts moving the qh bit pairs of quarters (0,1) and (2,3) to bits 4-5.
  const __m512i shl01 = join(_mm256_set1_epi16(4), _mm256_set1_epi16(2));
  const __m512i shr23 = join(_mm256_set1_epi16(0), _mm256_set1_epi16(2));
  const __m512i idx[4] = {quad_index(0), quad_index(4), quad_index(8), quad_index(12)};
  __m512 acc = _mm512_setzero_ps();
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = _cvtsh_ss(w[i].d) * x[i].d;
    const __m256i sc16 =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i].scales)));
    // Quants are stored +32: start from -32 * sum_j sc[j] * sum(q8 in sub-block j).
    const __m256i offset = _mm256_madd_epi16(sc16, load256(x[i].bsums));
    __m512i sumi = _mm512_zextsi256_si512(
        _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(offset, 5)));
    const __m512i sc512 = _mm512_castsi256_si512(sc16);
    for (int g = 0; g < 2; ++g) {
      const __m512i ql = load512(w[i].ql + 64 * g);
      const __m512i qh = _mm512_broadcast_i64x4(load256(w[i].qh + 32 * g));
      // Quarters 0,1 (elements 0-63 of this half): low nibbles; quarters 2,3: high.
      const __m512i q01 = _mm512_or_si512(_mm512_and_si512(ql, m4),
                                          _mm512_and_si512(_mm512_sllv_epi16(qh, shl01), m30));
      const __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                          _mm512_and_si512(_mm512_srlv_epi16(qh, shr23), m30));
      const __m512i p01 = _mm512_maddubs_epi16(q01, load512(x[i].qs + 128 * g));
      const __m512i p23 = _mm512_maddubs_epi16(q23, load512(x[i].qs + 128 * g + 64));
      sumi = Isa::dot_add(sumi, p01, _mm512_permutexvar_epi16(idx[2 * g], sc512));
      sumi = Isa::dot_add(sumi, p23, _mm512_permutexvar_epi16(idx[2 * g + 1], sc512));
    }
    acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
  }
  *out = _mm512_reduce_add_ps(acc);
}

// f32 -> Q8_K, identical to the reference (see the AVX2 twin).
void from_float_q8_k(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockQ8K*>(vy);
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    __m512 vmax = _mm512_setzero_ps();
    for (int k = 0; k < kQK_K; k += 16)
      vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(x + k)));
    const float amax = _mm512_reduce_max_ps(vmax);
    if (amax == 0) {
      std::memset(&y[i], 0, sizeof(BlockQ8K));
      continue;
    }
    float max = 0;
    const __m512 vamax = _mm512_set1_ps(amax);
    for (int k = 0; k < kQK_K; k += 16) {
      const __mmask16 hit =
          _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + k)), vamax, _CMP_EQ_OQ);
      if (hit) {
        max = x[k + __builtin_ctz(static_cast<unsigned>(hit))];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m512 vs = _mm512_set1_ps(iscale);
    for (int k = 0; k < kQK_K / 16; ++k) {
      const __m512i q32 = _mm512_cvtps_epi32(_mm512_mul_ps(vs, _mm512_loadu_ps(x + 16 * k)));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs + 16 * k), _mm512_cvtsepi32_epi8(q32));
      y[i].bsums[k] = static_cast<int16_t>(_mm512_reduce_add_epi32(q32));
    }
    y[i].d = 1 / iscale;
  }
}

// The tiled gemm of a K-quant (the path of a Q6_K output head in Q4_K_M files): rows in
// order, each against every token, so a row is read from memory once. The rows are
// contiguous, and the bytes kAhead past the row being read are prefetched in address
// order (a row's worth per row): from DRAM, one core, Q6_K 1B shape, 28-30 GB/s with the
// hardware prefetcher alone, 34-36 with kAhead = 16 KiB (8 KiB: 30-35, 32 KiB: 35-37 on
// one thread but lower on two; kernels_bench matvec_dram with HEARTH_PACKED_GEMM=0).
// vec_dot's results, bit for bit.
constexpr int64_t kAhead = 16 * 1024;
template <VecDotFn kDot>
void gemm_rows(int64_t n, const void* vw, int64_t w_stride, int64_t n_rows, const void* x,
               int64_t x_stride, int64_t n_tokens, float* y, int64_t ldy) {
  const auto* w = static_cast<const uint8_t*>(vw);
  const auto* xb = static_cast<const uint8_t*>(x);
  for (int64_t r = 0; r < n_rows; ++r) {
    const uint8_t* row = w + r * w_stride;
    const uintptr_t first = reinterpret_cast<uintptr_t>(row) + kAhead;
    for (uintptr_t a = (first + 63) & ~uintptr_t{63}; a < first + w_stride; a += 64)
      _mm_prefetch(reinterpret_cast<const char*>(a), _MM_HINT_T0);
    for (int64_t t = 0; t < n_tokens; ++t) kDot(n, &y[t * ldy + r], row, xb + t * x_stride);
  }
}

// Mirrors platform::isa_name(): HEARTH_ISA=avx512 (or lower) turns VNNI off. Plain C
// strings: std::string code instantiated here would be compiled for AVX-512.
bool use_vnni() {
  if (!platform::cpu_features().avx512_vnni) return false;
  const char* cap = std::getenv("HEARTH_ISA");
  if (cap == nullptr) return true;
  return std::strcmp(cap, "avx512") != 0 && std::strcmp(cap, "avx2") != 0 &&
         std::strcmp(cap, "scalar") != 0;
}

template <class Isa>
void fill_dots(KernelTable& t) {
  auto set_dot = [&t](TensorType type, VecDotFn dot, GemmFn gemm) {
    TypeKernels& k = t.types[static_cast<uint32_t>(type)];
    k.vec_dot_type = TensorType::Q8_K;
    k.vec_dot = dot;
    k.gemm = gemm;
  };
  set_dot(TensorType::Q4_K, vec_dot_q4_k<Isa>, gemm_rows<vec_dot_q4_k<Isa>>);
  set_dot(TensorType::Q5_K, vec_dot_q5_k<Isa>, gemm_rows<vec_dot_q5_k<Isa>>);
  set_dot(TensorType::Q6_K, vec_dot_q6_k<Isa>, gemm_rows<vec_dot_q6_k<Isa>>);
}

}  // namespace

void fill_avx512_k(KernelTable& t) {
  if (use_vnni())
    fill_dots<Avx512Vnni>(t);
  else
    fill_dots<Avx512>(t);
  t.types[static_cast<uint32_t>(TensorType::Q8_K)].from_float = from_float_q8_k;
}

}  // namespace hearth::kernels
