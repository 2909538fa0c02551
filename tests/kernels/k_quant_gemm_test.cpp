// The K-quants' tiled gemm (avx512/quants_k_avx512.cpp: rows in order, prefetched; the
// path of a Q6_K output head) gives, for every row and token, the bits of the same
// table's vec_dot: it only changes the order the rows are visited in.
#include <gtest/gtest.h>

#include <bit>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/type_kernels.h"
#include "platform/cpu_features.h"
#include "../support/kernel_test_util.h"

namespace hearth::kernels {
namespace {

std::vector<float> random_floats(int64_t n, uint32_t seed) {
  return test::random_normal(n, seed, 0.1f, 1.0f);
}

std::vector<uint8_t> quantized(TensorType type, int64_t rows, int64_t n, uint32_t seed) {
  const std::vector<float> f = random_floats(rows * n, seed);
  const int64_t rb = format::row_bytes(type, n);
  std::vector<uint8_t> q(static_cast<size_t>(rb * rows));
  for (int64_t r = 0; r < rows; ++r)
    type_kernels_ref(type).from_float(f.data() + r * n, q.data() + r * rb, n);
  return q;
}

// The reference K fill, then the AVX-512 one under HEARTH_ISA = cap (null: uncapped).
KernelTable avx512_k_table(const char* cap) {
  KernelTable t;
  fill_ref_k(t);
  test::with_isa_cap(cap, t, fill_avx512_k);
  return t;
}

TEST(KQuantGemm, EqualsVecDotBitForBit) {
  if (!platform::cpu_features().avx512) GTEST_SKIP() << "no AVX-512";
  for (const char* cap : {"avx512", static_cast<const char*>(nullptr)}) {
    const KernelTable t = avx512_k_table(cap);
    for (TensorType wt : {TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K}) {
      const TypeKernels& k = t.types[static_cast<uint32_t>(wt)];
      ASSERT_NE(k.gemm, nullptr) << format::type_name(wt);
      for (int64_t n : {256, 2048}) {
        for (int64_t rows : {1, 3, 17}) {
          for (int64_t toks : {1, 2, 5}) {
            const std::vector<uint8_t> w = quantized(wt, rows, n, 3);
            const std::vector<uint8_t> x = quantized(k.vec_dot_type, toks, n, 5);
            const int64_t wrb = format::row_bytes(wt, n);
            const int64_t xrb = format::row_bytes(k.vec_dot_type, n);
            const int64_t ldy = rows + 2;  // the gap must stay untouched
            std::vector<float> y(static_cast<size_t>(toks * ldy), -777.0f);
            k.gemm(n, w.data(), wrb, rows, x.data(), xrb, toks, y.data(), ldy);
            for (int64_t tok = 0; tok < toks; ++tok) {
              for (int64_t r = 0; r < rows; ++r) {
                float expect = 0;
                k.vec_dot(n, &expect, w.data() + r * wrb, x.data() + tok * xrb);
                ASSERT_EQ(std::bit_cast<uint32_t>(y[static_cast<size_t>(tok * ldy + r)]),
                          std::bit_cast<uint32_t>(expect))
                    << (cap ? cap : "avx512_vnni") << " " << format::type_name(wt) << " n=" << n
                    << " rows=" << rows << " toks=" << toks << " r=" << r << " t=" << tok;
              }
              for (int64_t r = rows; r < ldy; ++r)
                ASSERT_EQ(y[static_cast<size_t>(tok * ldy + r)], -777.0f) << "wrote past n_rows";
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace hearth::kernels
