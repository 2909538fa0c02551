// The kernel tables: built once, on first use (thread-safe function-local statics), from
// the scalar reference fills and then the SIMD fills the CPU supports, capped by
// HEARTH_ISA (see platform::isa_name).
#include <string>

#include "kernels/type_kernels.h"
#include "platform/cpu_features.h"

namespace hearth::kernels {
namespace {

constexpr uint32_t kTableSize = sizeof(KernelTable::types) / sizeof(KernelTable::types[0]);

KernelTable build_ref() {
  KernelTable t;
  fill_ref_legacy(t);
  fill_ref_k(t);
  fill_ref_packed(t);
  return t;
}

const KernelTable& ref_table() {
  static const KernelTable t = build_ref();
  return t;
}

struct Dispatched {
  KernelTable table;
  const char* isa;
};

Dispatched build_dispatched() {
  Dispatched d;
  d.table = build_kernel_table(&d.isa);
  return d;
}

const Dispatched& dispatched() {
  static const Dispatched d = build_dispatched();
  return d;
}

const TypeKernels& lookup(const KernelTable& t, TensorType type) {
  static const TypeKernels kNone{};
  const uint32_t i = static_cast<uint32_t>(type);
  return i < kTableSize ? t.types[i] : kNone;
}

}  // namespace

KernelTable build_kernel_table(const char** isa_out) {
  KernelTable t = ref_table();
  const char* isa_used = "scalar";
  const std::string isa = platform::isa_name();
  const bool avx2 = isa == "avx2" || isa == "avx512" || isa == "avx512_vnni";
  const bool avx512 = isa == "avx512" || isa == "avx512_vnni";
  if (avx2 && platform::cpu_features().avx2) {
    fill_avx2_legacy(t);
    fill_avx2_k(t);
    fill_avx2_gemm(t);
    fill_avx2_packed(t);  // the AVX-512 VNNI fill below replaces it
    isa_used = "avx2";
  }
  if (avx512 && platform::cpu_features().avx512) {
    // The AVX-512 fills pick their VNNI variants themselves from the same ISA cap.
    fill_avx512_legacy(t);
    fill_avx512_k(t);
    fill_avx512_gemm(t);
    isa_used = isa == "avx512_vnni" && platform::cpu_features().avx512_vnni ? "avx512_vnni" : "avx512";
  }
  if (isa_out != nullptr) *isa_out = isa_used;
  return t;
}

const TypeKernels& type_kernels(TensorType t) { return lookup(dispatched().table, t); }
const TypeKernels& type_kernels_ref(TensorType t) { return lookup(ref_table(), t); }
const char* kernels_isa() { return dispatched().isa; }

}  // namespace hearth::kernels
