// Tests of the legacy quant kernels (F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q8_1): f16/bf16
// conversions, quantize round trips, reference dot products against a float dot of the
// dequantized data, every SIMD table the CPU supports against the reference, and the
// dispatch table.
#include <gtest/gtest.h>
#include <immintrin.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/blocks.h"
#include "kernels/half.h"
#include "kernels/type_kernels.h"
#include "platform/cpu_features.h"
#include "../support/kernel_test_util.h"

namespace hearth::kernels {
namespace {

using format::row_bytes;

constexpr TensorType kWeightTypes[] = {TensorType::F32,  TensorType::F16,  TensorType::BF16,
                                       TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0,
                                       TensorType::Q5_1, TensorType::Q8_0};
constexpr TensorType kQuantTypes[] = {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0,
                                      TensorType::Q5_1, TensorType::Q8_0, TensorType::Q8_1};

std::string name(TensorType t) { return std::string(format::type_name(t)); }

const TypeKernels& k(const KernelTable& t, TensorType type) {
  return t.types[static_cast<uint32_t>(type)];
}

KernelTable ref_table() {
  KernelTable t;
  fill_ref_legacy(t);
  return t;
}

// Each SIMD table this CPU can run, filled on top of the reference as dispatch does.
struct NamedTable {
  std::string isa;
  KernelTable table;
};

// The reference table, then fill under HEARTH_ISA = cap (nullptr: uncapped).
template <class Fill>
KernelTable fill_with_cap(const char* cap, Fill fill) {
  KernelTable t = ref_table();
  test::with_isa_cap(cap, t, fill);
  return t;
}

std::vector<NamedTable> simd_tables() {
  std::vector<NamedTable> out;
  const platform::CpuFeatures& f = platform::cpu_features();
  if (f.avx2) out.push_back({"avx2", fill_with_cap(nullptr, fill_avx2_legacy)});
  if (f.avx512) out.push_back({"avx512", fill_with_cap("avx512", fill_avx512_legacy)});
  if (f.avx512_vnni)
    out.push_back({"avx512_vnni", fill_with_cap(nullptr, fill_avx512_legacy)});
  return out;
}

std::vector<float> random_floats(int64_t n, uint32_t seed, float scale = 1.0f) {
  return test::random_normal(n, seed, 0.0f, scale);
}

std::vector<uint8_t> quantize(const KernelTable& t, TensorType type, const std::vector<float>& x) {
  std::vector<uint8_t> q(static_cast<size_t>(row_bytes(type, static_cast<int64_t>(x.size()))));
  k(t, type).from_float(x.data(), q.data(), static_cast<int64_t>(x.size()));
  return q;
}

std::vector<float> dequantize(const KernelTable& t, TensorType type, const std::vector<uint8_t>& q,
                              int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  k(t, type).to_float(q.data(), y.data(), n);
  return y;
}

bool is_one_type(TensorType t) { return t == TensorType::Q4_1 || t == TensorType::Q5_1; }

// A weight row and its activations, quantized by the reference, plus the float view.
struct DotCase {
  TensorType wtype;
  int64_t n;
  std::vector<uint8_t> w, x;
  double expect;     // dot of dequantized weights and dequantized activations, in double
  double tolerance;  // 1e-5 of sum |terms|, plus the f16 rounding of s for the _1 types
};

DotCase make_case(const KernelTable& ref, TensorType wtype, int64_t n, uint32_t seed) {
  DotCase c{wtype, n, {}, {}, 0, 0};
  const TensorType xtype = k(ref, wtype).vec_dot_type;
  // A non-zero mean makes the m * s term of the _1 types matter.
  std::vector<float> wf = random_floats(n, seed);
  for (float& v : wf) v += 0.3f;
  const std::vector<float> xf = random_floats(n, seed + 1000, 2.0f);
  c.w = quantize(ref, wtype, wf);
  c.x = quantize(ref, xtype, xf);
  const std::vector<float> wd = dequantize(ref, wtype, c.w, n);
  const std::vector<float> xd = dequantize(ref, xtype, c.x, n);
  double abs_sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    c.expect += static_cast<double>(wd[i]) * xd[i];
    abs_sum += std::fabs(static_cast<double>(wd[i]) * xd[i]);
  }
  c.tolerance = 1e-5 * abs_sum + 1e-30;
  if (is_one_type(wtype)) {
    // The _1 dot uses s = f16(d * sum(q)) of the activations, rounded to 11 bits.
    const auto* xb = reinterpret_cast<const BlockQ8_1*>(c.x.data());
    for (int64_t b = 0; b < n / kQK; ++b) {
      const f16_t m = wtype == TensorType::Q4_1
                          ? reinterpret_cast<const BlockQ4_1*>(c.w.data())[b].m
                          : reinterpret_cast<const BlockQ5_1*>(c.w.data())[b].m;
      c.tolerance += std::fabs(f16_to_f32(m) * f16_to_f32(xb[b].s)) * std::ldexp(1.0, -10);
    }
  }
  return c;
}

float run_dot(const KernelTable& t, const DotCase& c) {
  float out = NAN;
  k(t, c.wtype).vec_dot(c.n, &out, c.w.data(), c.x.data());
  return out;
}

// ---------------------------------------------------------------- f16 / bf16

float bits_f(uint32_t u) { return f32_from_bits(u); }

TEST(Half, F16KnownValues) {
  EXPECT_EQ(f32_to_f16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.99f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // tie with 65536 rounds to even: overflow
  EXPECT_EQ(f32_to_f16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_f16(INFINITY), 0x7c00);
  EXPECT_EQ(f32_to_f16(-INFINITY), 0xfc00);
  const f16_t nan = f32_to_f16(NAN);
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  EXPECT_NE(f32_to_f16(bits_f(0x7f800001u)) & 0x03ff, 0);  // signalling nan payload not lost
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie: to even
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie: to even (up)
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);
  // Subnormals: 2^-24 is the smallest.
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);               // tie: to even (0)
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);               // 1.5 ulp tie: to 2
  EXPECT_EQ(f32_to_f16(-std::ldexp(1.0f, -24)), 0x8001);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);               // smallest normal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -26)), 0x0400);  // rounds up
  EXPECT_EQ(f32_to_f16(std::ldexp(1023.0f, -24)), 0x03ff);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0xfc00), -INFINITY);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)));
}

TEST(Half, F16AllValuesRoundTrip) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_f32(static_cast<f16_t>(h));
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
      ASSERT_TRUE(std::isnan(f)) << h;
      ASSERT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f)))) << h;
    } else {
      ASSERT_EQ(f32_to_f16(f), h) << h;
    }
  }
}

__attribute__((target("f16c"))) uint16_t hw_f32_to_f16(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}

TEST(Half, F16MatchesF16cOnRandomBits) {
  if (!platform::cpu_features().avx2) GTEST_SKIP() << "no F16C on this CPU";
  std::mt19937 rng(7);
  for (int i = 0; i < (1 << 20); ++i) {
    const uint32_t u = rng();
    const float f = bits_f(u);
    const uint16_t hw = hw_f32_to_f16(f);
    const uint16_t sw = f32_to_f16(f);
    if (std::isnan(f))
      ASSERT_TRUE((sw & 0x7c00) == 0x7c00 && (sw & 0x3ff)) << std::hex << u;
    else
      ASSERT_EQ(sw, hw) << std::hex << u;
  }
}

TEST(Half, Bf16KnownValues) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_bf16(bits_f(0x3f808000u)), 0x3f80);  // tie: to even
  EXPECT_EQ(f32_to_bf16(bits_f(0x3f818000u)), 0x3f82);  // tie: to even (up)
  EXPECT_EQ(f32_to_bf16(bits_f(0x3f808001u)), 0x3f81);
  EXPECT_EQ(f32_to_bf16(bits_f(0x00010000u)), 0x0001);  // subnormal kept
  EXPECT_EQ(f32_to_bf16(bits_f(0x7f7fffffu)), 0x7f80);  // max float rounds to inf
  EXPECT_EQ(f32_to_bf16(INFINITY), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-INFINITY), 0xff80);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(bits_f(0x7f800001u)))));  // not inf
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = bf16_to_f32(static_cast<bf16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_bf16(f), h) << h;
  }
}

// ---------------------------------------------------------------- known answers

TEST(LegacyQuants, Q4_1KnownBlock) {
  BlockQ4_1 w{};
  w.d = f32_to_f16(0.5f);
  w.m = f32_to_f16(-1.0f);
  for (int j = 0; j < 16; ++j) w.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const KernelTable ref = ref_table();
  float y[32];
  k(ref, TensorType::Q4_1).to_float(&w, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * j - 1.0f) << j;
    EXPECT_EQ(y[j + 16], 0.5f * (15 - j) - 1.0f) << j;
  }
  BlockQ8_1 x{};
  x.d = f32_to_f16(1.0f);
  x.s = f32_to_f16(32.0f);
  for (int8_t& q : x.qs) q = 1;
  // sum of the 32 values: 0.5 * (120 + 120) - 32
  float out = 0;
  k(ref, TensorType::Q4_1).vec_dot(32, &out, &w, &x);
  EXPECT_EQ(out, 88.0f);
  for (const NamedTable& t : simd_tables()) {
    out = 0;
    k(t.table, TensorType::Q4_1).vec_dot(32, &out, &w, &x);
    EXPECT_EQ(out, 88.0f) << t.isa;
  }
}

TEST(LegacyQuants, Q8_0KnownBlock) {
  BlockQ8_0 w{};
  w.d = f32_to_f16(0.25f);
  for (int j = 0; j < 32; ++j) w.qs[j] = static_cast<int8_t>(j - 16);
  const KernelTable ref = ref_table();
  float y[32];
  k(ref, TensorType::Q8_0).to_float(&w, y, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.25f * (j - 16)) << j;
  BlockQ8_0 x{};
  x.d = f32_to_f16(1.0f);
  for (int8_t& q : x.qs) q = 1;
  float out = 0;
  k(ref, TensorType::Q8_0).vec_dot(32, &out, &w, &x);
  EXPECT_EQ(out, -4.0f);  // 0.25 * (496 - 512)
  for (const NamedTable& t : simd_tables()) {
    out = 0;
    k(t.table, TensorType::Q8_0).vec_dot(32, &out, &w, &x);
    EXPECT_EQ(out, -4.0f) << t.isa;
  }
}

TEST(LegacyQuants, Q4_0ExactGridRoundTrips) {
  // -4 has the largest magnitude, so d = -4 / -8 = 0.5 and every value is on the grid.
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = 0.5f * static_cast<float>((j % 16) - 8);
  const KernelTable ref = ref_table();
  const std::vector<uint8_t> q = quantize(ref, TensorType::Q4_0, x);
  EXPECT_EQ(reinterpret_cast<const BlockQ4_0*>(q.data())->d, f32_to_f16(0.5f));
  EXPECT_EQ(dequantize(ref, TensorType::Q4_0, q, 32), x);
}

TEST(LegacyQuants, Q8RoundsHalfAwayFromZero) {
  // amax = 127 gives d = 1 and id = 1 exactly, so x * id lands on .5 ties.
  std::vector<float> x(64, 0.0f);
  const float vals[] = {127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 1.5f, -1.5f, 126.5f, -3.49f};
  for (size_t i = 0; i < std::size(vals); ++i) x[i] = x[i + 32] = vals[i];
  const KernelTable ref = ref_table();
  const std::vector<uint8_t> q = quantize(ref, TensorType::Q8_0, x);
  const auto* b = reinterpret_cast<const BlockQ8_0*>(q.data());
  const int expect[] = {127, 3, -3, 1, -1, 2, -2, 127, -3};
  for (size_t i = 0; i < std::size(expect); ++i) EXPECT_EQ(b->qs[i], expect[i]) << i;
  for (const NamedTable& t : simd_tables()) {
    EXPECT_EQ(quantize(t.table, TensorType::Q8_0, x), q) << t.isa;
    EXPECT_EQ(quantize(t.table, TensorType::Q8_1, x), quantize(ref, TensorType::Q8_1, x))
        << t.isa;
  }
}

// ---------------------------------------------------------------- reference kernels

TEST(LegacyQuants, RoundTripErrorWithinHalfStep) {
  const KernelTable ref = ref_table();
  const int64_t n = 4096;
  for (TensorType type : kQuantTypes) {
    std::vector<float> x = random_floats(n, 11);
    for (int64_t i = 0; i < n; i += 64) x[static_cast<size_t>(i)] += 4.0f;  // outliers
    const std::vector<uint8_t> q = quantize(ref, type, x);
    const std::vector<float> y = dequantize(ref, type, q, n);
    double err2 = 0, x2 = 0;
    for (int64_t b = 0; b < n / kQK; ++b) {
      float amax = 0, lo = INFINITY, hi = -INFINITY;
      for (int j = 0; j < kQK; ++j) {
        const float v = x[static_cast<size_t>(b * kQK + j)];
        amax = std::max(amax, std::fabs(v));
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      // Step of the grid, and how much of it the rounding may cost (the _0 types put
      // the largest magnitude on -8 / -16, so the far end is off by up to one step).
      double step = 0, steps = 0;
      switch (type) {
        case TensorType::Q4_0: step = amax / 8, steps = 1.0; break;
        case TensorType::Q5_0: step = amax / 16, steps = 1.0; break;
        case TensorType::Q4_1: step = (hi - lo) / 15, steps = 0.5; break;
        case TensorType::Q5_1: step = (hi - lo) / 31, steps = 0.5; break;
        default: step = amax / 127, steps = 0.5; break;
      }
      // Plus f16 rounding of d (2^-11 relative, times up to 32 steps) and of m.
      const double bound = step * (steps + 32 * std::ldexp(1.0, -11)) +
                           std::fabs(lo) * std::ldexp(1.0, -11) + 1e-7;
      for (int j = 0; j < kQK; ++j) {
        const size_t i = static_cast<size_t>(b * kQK + j);
        ASSERT_LE(std::fabs(y[i] - x[i]), bound) << name(type) << " element " << i;
        err2 += (y[i] - x[i]) * (y[i] - x[i]);
        x2 += x[i] * x[i];
      }
    }
    const double rel = std::sqrt(err2 / x2);
    EXPECT_LT(rel, type == TensorType::Q4_0 || type == TensorType::Q4_1 ? 0.12 : 0.06)
        << name(type);
  }
}

TEST(LegacyQuants, FloatTypesRoundTrip) {
  const KernelTable ref = ref_table();
  const std::vector<float> x = random_floats(1000, 3);
  EXPECT_EQ(dequantize(ref, TensorType::F32, quantize(ref, TensorType::F32, x), 1000), x);
  const std::vector<float> h = dequantize(ref, TensorType::F16, quantize(ref, TensorType::F16, x), 1000);
  const std::vector<float> b = dequantize(ref, TensorType::BF16, quantize(ref, TensorType::BF16, x), 1000);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_LE(std::fabs(h[i] - x[i]), std::fabs(x[i]) * std::ldexp(1.0f, -11) + 1e-7f);
    EXPECT_LE(std::fabs(b[i] - x[i]), std::fabs(x[i]) * std::ldexp(1.0f, -8));
  }
}

TEST(LegacyQuants, ZeroBlockQuantizesToZero) {
  const KernelTable ref = ref_table();
  const std::vector<float> x(64, 0.0f);
  for (TensorType type : kQuantTypes)
    for (float v : dequantize(ref, type, quantize(ref, type, x), 64)) ASSERT_EQ(v, 0.0f) << name(type);
}

TEST(LegacyQuants, RefVecDotMatchesFloatDotOfDequantized) {
  const KernelTable ref = ref_table();
  for (TensorType type : kWeightTypes) {
    for (int64_t n : {32, 96, 1024, 4096 + 32}) {
      const DotCase c = make_case(ref, type, n, static_cast<uint32_t>(n));
      const float got = run_dot(ref, c);
      EXPECT_NEAR(got, c.expect, c.tolerance) << name(type) << " n=" << n;
    }
  }
}

// ---------------------------------------------------------------- SIMD vs reference

TEST(LegacyQuants, SimdVecDotMatchesRefOverSizes) {
  const std::vector<NamedTable> tables = simd_tables();
  if (tables.empty()) GTEST_SKIP() << "no AVX2 on this CPU";
  const KernelTable ref = ref_table();
  for (TensorType type : kWeightTypes) {
    std::vector<int64_t> sizes;
    for (int64_t n = 32; n <= 4096 + 32; n += 32) sizes.push_back(n);
    if (format::traits(type).block_size == 1)  // odd tails of the float kernels
      for (int64_t n = 1; n < 80; ++n) sizes.push_back(n);
    for (int64_t n : sizes) {
      const DotCase c = make_case(ref, type, n, static_cast<uint32_t>(n * 7 + 1));
      const float want = run_dot(ref, c);
      for (const NamedTable& t : tables) {
        const float got = run_dot(t.table, c);
        ASSERT_NEAR(got, want, c.tolerance) << t.isa << " " << name(type) << " n=" << n;
      }
    }
  }
}

TEST(LegacyQuants, SimdQuantizeActivationsBitExact) {
  const std::vector<NamedTable> tables = simd_tables();
  if (tables.empty()) GTEST_SKIP() << "no AVX2 on this CPU";
  const KernelTable ref = ref_table();
  for (TensorType type : {TensorType::Q8_0, TensorType::Q8_1}) {
    for (int64_t n = 32; n <= 2048; n += 32 * 5) {
      std::vector<float> x = random_floats(n, static_cast<uint32_t>(n), 3.0f);
      for (int j = 0; j < 32 && j < n; ++j) x[static_cast<size_t>(j)] = 0.0f;  // a zero block
      const std::vector<uint8_t> want = quantize(ref, type, x);
      for (const NamedTable& t : tables)
        ASSERT_EQ(quantize(t.table, type, x), want) << t.isa << " " << name(type) << " n=" << n;
    }
  }
}

// ---------------------------------------------------------------- dispatch

TEST(Dispatch, TablesAreFilled) {
  for (TensorType type : kWeightTypes) {
    const TypeKernels& r = type_kernels_ref(type);
    const TypeKernels& d = type_kernels(type);
    ASSERT_NE(r.to_float, nullptr) << name(type);
    ASSERT_NE(r.from_float, nullptr) << name(type);
    ASSERT_NE(r.vec_dot, nullptr) << name(type);
    ASSERT_NE(d.vec_dot, nullptr) << name(type);
    EXPECT_EQ(r.vec_dot_type, d.vec_dot_type) << name(type);
  }
  EXPECT_EQ(type_kernels(TensorType::Q4_1).vec_dot_type, TensorType::Q8_1);
  EXPECT_EQ(type_kernels(TensorType::Q4_0).vec_dot_type, TensorType::Q8_0);
  EXPECT_EQ(type_kernels(TensorType::F16).vec_dot_type, TensorType::F32);
  EXPECT_EQ(type_kernels(static_cast<TensorType>(31)).vec_dot, nullptr);
  EXPECT_EQ(type_kernels(static_cast<TensorType>(1000)).vec_dot, nullptr);
}

TEST(Dispatch, IsaFollowsCpuAndCap) {
  // The table is built once, so this checks whatever HEARTH_ISA the test started with.
  EXPECT_EQ(std::string(kernels_isa()), platform::isa_name());
  const bool simd = std::string(kernels_isa()) != "scalar";
  EXPECT_EQ(type_kernels(TensorType::Q4_1).vec_dot != type_kernels_ref(TensorType::Q4_1).vec_dot,
            simd);
  const KernelTable ref = ref_table();
  const DotCase c = make_case(ref, TensorType::Q4_1, 1024, 5);
  float got = NAN;
  type_kernels(TensorType::Q4_1).vec_dot(c.n, &got, c.w.data(), c.x.data());
  EXPECT_NEAR(got, run_dot(ref, c), c.tolerance) << kernels_isa();
}

}  // namespace
}  // namespace hearth::kernels
