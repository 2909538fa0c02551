// Kernel micro-benchmarks (Google Benchmark): kernels::matmul per weight type at the shapes
// of SmolLM2-135M (576 -> 1536, the FFN up projection) and Llama-3.2-1B (2048 -> 8192) and
// an L2-resident 2048 -> 256, on
// one pool thread (rates use wall time), through the dispatched kernels (HEARTH_ISA caps
// them as in the product).
//   matvec/<type>/<shape>: one token (decode); reports weight GB/s read (bytes_per_second).
//   gemm/<type>/<shape>:   512 tokens (prefill); reports GFLOP/s (2 * rows * cols * tokens).
//   gemm64/<type>/<shape>: 64 tokens (a short prompt: the packed gemm's panel packing is
//                          amortized over 8 token tiles only); GFLOP/s.
//   matvec_dram/<type>/<shape>/<threads>: one token on a pool of 1 or 2 threads, cycling
//                          through copies of the weights totalling >= 256 MiB, so every
//                          call streams from DRAM as decode does; weight GB/s.
//   il_<any of these>:     the same with the weights interleaved (kernels/interleave.h), as
//                          the engine holds them where the CPU has the kernels.
// HEARTH_PACKED_GEMM=0 gives the tiled gemm's numbers for comparison.
// Built when libbenchmark-dev is installed: build-x/kernels_bench [--benchmark_filter=gemm].
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "format/tensor_type.h"
#include "kernels/interleave.h"
#include "kernels/ops.h"
#include "kernels/type_kernels.h"
#include "platform/mapped_file.h"
#include "platform/thread_pool.h"

namespace {

using hearth::format::TensorType;
namespace kernels = hearth::kernels;

struct Shape {
  const char* name;
  int64_t n_cols, n_rows;
};
// "L2": a 1B-wide matrix small enough (256 rows, <= 0.6 MB) to stay in a core's L2, so
// matvec/<type>/L2 is the kernel's compute rate without memory in the way.
constexpr Shape kShapes[] = {{"135M", 576, 1536}, {"1B", 2048, 8192}, {"L2", 2048, 256}};
constexpr TensorType kTypes[] = {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0,
                                 TensorType::Q5_1, TensorType::Q8_0, TensorType::Q4_K,
                                 TensorType::Q5_K, TensorType::Q6_K};

std::vector<float> random_floats(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

// Weights quantized from random floats by the reference quantizer (valid scales).
std::vector<uint8_t> weights(TensorType type, const Shape& s) {
  const kernels::TypeKernels& ref = kernels::type_kernels_ref(type);
  const int64_t rb = hearth::format::row_bytes(type, s.n_cols);
  std::vector<uint8_t> w(static_cast<size_t>(rb * s.n_rows));
  std::vector<float> row = random_floats(s.n_cols, 1);
  for (int64_t r = 0; r < s.n_rows; ++r) ref.from_float(row.data(), w.data() + r * rb, s.n_cols);
  return w;
}

// The weights as the engine holds them for this CPU: interleaved (kernels/interleave.h)
// where the type supports it, with `il`.
std::vector<uint8_t> held(TensorType type, const Shape& s, bool il) {
  std::vector<uint8_t> w = weights(type, s);
  if (!il) return w;
  std::vector<uint8_t> out(w.size());
  kernels::interleave_rows(type, s.n_cols, s.n_rows, w.data(), out.data(), 0, s.n_rows);
  return out;
}

void run_matmul(benchmark::State& state, TensorType type, Shape s, int64_t n_tokens, bool il) {
  hearth::platform::ThreadPool pool(1);
  const std::vector<uint8_t> w = held(type, s, il);
  const std::vector<float> x = random_floats(s.n_cols * n_tokens, 2);
  std::vector<float> y(static_cast<size_t>(s.n_rows * n_tokens));
  std::vector<uint8_t> scratch(
      static_cast<size_t>(kernels::matmul_scratch_bytes(type, s.n_cols, n_tokens)));
  for (auto _ : state) {
    kernels::matmul(type, w.data(), s.n_rows, s.n_cols, x.data(), n_tokens, y.data(),
                    scratch.data(), pool, il);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double iters = static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(w.size()) * state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * static_cast<double>(s.n_rows * s.n_cols * n_tokens) * iters * 1e-9,
      benchmark::Counter::kIsRate);
  state.SetLabel(kernels::kernels_isa());
}

// Decode from DRAM: each call reads the next of enough copies of the weights that they
// cannot stay in the last-level cache.
void run_matvec_dram(benchmark::State& state, TensorType type, Shape s, int threads, bool il) {
  hearth::platform::ThreadPool pool(threads);
  const std::vector<uint8_t> w1 = held(type, s, il);
  constexpr int64_t kTotalBytes = int64_t{256} << 20;
  const int64_t copies = (kTotalBytes + static_cast<int64_t>(w1.size()) - 1) / static_cast<int64_t>(w1.size());
  // In huge pages where the kernel gives them, as the engine holds interleaved weights.
  auto buf = hearth::platform::PageBuffer::allocate(w1.size() * static_cast<size_t>(copies));
  if (!buf) {
    state.SkipWithError(buf.error().c_str());
    return;
  }
  uint8_t* w = buf->data();
  for (int64_t c = 0; c < copies; ++c) std::copy(w1.begin(), w1.end(), w + static_cast<int64_t>(w1.size()) * c);
  const std::vector<float> x = random_floats(s.n_cols, 2);
  std::vector<float> y(static_cast<size_t>(s.n_rows));
  std::vector<uint8_t> scratch(static_cast<size_t>(kernels::matmul_scratch_bytes(type, s.n_cols, 1)));
  int64_t c = 0;
  for (auto _ : state) {
    kernels::matmul(type, w + static_cast<int64_t>(w1.size()) * c, s.n_rows, s.n_cols, x.data(), 1,
                    y.data(), scratch.data(), pool, il);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    c = c + 1 == copies ? 0 : c + 1;
  }
  state.SetBytesProcessed(static_cast<int64_t>(w1.size()) * state.iterations());
  state.SetLabel(kernels::kernels_isa());
}

int register_all() {
  // Each type in the file's layout, and (prefix "il_") interleaved where this CPU has the
  // kernels for it: what the engine then holds.
  for (bool il : {false, true}) {
    const std::string pre = il ? "il_" : "";
    for (const Shape& s : kShapes) {
      for (TensorType t : kTypes) {
        if (il && !kernels::interleave_supported(t, s.n_cols, s.n_rows)) continue;
        const std::string name = std::string(hearth::format::type_name(t)) + "/" + s.name;
        benchmark::RegisterBenchmark((pre + "matvec/" + name).c_str(), run_matmul, t, s, int64_t{1}, il)
            ->Unit(benchmark::kMicrosecond)->UseRealTime();
        benchmark::RegisterBenchmark((pre + "gemm/" + name).c_str(), run_matmul, t, s, int64_t{512}, il)
            ->Unit(benchmark::kMillisecond)->UseRealTime();
        benchmark::RegisterBenchmark((pre + "gemm64/" + name).c_str(), run_matmul, t, s, int64_t{64}, il)
            ->Unit(benchmark::kMillisecond)->UseRealTime();
      }
    }
    // Decode from DRAM at the 1B's projection shapes: up (2048 -> 8192) and down (8192 -> 2048).
    for (const Shape& s : {Shape{"1B", 2048, 8192}, Shape{"1Bdown", 8192, 2048}})
      for (TensorType t : kTypes) {
        if (il && !kernels::interleave_supported(t, s.n_cols, s.n_rows)) continue;
        for (int threads : {1, 2})
          benchmark::RegisterBenchmark((pre + "matvec_dram/" + std::string(hearth::format::type_name(t)) + "/" +
                                        s.name + "/" + std::to_string(threads)).c_str(),
                                       run_matvec_dram, t, s, threads, il)
              ->Unit(benchmark::kMicrosecond)->UseRealTime();
      }
  }
  return 0;
}

const int kRegistered = register_all();

}  // namespace

BENCHMARK_MAIN();
