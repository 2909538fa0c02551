// Interleaved weights (kernels/interleave.h): the layout moves bytes and gives them back,
// and a matmul over interleaved weights gives the same bits as over the file's layout, on
// every path (the interleaved rowdot for 1-2 tokens where the CPU has one, the packed gemm
// reading interleaved groups).
#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <vector>

#include "kernels/interleave.h"
#include "kernels/ops.h"
#include "kernels/type_kernels.h"
#include "../support/kernel_test_util.h"

namespace hearth::kernels {
namespace {

using format::row_bytes;
using format::TensorType;

constexpr TensorType kLayoutTypes[] = {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0,
                                       TensorType::Q5_1, TensorType::Q8_0, TensorType::Q4_K,
                                       TensorType::Q5_K, TensorType::Q6_K};

std::vector<uint8_t> quantized_rows(TensorType type, int64_t rows, int64_t n, uint32_t seed) {
  const TypeKernels& ref = type_kernels_ref(type);
  const std::vector<float> f = test::random_normal(rows * n, seed, 0.2f, 1.0f);
  const int64_t rb = row_bytes(type, n);
  std::vector<uint8_t> q(static_cast<size_t>(rb * rows));
  for (int64_t r = 0; r < rows; ++r) ref.from_float(f.data() + r * n, q.data() + r * rb, n);
  return q;
}

int64_t cols_for(TensorType t) { return format::traits(t).block_size == 256 ? 768 : 320; }

// Row r of an interleaved matrix back in the file's layout, read with interleave.h's
// formulas (written here apart from the library's copy loop, so the two check each other).
std::vector<uint8_t> row_of(TensorType t, int64_t n, int64_t rows, const std::vector<uint8_t>& il,
                            int64_t r) {
  InterleaveLayout l;
  EXPECT_TRUE(interleave_layout(t, &l));
  const int64_t rb = row_bytes(t, n), nu = n / l.block_elems;
  std::vector<uint8_t> out(static_cast<size_t>(rb));
  if (r >= rows / 16 * 16) {  // past the last whole group: unchanged
    std::memcpy(out.data(), il.data() + r * rb, out.size());
    return out;
  }
  const int64_t g = r / 16 * 16, i = r % 16;
  for (int64_t u = 0; u < nu; ++u) {
    const uint8_t* blk = il.data() + g * rb + u * 16 * l.block_bytes;
    uint8_t* o = out.data() + u * l.block_bytes;
    int at = 0;  // byte offset in the file's block
    for (int h = 0; h < l.lead_halves; ++h, at += 2) std::memcpy(o + at, blk + 2 * (16 * h + i), 2);
    for (int j = 0; j < l.dwords; ++j, at += 4)
      std::memcpy(o + at, blk + 32 * l.lead_halves + 4 * (16 * j + i), 4);
    for (int h = 0; h < l.tail_halves; ++h, at += 2)
      std::memcpy(o + at, blk + 32 * l.lead_halves + 64 * l.dwords + 2 * (16 * h + i), 2);
  }
  return out;
}

TEST(Interleave, LayoutsCoverTheBlockAndOnlyThose) {
  for (TensorType t : kLayoutTypes) {
    InterleaveLayout l;
    ASSERT_TRUE(interleave_layout(t, &l)) << format::type_name(t);
    EXPECT_EQ(2 * l.lead_halves + 4 * l.dwords + 2 * l.tail_halves, format::traits(t).type_size);
  }
  InterleaveLayout l;
  EXPECT_FALSE(interleave_layout(TensorType::F32, &l));
  EXPECT_FALSE(interleave_layout(TensorType::F16, &l));
  EXPECT_FALSE(interleave_layout(TensorType::Q8_K, &l));
  EXPECT_FALSE(interleave_supported(TensorType::F32, 256, 16));
}

// Every byte goes where interleave.h says and comes back: rows of whole groups and a
// verbatim tail, and a matrix split between two callers at a group boundary.
TEST(Interleave, RoundTripsEveryRowAndGroup) {
  for (TensorType t : kLayoutTypes) {
    const int64_t n = cols_for(t), rows = 16 * 3 + 5, rb = row_bytes(t, n);
    const std::vector<uint8_t> w = quantized_rows(t, rows, n, 7);
    std::vector<uint8_t> il(w.size(), 0xAB);
    interleave_rows(t, n, rows, w.data(), il.data(), 0, 32);
    interleave_rows(t, n, rows, w.data(), il.data(), 32, rows);
    EXPECT_NE(std::memcmp(il.data(), w.data(), static_cast<size_t>(16 * rb)), 0) << format::type_name(t);
    // The first block of the group: row i's first half / dword sits at lane i.
    InterleaveLayout l;
    ASSERT_TRUE(interleave_layout(t, &l));
    for (int i = 0; i < 16; ++i) {
      const int sz = l.lead_halves > 0 ? 2 : 4;
      EXPECT_EQ(std::memcmp(il.data() + sz * i, w.data() + i * rb, static_cast<size_t>(sz)), 0);
    }
    for (int64_t r = 0; r < rows; ++r) {
      const std::vector<uint8_t> row = row_of(t, n, rows, il, r);
      ASSERT_EQ(std::memcmp(row.data(), w.data() + r * rb, static_cast<size_t>(rb)), 0)
          << format::type_name(t) << " row " << r;
    }
  }
}

// matmul over interleaved weights == matmul over the file's layout, bit for bit: 1 and 2
// tokens (interleaved rowdot where the CPU has one), 3 and 11 (the packed gemm reading
// interleaved groups). K-quant rows of 9 super-blocks: two panels of 32 blocks and a tail.
TEST(Interleave, MatmulBitIdenticalToFileLayout) {
  platform::ThreadPool pool(2);
  int tested = 0;
  for (TensorType t : kLayoutTypes) {
    const bool super = format::traits(t).block_size == 256;
    for (int64_t n : super ? std::vector<int64_t>{256, 2304} : std::vector<int64_t>{32, 2080}) {
      const int64_t rows = 48;
      if (!interleave_supported(t, n, rows)) continue;
      ++tested;
      const std::vector<uint8_t> w = quantized_rows(t, rows, n, 11);
      std::vector<uint8_t> il(w.size());
      interleave_rows(t, n, rows, w.data(), il.data(), 0, rows);
      for (int64_t toks : {1, 2, 3, 11}) {
        const std::vector<float> x = test::random_normal(toks * n, 13, 0.0f, 1.0f);
        std::vector<uint8_t> scratch(static_cast<size_t>(matmul_scratch_bytes(t, n, toks)));
        std::vector<float> y(static_cast<size_t>(toks * rows), -1.0f), yi(y.size(), -2.0f);
        matmul(t, w.data(), rows, n, x.data(), toks, y.data(), scratch.data(), pool);
        matmul(t, il.data(), rows, n, x.data(), toks, yi.data(), scratch.data(), pool, true);
        for (size_t i = 0; i < y.size(); ++i)
          ASSERT_EQ(std::bit_cast<uint32_t>(y[i]), std::bit_cast<uint32_t>(yi[i]))
              << format::type_name(t) << " n=" << n << " toks=" << toks << " i=" << i << ": "
              << y[i] << " vs " << yi[i];
      }
    }
  }
  if (tested == 0) GTEST_SKIP() << "no interleaved kernels on this CPU";
}

// Every SIMD level's gemm over interleaved weights gives the scalar twin's bits (the packed
// gemm of gemm_packed_ref.cpp over the file's layout): 1, 2 and 9 tokens, two groups, K-quant
// rows of 9 super-blocks (two panels of 32 blocks and a tail).
TEST(Interleave, EveryLevelBitIdenticalToScalarTwin) {
  const std::vector<test::IsaTable> tables = test::isa_tables();
  if (tables.empty()) GTEST_SKIP() << "no AVX2";
  KernelTable twin;
  fill_ref_legacy(twin);
  fill_ref_k(twin);
  fill_ref_packed(twin);
  for (const test::IsaTable& it : tables)
    for (TensorType t : kLayoutTypes) {
      const TypeKernels& k = it.table.types[static_cast<uint32_t>(t)];
      const TypeKernels& rk = twin.types[static_cast<uint32_t>(t)];
      if (k.il_packed_gemm == nullptr) continue;  // this level never interleaves the type
      const bool super = format::traits(t).block_size == 256;
      const int64_t n = super ? 2304 : 2080, rows = 32, rb = row_bytes(t, n);
      const std::vector<uint8_t> w = quantized_rows(t, rows, n, 19);
      std::vector<uint8_t> il(w.size());
      interleave_rows(t, n, rows, w.data(), il.data(), 0, rows);
      for (int64_t toks : {1, 2, 9}) {
        const std::vector<float> x = test::random_normal(toks * n, 23, 0.0f, 1.0f);
        const int64_t tiles = (toks + kPackedTileTokens - 1) / kPackedTileTokens;
        std::vector<uint8_t> xp(static_cast<size_t>(packed_x_bytes(n, toks))), xr(xp.size());
        std::vector<float> y(static_cast<size_t>(toks * rows), -1.0f), yr(y.size(), -2.0f);
        k.pack_x(x.data(), n, toks, 0, tiles, xp.data());
        k.il_packed_gemm(n, il.data(), rb, rows, xp.data(), toks, y.data(), rows);
        rk.pack_x(x.data(), n, toks, 0, tiles, xr.data());
        rk.packed_gemm(n, w.data(), rb, rows, xr.data(), toks, yr.data(), rows);
        for (size_t i = 0; i < y.size(); ++i)
          ASSERT_EQ(std::bit_cast<uint32_t>(y[i]), std::bit_cast<uint32_t>(yr[i]))
              << it.isa << " " << format::type_name(t) << " toks=" << toks << " i=" << i << ": "
              << y[i] << " vs " << yr[i];
      }
    }
}

}  // namespace
}  // namespace hearth::kernels
