// Helpers the kernel tests share: a kernel table filled under a HEARTH_ISA cap (as dispatch
// would fill it on a CPU with less), and reproducible random inputs.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/type_kernels.h"

namespace hearth::kernels::test {

// Calls fill(t) with HEARTH_ISA set to cap (nullptr: unset), then restores the variable.
template <class Fill>
void with_isa_cap(const char* cap, KernelTable& t, Fill fill) {
  const char* old = std::getenv("HEARTH_ISA");
  const std::string saved = old ? old : "";
  if (cap)
    setenv("HEARTH_ISA", cap, 1);
  else
    unsetenv("HEARTH_ISA");
  fill(t);
  if (old)
    setenv("HEARTH_ISA", saved.c_str(), 1);
  else
    unsetenv("HEARTH_ISA");
}

struct IsaTable {
  std::string isa;
  KernelTable table;
};

// The table dispatch builds at each SIMD level this CPU runs (HEARTH_ISA capped to it), so
// an AVX-512 host tests the AVX2 kernels too.
inline std::vector<IsaTable> isa_tables() {
  std::vector<IsaTable> out;
  for (const char* cap : {"avx2", "avx512", "avx512_vnni"}) {
    KernelTable t;
    const char* isa = nullptr;
    with_isa_cap(cap, t, [&](KernelTable& x) { x = build_kernel_table(&isa); });
    if (std::string(isa) == cap) out.push_back({cap, t});
  }
  return out;
}

// n floats from N(mean, stddev^2), the same for the same seed.
inline std::vector<float> random_normal(int64_t n, uint32_t seed, float mean, float stddev) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace hearth::kernels::test
