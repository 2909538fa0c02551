// K-quant kernels (Q4_K, Q5_K, Q6_K, Q8_K): bit layouts, dequantization against the gguf
// Python package, quantizer error bounds, reference dot products, SIMD vs reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "format/tensor_type.h"
#include "kernels/blocks_k.h"
#include "kernels/half.h"
#include "kernels/type_kernels.h"
#include "platform/cpu_features.h"
#include "../support/kernel_test_util.h"

namespace hearth::kernels {
namespace {

using format::TensorType;

const TypeKernels& ref_of(TensorType t) {
  static const KernelTable table = [] {
    KernelTable k;
    fill_ref_k(k);
    return k;
  }();
  return table.types[static_cast<uint32_t>(t)];
}

std::vector<float> dequantize(TensorType t, const void* data, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  ref_of(t).to_float(data, y.data(), n);
  return y;
}

std::vector<uint8_t> quantize(const TypeKernels& k, TensorType t, const std::vector<float>& x) {
  const auto n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(static_cast<size_t>(format::row_bytes(t, n)));
  k.from_float(x.data(), q.data(), n);
  return q;
}

std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, sigma);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

// Random blocks: every quant and sub-block scale bit random, f16 scales small and finite.
std::vector<uint8_t> random_blocks(TensorType t, int64_t n_blocks, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t size = format::traits(t).type_size;
  std::vector<uint8_t> b(static_cast<size_t>(n_blocks * size));
  for (uint8_t& v : b) v = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> scale(1e-3f, 5e-2f);
  for (int64_t i = 0; i < n_blocks; ++i) {
    uint8_t* blk = b.data() + i * size;
    const std::vector<int> f16_offsets =
        t == TensorType::Q6_K ? std::vector<int>{208} : std::vector<int>{0, 2};
    for (int off : f16_offsets) {
      const f16_t h = f32_to_f16(scale(rng));
      std::memcpy(blk + off, &h, 2);
    }
  }
  return b;
}

// ------------------------------------------------------------------ layouts

TEST(KQuants, BlockSizesMatchGgufTraits) {
  EXPECT_EQ(sizeof(BlockQ4K), static_cast<size_t>(format::traits(TensorType::Q4_K).type_size));
  EXPECT_EQ(sizeof(BlockQ5K), static_cast<size_t>(format::traits(TensorType::Q5_K).type_size));
  EXPECT_EQ(sizeof(BlockQ6K), static_cast<size_t>(format::traits(TensorType::Q6_K).type_size));
  EXPECT_EQ(sizeof(BlockQ8K), static_cast<size_t>(format::traits(TensorType::Q8_K).type_size));
  for (TensorType t : {TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K, TensorType::Q8_K})
    EXPECT_EQ(format::traits(t).block_size, kQK_K);
}

TEST(KQuants, ScalesMinsPackRoundTrip) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    uint8_t sc[8], m[8], packed[12], out[16];
    for (int j = 0; j < 8; ++j) {
      sc[j] = static_cast<uint8_t>(rng() % 64);
      m[j] = static_cast<uint8_t>(rng() % 64);
    }
    pack_scales_mins_k4(sc, m, packed);
    unpack_scales_mins_k4(packed, out);
    for (int j = 0; j < 8; ++j) {
      ASSERT_EQ(out[j], sc[j]) << "scale " << j;
      ASSERT_EQ(out[8 + j], m[j]) << "min " << j;
    }
  }
}

// Packs 6-bit scales/mins byte by byte as the GGUF layout describes (independently of
// pack_scales_mins_k4).
void pack_by_hand(const int sc[8], const int m[8], uint8_t out[12]) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xf) | ((m[j + 4] & 0xf) << 4));
  }
}

TEST(KQuants, Q4KDequantizesHandBuiltBlock) {
  const int sc[8] = {1, 2, 17, 63, 33, 48, 5, 60};
  const int m[8] = {0, 63, 16, 4, 47, 31, 62, 1};
  BlockQ4K b{};
  b.d = f32_to_f16(0.5f);
  b.dmin = f32_to_f16(0.25f);
  pack_by_hand(sc, m, b.scales);
  auto q = [](int e) { return (e * 7 + e / 32) % 16; };
  for (int e = 0; e < kQK_K; ++e) {  // e = 64c + 32h + l: nibble h of qs[32c + l]
    const int c = e / 64, h = (e / 32) % 2, l = e % 32;
    b.qs[32 * c + l] |= static_cast<uint8_t>(q(e) << (4 * h));
  }
  const std::vector<float> y = dequantize(TensorType::Q4_K, &b, kQK_K);
  for (int e = 0; e < kQK_K; ++e) {
    const int j = e / 32;
    ASSERT_EQ(y[e], 0.5f * static_cast<float>(sc[j]) * static_cast<float>(q(e)) -
                        0.25f * static_cast<float>(m[j]))
        << "element " << e;
  }
}

TEST(KQuants, Q5KDequantizesHandBuiltBlock) {
  const int sc[8] = {63, 1, 20, 40, 16, 15, 32, 7};
  const int m[8] = {5, 0, 63, 17, 18, 48, 3, 33};
  BlockQ5K b{};
  b.d = f32_to_f16(0.125f);
  b.dmin = f32_to_f16(2.0f);
  pack_by_hand(sc, m, b.scales);
  auto q = [](int e) { return (e * 11 + 3) % 32; };
  for (int e = 0; e < kQK_K; ++e) {  // low 4 bits as Q4_K; bit 4 is bit (e/32) of qh[e%32]
    const int c = e / 64, h = (e / 32) % 2, l = e % 32;
    b.qs[32 * c + l] |= static_cast<uint8_t>((q(e) & 15) << (4 * h));
    b.qh[l] |= static_cast<uint8_t>((q(e) >> 4) << (e / 32));
  }
  const std::vector<float> y = dequantize(TensorType::Q5_K, &b, kQK_K);
  for (int e = 0; e < kQK_K; ++e) {
    const int j = e / 32;
    ASSERT_EQ(y[e], 0.125f * static_cast<float>(sc[j]) * static_cast<float>(q(e)) -
                        2.0f * static_cast<float>(m[j]))
        << "element " << e;
  }
}

TEST(KQuants, Q6KDequantizesHandBuiltBlock) {
  BlockQ6K b{};
  b.d = f32_to_f16(0.0625f);
  for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<int8_t>(j * 17 - 128);
  auto q = [](int e) { return (e * 13 + 5) % 64; };
  for (int e = 0; e < kQK_K; ++e) {  // e = 128g + 32r + l
    const int g = e / 128, r = (e / 32) % 4, l = e % 32;
    b.ql[64 * g + 32 * (r % 2) + l] |= static_cast<uint8_t>((q(e) & 15) << (4 * (r / 2)));
    b.qh[32 * g + l] |= static_cast<uint8_t>((q(e) >> 4) << (2 * r));
  }
  const std::vector<float> y = dequantize(TensorType::Q6_K, &b, kQK_K);
  for (int e = 0; e < kQK_K; ++e)
    ASSERT_EQ(y[e], 0.0625f * static_cast<float>(b.scales[e / 16]) * static_cast<float>(q(e) - 32))
        << "element " << e;
}

TEST(KQuants, Q8KToFloatIsScaleTimesQuant) {
  BlockQ8K b{};
  b.d = -0.75f;
  for (int e = 0; e < kQK_K; ++e) b.qs[e] = static_cast<int8_t>(e - 128);
  const std::vector<float> y = dequantize(TensorType::Q8_K, &b, kQK_K);
  for (int e = 0; e < kQK_K; ++e) ASSERT_EQ(y[e], -0.75f * static_cast<float>(e - 128));
}

// ------------------------------------------------------------------ golden (gguf package)

struct Golden {
  std::vector<uint8_t> blocks;
  std::vector<float> values;
};

Golden load_golden(const std::string& name, TensorType t) {
  const std::string path = std::string(HEARTH_TEST_DATA) + "/kquants/" + name;
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  Golden g;
  if (bytes.size() < 12 || std::memcmp(bytes.data(), "HKQG", 4) != 0) {
    ADD_FAILURE() << path << ": missing or not a K-quant golden file";
    return g;
  }
  uint32_t type_id, n_blocks;
  std::memcpy(&type_id, bytes.data() + 4, 4);
  std::memcpy(&n_blocks, bytes.data() + 8, 4);
  EXPECT_EQ(type_id, static_cast<uint32_t>(t));
  const size_t block_bytes = n_blocks * static_cast<size_t>(format::traits(t).type_size);
  const size_t value_count = n_blocks * static_cast<size_t>(kQK_K);
  if (bytes.size() != 12 + block_bytes + 4 * value_count) {
    ADD_FAILURE() << path << ": size " << bytes.size() << " does not match its header";
    return g;
  }
  g.blocks.assign(bytes.begin() + 12, bytes.begin() + 12 + static_cast<ptrdiff_t>(block_bytes));
  g.values.resize(value_count);
  std::memcpy(g.values.data(), bytes.data() + 12 + block_bytes, 4 * value_count);
  return g;
}

void expect_matches_golden(const std::string& name, TensorType t) {
  const Golden g = load_golden(name, t);
  ASSERT_FALSE(g.values.empty());
  const std::vector<float> y =
      dequantize(t, g.blocks.data(), static_cast<int64_t>(g.values.size()));
  for (size_t i = 0; i < y.size(); ++i) {
    uint32_t a, b;
    std::memcpy(&a, &y[i], 4);
    std::memcpy(&b, &g.values[i], 4);
    ASSERT_EQ(a, b) << name << " element " << i << " (block " << i / kQK_K << "): hearth " << y[i]
                    << ", gguf " << g.values[i];
  }
}

TEST(KQuants, Q4KMatchesGgufPythonBitExactly) {
  expect_matches_golden("q4_k.bin", TensorType::Q4_K);
}
TEST(KQuants, Q5KMatchesGgufPythonBitExactly) {
  expect_matches_golden("q5_k.bin", TensorType::Q5_K);
}
TEST(KQuants, Q6KMatchesGgufPythonBitExactly) {
  expect_matches_golden("q6_k.bin", TensorType::Q6_K);
}

// ------------------------------------------------------------------ quantizers

double relative_rmse(const std::vector<float>& x, const std::vector<float>& y) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
    ref += static_cast<double>(x[i]) * x[i];
  }
  return std::sqrt(err / ref);
}

TEST(KQuants, QuantizeRoundTripErrorIsBounded) {
  const std::vector<float> x = gaussian(4096, 11, 0.02f);
  // Bounds about 1.6x the relative RMSE these quantizers (and llama.cpp's, which they
  // match byte for byte) reach on Gaussian data: Q4_K 0.072, Q5_K 0.036, Q6_K 0.018.
  const struct {
    TensorType t;
    double bound;
  } cases[] = {{TensorType::Q4_K, 0.12},
               {TensorType::Q5_K, 0.06},
               {TensorType::Q6_K, 0.03},
               {TensorType::Q8_K, 0.008}};
  for (const auto& c : cases) {
    const std::vector<uint8_t> q = quantize(ref_of(c.t), c.t, x);
    const double e = relative_rmse(x, dequantize(c.t, q.data(), static_cast<int64_t>(x.size())));
    EXPECT_LT(e, c.bound) << format::type_name(c.t);
    EXPECT_GT(e, 0.0) << format::type_name(c.t);
  }
}

TEST(KQuants, QuantizeHandlesZerosAndOffsets) {
  // A zero block, a constant block, an all-positive block (exercises the min) and a
  // block with one large outlier.
  std::vector<float> x(4 * kQK_K, 0.f);
  for (int i = 0; i < kQK_K; ++i) {
    x[kQK_K + i] = 3.5f;
    x[2 * kQK_K + i] = 10.f + 0.01f * static_cast<float>(i);
    x[3 * kQK_K + i] = (i == 77 ? 100.f : 0.1f * std::sin(static_cast<float>(i)));
  }
  for (TensorType t : {TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K, TensorType::Q8_K}) {
    const std::vector<uint8_t> q = quantize(ref_of(t), t, x);
    const std::vector<float> y = dequantize(t, q.data(), static_cast<int64_t>(x.size()));
    for (int i = 0; i < kQK_K; ++i) ASSERT_EQ(y[i], 0.f) << format::type_name(t) << " zero block";
    for (size_t i = kQK_K; i < x.size(); ++i)
      ASSERT_NEAR(y[i], x[i], 0.02 * 100.f) << format::type_name(t) << " element " << i;
    EXPECT_NEAR(y[kQK_K + 5], 3.5f, 0.1f) << format::type_name(t);
    EXPECT_NEAR(y[2 * kQK_K + 128], 11.28f, 0.6f) << format::type_name(t);
    EXPECT_NEAR(y[3 * kQK_K + 77], 100.f, 1.f) << format::type_name(t);
  }
}

TEST(KQuants, Q8KQuantizeFollowsGgml) {
  std::vector<float> x = gaussian(kQK_K, 3);
  x[40] = -5.f;  // first element of largest magnitude ...
  x[90] = 5.f;   // ... wins the tie: d = -max/127 > 0 and x[40] maps to -127
  BlockQ8K b;
  ref_of(TensorType::Q8_K).from_float(x.data(), &b, kQK_K);
  EXPECT_FLOAT_EQ(b.d, 5.f / 127.f);
  EXPECT_EQ(b.qs[40], -127);
  EXPECT_EQ(b.qs[90], 127);
  const float iscale = -127.f / -5.f;
  for (int i = 0; i < kQK_K; ++i)
    ASSERT_EQ(b.qs[i], static_cast<int8_t>(std::nearbyint(iscale * x[i]))) << "element " << i;
  for (int k = 0; k < 16; ++k) {
    int sum = 0;
    for (int i = 0; i < 16; ++i) sum += b.qs[16 * k + i];
    ASSERT_EQ(b.bsums[k], sum) << "bsum " << k;
  }
}

// llama.cpp's reference quantizers' output for the same input (see the golden script).
TEST(KQuants, QuantizersMatchLlamaCppByteExactly) {
  const std::string path = std::string(HEARTH_TEST_DATA) + "/kquants/quantize_ref.bin";
  std::ifstream f(path, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)),
                                   std::istreambuf_iterator<char>());
  ASSERT_GE(bytes.size(), 8u) << path;
  ASSERT_EQ(std::memcmp(bytes.data(), "HKQQ", 4), 0) << path;
  uint32_t n;
  std::memcpy(&n, bytes.data() + 4, 4);
  size_t off = 8;
  ASSERT_GE(bytes.size(), off + 4 * size_t{n});
  std::vector<float> x(n);
  std::memcpy(x.data(), bytes.data() + off, 4 * size_t{n});
  off += 4 * size_t{n};
  int types_seen = 0;
  for (TensorType t : {TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K, TensorType::Q8_K}) {
    const auto row = static_cast<size_t>(format::row_bytes(t, n));
    ASSERT_GE(bytes.size(), off + 4 + row) << path << " truncated at " << format::type_name(t);
    uint32_t id;
    std::memcpy(&id, bytes.data() + off, 4);
    ASSERT_EQ(id, static_cast<uint32_t>(t));
    const uint8_t* want = bytes.data() + off + 4;
    off += 4 + row;
    const std::vector<uint8_t> got = quantize(ref_of(t), t, x);
    const size_t bs = static_cast<size_t>(format::traits(t).type_size);
    for (size_t b = 0; b < row / bs; ++b)
      EXPECT_EQ(std::memcmp(got.data() + b * bs, want + b * bs, bs), 0)
          << format::type_name(t) << " block " << b << " differs from llama.cpp";
    ++types_seen;
  }
  EXPECT_EQ(types_seen, 4);
  EXPECT_EQ(off, bytes.size());
}

// ------------------------------------------------------------------ dot products

// Exact dot of the dequantized operands, and sum |w_i x_i| for tolerances.
struct FloatDot {
  double dot = 0, abs_sum = 0;
};

FloatDot float_dot(TensorType wt, const void* w, const void* x8k, int64_t n) {
  const std::vector<float> wf = dequantize(wt, w, n), xf = dequantize(TensorType::Q8_K, x8k, n);
  FloatDot r;
  for (int64_t i = 0; i < n; ++i) {
    r.dot += static_cast<double>(wf[i]) * xf[i];
    r.abs_sum += std::fabs(static_cast<double>(wf[i]) * xf[i]);
  }
  return r;
}

constexpr TensorType kWeightTypes[] = {TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K};

TEST(KQuants, RefVecDotMatchesDotOfDequantized) {
  for (TensorType t : kWeightTypes) {
    ASSERT_EQ(ref_of(t).vec_dot_type, TensorType::Q8_K);
    for (int64_t nb : {1, 3, 8}) {
      const int64_t n = nb * kQK_K;
      const std::vector<float> xf =
          gaussian(static_cast<size_t>(n), 100 + static_cast<uint32_t>(nb));
      const std::vector<uint8_t> x = quantize(ref_of(TensorType::Q8_K), TensorType::Q8_K, xf);
      // Both quantized weights and random-bit blocks (every quant/scale pattern).
      const std::vector<uint8_t> ws[2] = {
          quantize(ref_of(t), t, gaussian(static_cast<size_t>(n), 200 + static_cast<uint32_t>(nb))),
          random_blocks(t, nb, 300 + static_cast<uint32_t>(nb))};
      for (const auto& w : ws) {
        float got = 0;
        ref_of(t).vec_dot(n, &got, w.data(), x.data());
        const FloatDot want = float_dot(t, w.data(), x.data(), n);
        EXPECT_NEAR(got, want.dot, 1e-5 * want.abs_sum + 1e-30)
            << format::type_name(t) << " n=" << n;
      }
    }
  }
}

// ------------------------------------------------------------------ SIMD vs reference

struct SimdTable {
  std::string name;
  KernelTable table;
};

std::vector<SimdTable> simd_tables() {
  std::vector<SimdTable> out;
  const platform::CpuFeatures& cpu = platform::cpu_features();
  if (cpu.avx2) {
    SimdTable s{"avx2", {}};
    fill_avx2_k(s.table);
    out.push_back(s);
  }
  if (cpu.avx512) {
    // HEARTH_ISA=avx512 turns the VNNI variants off; build both when the CPU has VNNI.
    SimdTable s{"avx512", {}};
    test::with_isa_cap("avx512", s.table, fill_avx512_k);
    out.push_back(s);
    if (cpu.avx512_vnni) {
      SimdTable v{"avx512_vnni", {}};
      test::with_isa_cap(nullptr, v.table, fill_avx512_k);
      out.push_back(v);
    }
  }
  return out;
}

TEST(KQuants, SimdVecDotMatchesRefOverSizes) {
  const std::vector<SimdTable> tables = simd_tables();
  if (tables.empty()) GTEST_SKIP() << "CPU has neither AVX2 nor AVX-512";
  for (const SimdTable& s : tables) {
    for (TensorType t : kWeightTypes) {
      const TypeKernels& k = s.table.types[static_cast<uint32_t>(t)];
      ASSERT_NE(k.vec_dot, nullptr) << s.name << " " << format::type_name(t);
      ASSERT_EQ(k.vec_dot_type, TensorType::Q8_K);
      for (int64_t nb : {1, 2, 3, 5, 7, 8, 13, 16, 31, 32}) {
        const int64_t n = nb * kQK_K;
        const auto seed = static_cast<uint32_t>(nb * 31 + static_cast<int>(t));
        const std::vector<uint8_t> x = quantize(ref_of(TensorType::Q8_K), TensorType::Q8_K,
                                                gaussian(static_cast<size_t>(n), seed));
        const std::vector<uint8_t> ws[2] = {
            quantize(ref_of(t), t, gaussian(static_cast<size_t>(n), seed + 1, 0.05f)),
            random_blocks(t, nb, seed + 2)};
        for (const auto& w : ws) {
          float want = 0, got = 0;
          ref_of(t).vec_dot(n, &want, w.data(), x.data());
          k.vec_dot(n, &got, w.data(), x.data());
          const FloatDot fd = float_dot(t, w.data(), x.data(), n);
          ASSERT_NEAR(got, want, 1e-5 * fd.abs_sum + 1e-30)
              << s.name << " " << format::type_name(t) << " n=" << n;
        }
      }
    }
  }
}

TEST(KQuants, SimdQ8KQuantizeIsIdenticalToRef) {
  const std::vector<SimdTable> tables = simd_tables();
  if (tables.empty()) GTEST_SKIP() << "CPU has neither AVX2 nor AVX-512";
  std::vector<float> x = gaussian(13 * kQK_K, 5);
  std::fill(x.begin() + 2 * kQK_K, x.begin() + 3 * kQK_K, 0.f);  // zero block
  x[4 * kQK_K + 200] = 9.f;                                      // tie: the later one ...
  x[4 * kQK_K + 201] = -9.f;                                     // ... must not win
  x[5 * kQK_K + 3] = -1e-30f;                                    // tiny block
  for (int i = 0; i < kQK_K; ++i)
    x[6 * kQK_K + i] = 0.5f * static_cast<float>(i % 5 - 2);  // .5 ties
  const std::vector<uint8_t> want = quantize(ref_of(TensorType::Q8_K), TensorType::Q8_K, x);
  for (const SimdTable& s : tables) {
    const TypeKernels& k = s.table.types[static_cast<uint32_t>(TensorType::Q8_K)];
    ASSERT_NE(k.from_float, nullptr) << s.name;
    const std::vector<uint8_t> got = quantize(k, TensorType::Q8_K, x);
    for (size_t b = 0; b < want.size() / sizeof(BlockQ8K); ++b)
      ASSERT_EQ(std::memcmp(got.data() + b * sizeof(BlockQ8K), want.data() + b * sizeof(BlockQ8K),
                            sizeof(BlockQ8K)),
                0)
          << s.name << " block " << b;
  }
}

TEST(KQuants, DispatchedTableHasKQuantKernels) {
  for (TensorType t : kWeightTypes) {
    const TypeKernels& k = type_kernels(t);
    EXPECT_NE(k.to_float, nullptr) << format::type_name(t);
    EXPECT_NE(k.vec_dot, nullptr) << format::type_name(t);
    EXPECT_EQ(k.vec_dot_type, TensorType::Q8_K) << format::type_name(t);
  }
  EXPECT_NE(type_kernels(TensorType::Q8_K).from_float, nullptr);
}

}  // namespace
}  // namespace hearth::kernels
