// AVX2 tiled matrix products (see gemm_simd.h).
#include <immintrin.h>

#include "kernels/avx2/gemm_simd.h"
#include "kernels/type_kernels.h"

namespace hearth::kernels {
namespace {

struct Avx2G {
  static __m256i dot_u8s8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
  }
  static __m256i bits_to_bytes(uint32_t qh) {  // as in quants_avx2.cpp
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(static_cast<int>(qh)),
        _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
    const __m256i v = _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
  }
};

}  // namespace

void fill_avx2_gemm(KernelTable& t) {
  // 16 vector registers: 2 x 4 tiles (8 accumulators).
  t.types[static_cast<uint32_t>(TensorType::Q4_0)].gemm = gemm_blocks<Q4_0Step, Avx2G, 2, 4>;
  t.types[static_cast<uint32_t>(TensorType::Q4_1)].gemm = gemm_blocks<Q4_1Step, Avx2G, 2, 4>;
  t.types[static_cast<uint32_t>(TensorType::Q5_0)].gemm = gemm_blocks<Q5_0Step, Avx2G, 2, 4>;
  t.types[static_cast<uint32_t>(TensorType::Q5_1)].gemm = gemm_blocks<Q5_1Step, Avx2G, 2, 4>;
  t.types[static_cast<uint32_t>(TensorType::Q8_0)].gemm = gemm_blocks<Q8_0Step, Avx2G, 2, 4>;
}

}  // namespace hearth::kernels
