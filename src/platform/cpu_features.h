// CPU features detected once at run time (CPUID + XGETBV), so one binary runs on any
// x86-64 machine and picks the widest kernels the CPU and OS support.
#pragma once

#include <string>

namespace hearth::platform {

struct CpuFeatures {
  bool avx2 = false;      // with FMA and F16C
  bool avx512 = false;    // F, BW, VL, DQ
  bool avx512_vnni = false;
  bool avx512_bf16 = false;
  std::string brand;      // e.g. "AMD EPYC"
};

const CpuFeatures& cpu_features();
// "avx512_vnni", "avx512", "avx2" or "scalar"; HEARTH_ISA=scalar|avx2|avx512 caps it.
std::string isa_name();

}  // namespace hearth::platform
