// AVX-512 tiled matrix products (see avx2/gemm_simd.h), VNNI where the ISA cap allows.
// GCC 12's AVX-512 intrinsics warn about their own "undefined" operands (GCC bug 105593).

#include <cstdlib>
#include <cstring>

#include "kernels/avx2/gemm_simd.h"
#include "kernels/intrinsics.h"
#include "kernels/type_kernels.h"
#include "platform/cpu_features.h"

namespace hearth::kernels {
namespace {

struct Avx512VnniG {
  static __m256i dot_u8s8(__m256i u, __m256i s) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
  }
  static __m256i bits_to_bytes(uint32_t qh) { return _mm256_movm_epi8(qh); }
};

struct Avx512G {
  static __m256i dot_u8s8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
  }
  static __m256i bits_to_bytes(uint32_t qh) { return _mm256_movm_epi8(qh); }
};

// Same rule as quants_avx512.cpp's use_vnni (plain C strings: see there).
bool gemm_use_vnni() {
  if (!platform::cpu_features().avx512_vnni) return false;
  const char* cap = std::getenv("HEARTH_ISA");
  if (cap == nullptr) return true;
  return std::strcmp(cap, "avx512") != 0 && std::strcmp(cap, "avx2") != 0 &&
         std::strcmp(cap, "scalar") != 0;
}

template <class Isa>
void fill(KernelTable& t) {
  // 4 x 4 tiles: 16 accumulators + 8 broadcast scales fit the 32 vector registers.
  t.types[static_cast<uint32_t>(TensorType::Q4_0)].gemm = gemm_blocks<Q4_0Step, Isa, 4, 4>;
  t.types[static_cast<uint32_t>(TensorType::Q4_1)].gemm = gemm_blocks<Q4_1Step, Isa, 4, 4>;
  t.types[static_cast<uint32_t>(TensorType::Q5_0)].gemm = gemm_blocks<Q5_0Step, Isa, 4, 4>;
  t.types[static_cast<uint32_t>(TensorType::Q5_1)].gemm = gemm_blocks<Q5_1Step, Isa, 4, 4>;
  t.types[static_cast<uint32_t>(TensorType::Q8_0)].gemm = gemm_blocks<Q8_0Step, Isa, 4, 4>;
}

}  // namespace

void fill_avx512_gemm(KernelTable& t) {
  if (gemm_use_vnni()) {
    fill<Avx512VnniG>(t);
    fill_avx512_packed(t);
    fill_avx512_rowdot(t);
  } else {
    fill<Avx512G>(t);
  }
}

}  // namespace hearth::kernels
