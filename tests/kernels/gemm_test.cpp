// Tiled gemm kernels (avx2/, avx512/) against the reference vec_dot, over a sweep of row,
// token and column counts that cover whole tiles and every odd tail; the shared-input
// matmul against one matmul per weight; attention_heads against its scalar twin.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/half.h"
#include "kernels/ops.h"
#include "kernels/type_kernels.h"
#include "platform/cpu_features.h"
#include "../support/kernel_test_util.h"

namespace hearth::kernels {
namespace {

using format::row_bytes;

constexpr TensorType kGemmTypes[] = {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0,
                                     TensorType::Q5_1, TensorType::Q8_0};

constexpr TensorType kPackedTypes[] = {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0,
                                       TensorType::Q5_1, TensorType::Q8_0, TensorType::Q4_K,
                                       TensorType::Q5_K, TensorType::Q6_K};

const TypeKernels& k(const KernelTable& t, TensorType type) {
  return t.types[static_cast<uint32_t>(type)];
}

KernelTable ref_table() {
  KernelTable t;
  fill_ref_legacy(t);
  fill_ref_k(t);
  return t;
}

using NamedTable = test::IsaTable;
using test::isa_tables;

KernelTable filled(const char* cap, void (*legacy)(KernelTable&), void (*gemm)(KernelTable&)) {
  KernelTable t = ref_table();
  test::with_isa_cap(cap, t, [&](KernelTable& x) {
    legacy(x);
    gemm(x);
  });
  return t;
}

std::vector<NamedTable> gemm_tables() {
  std::vector<NamedTable> out;
  const platform::CpuFeatures& f = platform::cpu_features();
  if (f.avx2) out.push_back({"avx2", filled(nullptr, fill_avx2_legacy, fill_avx2_gemm)});
  if (f.avx512)
    out.push_back({"avx512", filled("avx512", fill_avx512_legacy, fill_avx512_gemm)});
  if (f.avx512_vnni)
    out.push_back({"avx512_vnni", filled(nullptr, fill_avx512_legacy, fill_avx512_gemm)});
  return out;
}

std::vector<float> random_floats(int64_t n, uint32_t seed, float mean) {
  return test::random_normal(n, seed, mean, 1.0f);
}

// Rows of `type`, quantized by the reference from random floats.
std::vector<uint8_t> quantized_rows(TensorType type, int64_t rows, int64_t n, uint32_t seed,
                                    float mean) {
  const KernelTable ref = ref_table();
  const std::vector<float> f = random_floats(rows * n, seed, mean);
  const int64_t rb = row_bytes(type, n);
  std::vector<uint8_t> q(static_cast<size_t>(rb * rows));
  for (int64_t r = 0; r < rows; ++r) k(ref, type).from_float(f.data() + r * n, q.data() + r * rb, n);
  return q;
}

TEST(Gemm, EveryTableMatchesReferenceVecDotOverSweep) {
  const KernelTable ref = ref_table();
  const std::vector<NamedTable> tables = gemm_tables();
  if (tables.empty()) GTEST_SKIP() << "no SIMD gemm on this CPU";
  for (const NamedTable& nt : tables) {
    for (TensorType wt : kGemmTypes) {
      ASSERT_NE(k(nt.table, wt).gemm, nullptr) << nt.isa;
      const TensorType xt = k(ref, wt).vec_dot_type;
      for (int64_t n : {32, 64, 96, 160, 576}) {
        for (int64_t rows : {1, 2, 3, 4, 5, 7, 9}) {
          for (int64_t toks : {1, 2, 3, 4, 5, 8, 11}) {
            const std::vector<uint8_t> w = quantized_rows(wt, rows, n, 7, 0.3f);
            const std::vector<uint8_t> x = quantized_rows(xt, toks, n, 11, 0.0f);
            const int64_t wrb = row_bytes(wt, n), xrb = row_bytes(xt, n);
            const int64_t ldy = rows + 3;  // a gap checks that ldy is honoured
            std::vector<float> y(static_cast<size_t>(toks * ldy), -777.0f);
            k(nt.table, wt).gemm(n, w.data(), wrb, rows, x.data(), xrb, toks, y.data(), ldy);
            for (int64_t t = 0; t < toks; ++t) {
              for (int64_t r = 0; r < rows; ++r) {
                float expect = 0;
                k(ref, wt).vec_dot(n, &expect, w.data() + r * wrb, x.data() + t * xrb);
                const float got = y[static_cast<size_t>(t * ldy + r)];
                ASSERT_NEAR(got, expect, 1e-4f * (1.0f + std::fabs(expect)) * static_cast<float>(n) / 32)
                    << nt.isa << " " << format::type_name(wt) << " n=" << n << " rows=" << rows
                    << " toks=" << toks << " r=" << r << " t=" << t;
              }
              for (int64_t r = rows; r < ldy; ++r)
                ASSERT_EQ(y[static_cast<size_t>(t * ldy + r)], -777.0f) << "wrote past n_rows";
            }
          }
        }
      }
    }
  }
}

// The packed prefill gemm (every SIMD level) against a double-precision dot of the
// dequantized weights with the activations as Q8_0 quantizes them (pack_x quantizes the same
// way), and for the _1 types also against vec_dot itself (pack_x keeps Q8_1's f16-rounded
// sums).
TEST(PackedGemm, MatchesReferenceOverSweep) {
  const std::vector<NamedTable> tables = isa_tables();
  if (tables.empty()) GTEST_SKIP() << "no AVX2";
  const KernelTable ref = ref_table();
  const TypeKernels& q8 = k(ref, TensorType::Q8_0);
  for (const NamedTable& nt : tables)
  for (TensorType wt : kPackedTypes) {
    const TypeKernels& pk = k(nt.table, wt);
    ASSERT_NE(pk.packed_gemm, nullptr) << nt.isa << " " << format::type_name(wt);
    const bool k_quant =
        wt == TensorType::Q4_K || wt == TensorType::Q5_K || wt == TensorType::Q6_K;
    for (int64_t n : k_quant ? std::vector<int64_t>{256, 768, 8448} : std::vector<int64_t>{32, 96, 576, 1056}) {
      for (int64_t rows : {1, 5, 16, 17, 35}) {
        for (int64_t toks : {1, 7, 8, 9, 19}) {
          const std::vector<uint8_t> w = quantized_rows(wt, rows, n, 7, 0.3f);
          const std::vector<float> x = random_floats(toks * n, 11, 0.0f);
          std::vector<uint8_t> xp(static_cast<size_t>(packed_x_bytes(n, toks)));
          const int64_t n_tiles = (toks + kPackedTileTokens - 1) / kPackedTileTokens;
          pk.pack_x(x.data(), n, toks, 0, n_tiles, xp.data());
          const int64_t wrb = row_bytes(wt, n), ldy = rows + 3;
          std::vector<float> y(static_cast<size_t>(toks * ldy), -777.0f);
          pk.packed_gemm(n, w.data(), wrb, rows, xp.data(), toks, y.data(), ldy);
          std::vector<float> wf(static_cast<size_t>(n)), xf(static_cast<size_t>(n));
          std::vector<uint8_t> xq(static_cast<size_t>(row_bytes(TensorType::Q8_1, n)));
          for (int64_t tk = 0; tk < toks; ++tk) {
            q8.from_float(x.data() + tk * n, xq.data(), n);
            q8.to_float(xq.data(), xf.data(), n);
            for (int64_t r = 0; r < rows; ++r) {
              k(ref, wt).to_float(w.data() + r * wrb, wf.data(), n);
              double expect = 0, mag = 0;
              for (int64_t i = 0; i < n; ++i) {
                expect += static_cast<double>(wf[i]) * xf[i];
                mag += std::fabs(static_cast<double>(wf[i]) * xf[i]);
              }
              const float got = y[static_cast<size_t>(tk * ldy + r)];
              const std::string where = nt.isa + " " + std::string(format::type_name(wt)) + " n=" +
                                        std::to_string(n) + " rows=" + std::to_string(rows) +
                                        " toks=" + std::to_string(toks);
              if (wt == TensorType::Q4_1 || wt == TensorType::Q5_1) {
                // vec_dot's Q8_1 sums are f16-rounded: compare with vec_dot itself.
                k(ref, TensorType::Q8_1).from_float(x.data() + tk * n, xq.data(), n);
                float vd = 0;
                k(ref, wt).vec_dot(n, &vd, w.data() + r * wrb, xq.data());
                ASSERT_NEAR(got, vd, 1e-5 * (1 + mag)) << where;
              } else {
                ASSERT_NEAR(got, expect, 1e-5 * (1 + mag)) << where;
              }
            }
            for (int64_t r = rows; r < ldy; ++r)
              ASSERT_EQ(y[static_cast<size_t>(tk * ldy + r)], -777.0f) << "wrote past n_rows";
          }
        }
      }
    }
  }
}

// The reference kernels with the packed gemm's scalar twin (gemm_packed_ref.cpp).
KernelTable scalar_twin_table() {
  KernelTable ref;
  fill_ref_legacy(ref);
  fill_ref_k(ref);
  fill_ref_packed(ref);
  return ref;
}

// pack_x (AVX2, AVX-512: token tiles) holds the scalar twin's values (pack_x_ref, one block
// record per token): scales, sums, o16 and quants, for full and partial tiles, an all-zero
// block and quotients that land on .5 (rounded away from zero).
TEST(PackedGemm, PackXEqualsScalarTwin) {
  const std::vector<NamedTable> tables = isa_tables();
  if (tables.empty()) GTEST_SKIP() << "no AVX2";
  const KernelTable ref = scalar_twin_table();
  for (const NamedTable& nt : tables) {
  const KernelTable& t = nt.table;
  struct RefBlock {  // gemm_packed_ref.cpp's XBlock
    float d, s, sh;
    int32_t o16[2];
    int8_t q[32];
  };
  constexpr int64_t kT = kPackedTileTokens;
  for (int64_t n : {32, 576}) {
    for (int64_t toks : {1, 7, 8, 9, 19}) {
      std::vector<float> x = random_floats(toks * n, 31, 0.1f);
      for (int64_t i = 0; i < 32; ++i) x[i] = 0.0f;                    // an all-zero block
      for (int64_t i = 32; i < std::min<int64_t>(64, toks * n); ++i)  // q = x / d lands on .5
        x[i] = static_cast<float>(i % 5) * 0.5f - 1.0f;
      const int64_t n_tiles = (toks + kT - 1) / kT, nb = n / 32;
      std::vector<uint8_t> a(static_cast<size_t>(packed_x_bytes(n, toks)), 0xAB), b(a);
      k(t, TensorType::Q4_0).pack_x(x.data(), n, toks, 0, n_tiles, a.data());
      k(ref, TensorType::Q4_0).pack_x(x.data(), n, toks, 0, n_tiles, b.data());
      for (int64_t tk = 0; tk < toks; ++tk)
        for (int64_t bl = 0; bl < nb; ++bl) {
          RefBlock r;
          std::memcpy(&r, b.data() + (tk * nb + bl) * sizeof(RefBlock), sizeof r);
          const uint8_t* blk = a.data() + ((tk / kT) * nb + bl) * kPackedXBlockBytes;
          const int64_t tt = tk % kT;
          float f[3];
          int32_t o16[2];
          for (int j = 0; j < 3; ++j) std::memcpy(&f[j], blk + (j * kT + tt) * 4, 4);
          for (int j = 0; j < 2; ++j) std::memcpy(&o16[j], blk + ((3 + j) * kT + tt) * 4, 4);
          const std::string where = nt.isa + " n=" + std::to_string(n) + " tok=" +
                                    std::to_string(tk) + " block=" + std::to_string(bl);
          ASSERT_EQ(std::bit_cast<uint32_t>(f[0]), std::bit_cast<uint32_t>(r.d)) << where;
          ASSERT_EQ(std::bit_cast<uint32_t>(f[1]), std::bit_cast<uint32_t>(r.s)) << where;
          ASSERT_EQ(std::bit_cast<uint32_t>(f[2]), std::bit_cast<uint32_t>(r.sh)) << where;
          ASSERT_EQ(o16[0], r.o16[0]) << where;
          ASSERT_EQ(o16[1], r.o16[1]) << where;
          for (int i = 0; i < 32; ++i)  // chunk c of token tt: 4 bytes at [c][tt]
            ASSERT_EQ(static_cast<int8_t>(blk[5 * kT * 4 + ((i / 4) * kT + tt) * 4 + i % 4]), r.q[i])
                << where << " i=" << i;
        }
    }
  }
  }
}

// The SIMD packed gemm (every level) computes exactly what its scalar twin
// (gemm_packed_ref.cpp) does: the same bits, over whole and partial panels (n up to 264
// blocks), whole and partial 16-row groups, tiles and tails.
TEST(PackedGemm, BitIdenticalToScalarTwin) {
  const std::vector<NamedTable> tables = isa_tables();
  if (tables.empty()) GTEST_SKIP() << "no AVX2";
  const KernelTable ref = scalar_twin_table();
  for (const NamedTable& nt : tables)
  for (TensorType wt : kPackedTypes) {
    const TypeKernels& pk = k(nt.table, wt);
    const TypeKernels& rk = k(ref, wt);
    ASSERT_NE(rk.packed_gemm, nullptr) << format::type_name(wt);
    const bool k_quant =
        wt == TensorType::Q4_K || wt == TensorType::Q5_K || wt == TensorType::Q6_K;
    for (int64_t n : k_quant ? std::vector<int64_t>{256, 8448} : std::vector<int64_t>{32, 1056, 2080}) {
      for (int64_t rows : {1, 9, 16, 35}) {
        for (int64_t toks : {1, 2, 3, 8, 19}) {
          const std::vector<uint8_t> w = quantized_rows(wt, rows, n, 17, 0.3f);
          const std::vector<float> x = random_floats(toks * n, 23, 0.0f);
          const int64_t n_tiles = (toks + kPackedTileTokens - 1) / kPackedTileTokens;
          const int64_t wrb = row_bytes(wt, n);
          std::vector<uint8_t> xp(static_cast<size_t>(packed_x_bytes(n, toks)));
          std::vector<uint8_t> xr(xp.size());
          std::vector<float> y(static_cast<size_t>(toks * rows)), yr(y.size());
          pk.pack_x(x.data(), n, toks, 0, n_tiles, xp.data());
          pk.packed_gemm(n, w.data(), wrb, rows, xp.data(), toks, y.data(), rows);
          rk.pack_x(x.data(), n, toks, 0, n_tiles, xr.data());
          rk.packed_gemm(n, w.data(), wrb, rows, xr.data(), toks, yr.data(), rows);
          for (size_t i = 0; i < y.size(); ++i)
            ASSERT_EQ(std::bit_cast<uint32_t>(y[i]), std::bit_cast<uint32_t>(yr[i]))
                << nt.isa << " " << format::type_name(wt) << " n=" << n << " rows=" << rows
                << " toks=" << toks << " i=" << i << ": " << y[i] << " vs " << yr[i];
        }
      }
    }
  }
}

// F32, F16 and BF16 weights: every level's vec_dot sums in the one order of type_kernels.h
// (kFloatDotLanes lanes, zero-padded tail), so it gives the scalar twin's bits; lengths
// below, at and past one group of lanes, with tails.
TEST(FloatDot, EveryLevelBitIdenticalToScalarTwin) {
  const std::vector<NamedTable> tables = isa_tables();
  if (tables.empty()) GTEST_SKIP() << "no AVX2";
  const KernelTable ref = ref_table();
  for (const NamedTable& nt : tables)
    for (TensorType wt : {TensorType::F32, TensorType::F16, TensorType::BF16})
      for (int64_t n : {1, 7, 63, 64, 65, 130, 576, 1000}) {
        const std::vector<float> wf = random_floats(n, 3, 0.1f), x = random_floats(n, 4, 0.0f);
        std::vector<uint8_t> w(static_cast<size_t>(row_bytes(wt, n)));
        k(ref, wt).from_float(wf.data(), w.data(), n);
        float got = 0, want = 0;
        k(nt.table, wt).vec_dot(n, &got, w.data(), x.data());
        k(ref, wt).vec_dot(n, &want, w.data(), x.data());
        ASSERT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>(want))
            << nt.isa << " " << format::type_name(wt) << " n=" << n << ": " << got << " vs " << want;
        double exact = 0;
        for (int64_t i = 0; i < n; ++i) {
          float wi = 0;
          k(ref, wt).to_float(w.data() + row_bytes(wt, i + 1) - row_bytes(wt, 1), &wi, 1);
          exact += static_cast<double>(wi) * x[i];
        }
        ASSERT_NEAR(want, exact, 1e-5 * (1.0 + std::fabs(exact)) * std::sqrt(static_cast<double>(n)));
      }
}

// The rowdot kernels (packed arithmetic read from row-major weights, for a few tokens;
// AVX-512 VNNI only: AVX2 takes its packed gemm for those, tested above) give the scalar
// twin's bits: whole and partial 16-row groups, panels and tails.
TEST(RowdotGemm, BitIdenticalToScalarTwin) {
  if (!platform::cpu_features().avx512_vnni) GTEST_SKIP() << "no AVX-512 VNNI (no rowdot kernel)";
  const KernelTable ref = scalar_twin_table();
  const KernelTable t = filled(nullptr, fill_avx512_legacy, fill_avx512_gemm);
  for (TensorType wt : {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1,
                        TensorType::Q8_0, TensorType::Q4_K, TensorType::Q5_K}) {
    const TypeKernels& dk = k(t, wt);
    const TypeKernels& rk = k(ref, wt);
    ASSERT_NE(dk.rowdot_gemm, nullptr) << format::type_name(wt);
    const bool super = format::traits(wt).block_size == 256;
    // Blocks of 32: 1, 33 (a panel and a tail), 65 (two panels and a tail); K-quants
    // 8, 72 (two panels and a super-block), 136 (four panels and a super-block).
    const std::vector<int64_t> ns = super ? std::vector<int64_t>{256, 2304, 4352}
                                          : std::vector<int64_t>{32, 1056, 2080};
    for (int64_t n : ns) {
      for (int64_t rows : {1, 15, 16, 35}) {
        for (int64_t toks : {1, 2, 9}) {
          const std::vector<uint8_t> w = quantized_rows(wt, rows, n, 41, 0.3f);
          const std::vector<float> x = random_floats(toks * n, 43, 0.0f);
          const int64_t n_tiles = (toks + kPackedTileTokens - 1) / kPackedTileTokens;
          const int64_t wrb = row_bytes(wt, n), ldy = rows + 2;
          std::vector<uint8_t> xd(static_cast<size_t>(rowdot_x_bytes(n, toks)));
          std::vector<uint8_t> xr(static_cast<size_t>(packed_x_bytes(n, toks)));
          std::vector<float> y(static_cast<size_t>(toks * ldy), -777.0f), yr(y.size(), -777.0f);
          dk.rowdot_pack_x(x.data(), n, toks, 0, n_tiles, xd.data());
          dk.rowdot_gemm(n, w.data(), wrb, rows, xd.data(), toks, y.data(), ldy);
          rk.pack_x(x.data(), n, toks, 0, n_tiles, xr.data());
          rk.packed_gemm(n, w.data(), wrb, rows, xr.data(), toks, yr.data(), ldy);
          for (size_t i = 0; i < y.size(); ++i)
            ASSERT_EQ(std::bit_cast<uint32_t>(y[i]), std::bit_cast<uint32_t>(yr[i]))
                << format::type_name(wt) << " n=" << n << " rows=" << rows << " toks=" << toks
                << " i=" << i << ": " << y[i] << " vs " << yr[i];
        }
      }
    }
  }
}

// A row's result never depends on how many rows share the call: each row of a 21-token
// call (packed panels where the type has them) equals that row evaluated alone (rowdot)
// and in a call of 2 (rowdot) and 3 (packed).
TEST(Matmul, RowResultIndependentOfBatch) {
  platform::ThreadPool pool(2);
  for (TensorType wt : {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q8_0, TensorType::Q4_K,
                        TensorType::Q6_K}) {
    const int64_t n = 512, rows = 37, toks = 21;
    const std::vector<uint8_t> w = quantized_rows(wt, rows, n, 31, 0.2f);
    const std::vector<float> x = random_floats(toks * n, 37, 0.0f);
    std::vector<uint8_t> scratch(static_cast<size_t>(matmul_scratch_bytes(wt, n, toks)));
    std::vector<float> all(static_cast<size_t>(toks * rows)), part(static_cast<size_t>(3 * rows));
    matmul(wt, w.data(), rows, n, x.data(), toks, all.data(), scratch.data(), pool);
    for (int64_t m : {1, 2, 3}) {
      for (int64_t t0 = 0; t0 + m <= toks; t0 += m) {
        matmul(wt, w.data(), rows, n, x.data() + t0 * n, m, part.data(), scratch.data(), pool);
        for (int64_t i = 0; i < m * rows; ++i)
          ASSERT_EQ(std::bit_cast<uint32_t>(all[t0 * rows + i]), std::bit_cast<uint32_t>(part[i]))
              << format::type_name(wt) << " tokens " << t0 << ".." << t0 + m << " index " << i;
      }
    }
  }
}

// 2 tokens take the rowdot kernel, 9 the packed gemm, where the CPU has them.
TEST(MatmulShared, EqualsOneMatmulPerWeight) {
  platform::ThreadPool pool(3);
  const int64_t n = 128;
  for (const int64_t toks : {2, 9}) {
    const TensorType types[] = {TensorType::Q4_1, TensorType::Q8_0, TensorType::F32};
    const int64_t rows[] = {13, 8, 6};
    std::vector<std::vector<uint8_t>> w;
    for (int i = 0; i < 3; ++i) w.push_back(quantized_rows(types[i], rows[i], n, 100 + i, 0.1f));
    const std::vector<float> x = random_floats(toks * n, 5, 0.0f);
    std::vector<uint8_t> scratch(static_cast<size_t>(3 * matmul_scratch_bytes(TensorType::Q4_1, n, toks)));
    std::vector<std::vector<float>> shared(3), single(3);
    MatmulOut outs[3];
    for (int i = 0; i < 3; ++i) {
      shared[i].assign(static_cast<size_t>(toks * rows[i]), 0.0f);
      single[i].assign(static_cast<size_t>(toks * rows[i]), 0.0f);
      outs[i] = {types[i], w[i].data(), rows[i], shared[i].data()};
    }
    matmul_shared(outs, 3, n, x.data(), toks, scratch.data(), pool);
    for (int i = 0; i < 3; ++i) {
      matmul(types[i], w[i].data(), rows[i], n, x.data(), toks, single[i].data(), scratch.data(),
             pool);
      for (size_t j = 0; j < single[i].size(); ++j) ASSERT_FLOAT_EQ(shared[i][j], single[i][j]) << i;
    }
  }
}

// n random values as f16 (the KV cache's type).
std::vector<f16_t> random_halves(int64_t n, uint32_t seed) {
  const std::vector<float> f = random_floats(n, seed, 0.0f);
  std::vector<f16_t> h(f.size());
  for (size_t i = 0; i < f.size(); ++i) h[i] = f32_to_f16(f[i]);
  return h;
}

// Attention of n_q heads: q and out rows `pitch` floats apart (pitch >= hd).
struct AttnCase {
  int64_t hd, n_kv, n_q, pitch, stride;
  std::vector<float> q;
  std::vector<f16_t> k, v;
  AttnCase(int64_t hd_, int64_t n_kv_, int64_t n_q_, uint32_t seed)
      : hd(hd_), n_kv(n_kv_), n_q(n_q_), pitch(hd_ + 3), stride(hd_ * 3),
        q(random_floats(n_q_ * (hd_ + 3), seed, 0.0f)),
        k(random_halves(n_kv_ * hd_ * 3, seed + 1)),
        v(random_halves(n_kv_ * hd_ * 3, seed + 2)) {}
  float scale() const { return 1.0f / std::sqrt(static_cast<float>(hd)); }
};

// The AVX-512 and AVX2 forms of attention give the portable code's bits (same operations,
// same order, no FMA contraction), so attention does not depend on the ISA.
TEST(Attention, SimdFormsBitIdenticalToPortable) {
  const bool avx512 = platform::cpu_features().avx512, avx2 = platform::cpu_features().avx2;
  if (!avx512 && !avx2) GTEST_SKIP() << "no AVX2";
  for (int64_t hd : {1, 7, 16, 64, 80, 128, 256}) {
    for (int64_t n_kv : {1, 2, 5, 8, 15, 16, 17, 33, 200}) {
      for (int64_t n_q : {1, 3, 4, 7}) {
        const AttnCase c(hd, n_kv, n_q, static_cast<uint32_t>(hd * 1000 + n_kv * 10 + n_q));
        std::vector<float> sc(static_cast<size_t>(n_q * n_kv)), want(c.q.size(), 9.0f);
        attention_heads_portable(c.q.data(), c.pitch, n_q, c.k.data(), c.v.data(), c.stride, n_kv,
                                 hd, c.scale(), sc.data(), want.data(), c.pitch);
        for (int form = 0; form < 2; ++form) {
          if (form == 0 ? !avx512 : !avx2) continue;
          std::vector<float> got(c.q.size(), 9.0f);
          (form == 0 ? attention_heads_avx512 : attention_heads_avx2)(
              c.q.data(), c.pitch, n_q, c.k.data(), c.v.data(), c.stride, n_kv, hd, c.scale(),
              sc.data(), got.data(), c.pitch);
          for (size_t d = 0; d < got.size(); ++d)
            ASSERT_EQ(std::bit_cast<uint32_t>(got[d]), std::bit_cast<uint32_t>(want[d]))
                << (form == 0 ? "avx512" : "avx2") << " hd=" << hd << " n_kv=" << n_kv
                << " n_q=" << n_q << " d=" << d;
        }
      }
    }
  }
}

// A head's result does not depend on how heads are grouped into calls (the engine groups
// the n_rep heads of a KV head in prefill and takes them one by one in decode).
TEST(Attention, HeadResultIndependentOfGrouping) {
  for (int64_t hd : {64, 80, 256}) {
    const AttnCase c(hd, 45, 7, 17);
    std::vector<float> sc(static_cast<size_t>(7 * 45)), all(c.q.size(), 9.0f), one(all);
    attention_heads(c.q.data(), c.pitch, 7, c.k.data(), c.v.data(), c.stride, 45, hd, c.scale(),
                    sc.data(), all.data(), c.pitch);
    for (int64_t i = 0; i < 7; ++i)
      attention_heads(c.q.data() + i * c.pitch, c.pitch, 1, c.k.data(), c.v.data(), c.stride, 45,
                      hd, c.scale(), sc.data(), one.data() + i * c.pitch, c.pitch);
    for (size_t d = 0; d < all.size(); ++d)
      ASSERT_EQ(std::bit_cast<uint32_t>(all[d]), std::bit_cast<uint32_t>(one[d])) << hd << " " << d;
  }
}

TEST(Attention, MatchesScalarTwin) {
  for (int64_t hd : {1, 7, 16, 64, 80, 128, 256}) {
    for (int64_t n_kv : {1, 2, 5, 33, 200}) {
      const AttnCase c(hd, n_kv, 3, static_cast<uint32_t>(hd + n_kv));
      std::vector<float> sc(static_cast<size_t>(3 * n_kv)), out(c.q.size()), out_ref(static_cast<size_t>(hd));
      attention_heads(c.q.data(), c.pitch, 3, c.k.data(), c.v.data(), c.stride, n_kv, hd, c.scale(),
                      sc.data(), out.data(), c.pitch);
      for (int64_t i = 0; i < 3; ++i) {
        attention_head_ref(c.q.data() + i * c.pitch, c.k.data(), c.v.data(), c.stride, n_kv, hd,
                           c.scale(), sc.data(), out_ref.data());
        for (int64_t d = 0; d < hd; ++d)
          ASSERT_NEAR(out[i * c.pitch + d], out_ref[d], 1e-5f * (1.0f + std::fabs(out_ref[d])))
              << "hd=" << hd << " n_kv=" << n_kv << " head=" << i << " d=" << d;
      }
    }
  }
}

// The softmax's exp: within 2 ulp of the double-precision exp on [-87, 0]; 0 below and
// for NaN (so a bad score cannot reach an integer conversion).
TEST(Attention, ExpFixedCloseToExp) {
  float worst = 0;
  for (float x = -87.0f; x <= 0.0f; x += 0.00731f) {
    const double want = std::exp(static_cast<double>(x));
    const double ulp = std::nextafter(static_cast<float>(want), INFINITY) - static_cast<float>(want);
    worst = std::max(worst, static_cast<float>(std::fabs(exp_fixed(x) - want) / ulp));
  }
  EXPECT_LE(worst, 2.0f);
  EXPECT_EQ(exp_fixed(0.0f), 1.0f);
  EXPECT_EQ(exp_fixed(-87.5f), 0.0f);
  EXPECT_EQ(exp_fixed(-INFINITY), 0.0f);
  EXPECT_EQ(exp_fixed(NAN), 0.0f);
}

// SwiGLU's AVX-512 and AVX2 forms give the portable bits, and both are within a few ulp of the
// formula with std::exp; large, tiny and non-finite gates included.
TEST(Swiglu, SimdFormsBitIdenticalToPortableAndCloseToExp) {
  std::vector<float> g = random_floats(1000, 7, 0.0f), u = random_floats(1000, 8, 0.0f);
  for (size_t i = 0; i < g.size(); ++i) g[i] *= 8.0f;
  const float special[] = {0.0f, -0.0f, 88.5f, -88.5f, 100.0f, -100.0f, 1e30f, -1e30f, INFINITY};
  for (size_t i = 0; i < std::size(special); ++i) g[i] = special[i];
  for (int64_t n : {1, 15, 16, 17, 1000}) {
    std::vector<float> a(static_cast<size_t>(n), 9.0f), b(a);
    swiglu_portable(g.data(), u.data(), a.data(), n);
    if (platform::cpu_features().avx512) {
      swiglu_avx512(g.data(), u.data(), b.data(), n);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(std::bit_cast<uint32_t>(a[i]), std::bit_cast<uint32_t>(b[i])) << n << " " << i;
    }
    if (platform::cpu_features().avx2) {
      std::vector<float> c(static_cast<size_t>(n), 9.0f);
      swiglu_avx2(g.data(), u.data(), c.data(), n);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(std::bit_cast<uint32_t>(a[i]), std::bit_cast<uint32_t>(c[i])) << "avx2 " << n << " " << i;
    }
    for (int64_t i = 0; i < n; ++i) {
      const double want = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i];
      if (std::isinf(want))
        ASSERT_EQ(a[i], want) << "gate " << g[i];
      else
        ASSERT_NEAR(a[i], want, 1e-6 * (1.0 + std::fabs(want))) << "gate " << g[i];
    }
  }
}

// RMSNorm's AVX-512 and AVX2 forms give the portable bits, both close to the formula in double.
TEST(Rmsnorm, SimdFormsBitIdenticalToPortableAndCloseToFormula) {
  const std::vector<float> x = random_floats(2048, 9, 0.3f), w = random_floats(2048, 10, 1.0f);
  for (int64_t n : {1, 7, 8, 15, 16, 17, 64, 576, 2048}) {
    std::vector<float> a(static_cast<size_t>(n), 9.0f), b(a);
    rmsnorm_portable(x.data(), w.data(), a.data(), n, 1e-5f);
    if (platform::cpu_features().avx512) {
      rmsnorm_avx512(x.data(), w.data(), b.data(), n, 1e-5f);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(std::bit_cast<uint32_t>(a[i]), std::bit_cast<uint32_t>(b[i])) << n << " " << i;
    }
    if (platform::cpu_features().avx2) {
      std::vector<float> c(static_cast<size_t>(n), 9.0f);
      rmsnorm_avx2(x.data(), w.data(), c.data(), n, 1e-5f);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(std::bit_cast<uint32_t>(a[i]), std::bit_cast<uint32_t>(c[i])) << "avx2 " << n << " " << i;
    }
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
    const double scale = 1.0 / std::sqrt(ss / static_cast<double>(n) + 1e-5);
    for (int64_t i = 0; i < n; ++i) {
      const double want = x[i] * scale * w[i];
      ASSERT_NEAR(a[i], want, 1e-6 * (1.0 + std::fabs(want))) << n << " " << i;
    }
  }
}

}  // namespace
}  // namespace hearth::kernels
