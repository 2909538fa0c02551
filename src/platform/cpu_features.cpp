#include "platform/cpu_features.h"

#include <cpuid.h>

#include <cstdlib>
#include <cstring>
#include <string_view>

namespace hearth::platform {
namespace {

uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), fma = c & (1u << 12), f16c = c & (1u << 29);
  const bool avx = c & (1u << 28);
  uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    const bool avx2 = b & (1u << 5);
    f.avx2 = avx && avx2 && fma && f16c && os_ymm;
    const bool f512 = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30),
               vl = b & (1u << 31);
    f.avx512 = f.avx2 && os_zmm && f512 && dq && bw && vl;
    f.avx512_vnni = f.avx512 && (c & (1u << 11));
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    f.avx512_bf16 = f.avx512 && (a1 & (1u << 5));
  }
  char brand[49] = {};
  if (static_cast<unsigned>(__get_cpuid_max(0x80000000, nullptr)) >= 0x80000004u) {
    for (unsigned i = 0; i < 3; ++i) {
      unsigned r[4];
      __get_cpuid(0x80000002 + i, &r[0], &r[1], &r[2], &r[3]);
      std::memcpy(brand + 16 * i, r, 16);
    }
  }
  std::string_view s(brand);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.remove_suffix(1);
  f.brand = std::string(s);
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

std::string isa_name() {
  const CpuFeatures& f = cpu_features();
  std::string_view cap = std::getenv("HEARTH_ISA") ? std::getenv("HEARTH_ISA") : "";
  if (cap == "scalar") return "scalar";
  if (f.avx512_vnni && cap != "avx2" && cap != "avx512") return "avx512_vnni";
  if (f.avx512 && cap != "avx2") return "avx512";
  if (f.avx2) return "avx2";
  return "scalar";
}

}  // namespace hearth::platform
