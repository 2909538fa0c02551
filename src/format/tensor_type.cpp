#include "format/tensor_type.h"

namespace hearth::format {
namespace {

struct Row {
  uint32_t id;
  TypeTraits traits;
};

// Block layouts as GGUF defines them (sizes in bytes; f16 scales are 2 bytes).
constexpr Row kTypes[] = {
    {0, {"F32", 1, 4, true}},
    {1, {"F16", 1, 2, true}},
    {2, {"Q4_0", 32, 2 + 16, true}},
    {3, {"Q4_1", 32, 2 + 2 + 16, true}},
    {6, {"Q5_0", 32, 2 + 4 + 16, true}},
    {7, {"Q5_1", 32, 2 + 2 + 4 + 16, true}},
    {8, {"Q8_0", 32, 2 + 32, true}},
    {9, {"Q8_1", 32, 4 + 32, false}},
    {10, {"Q2_K", 256, 16 + 64 + 2 + 2, false}},
    {11, {"Q3_K", 256, 32 + 64 + 12 + 2, false}},
    {12, {"Q4_K", 256, 2 + 2 + 12 + 128, true}},
    {13, {"Q5_K", 256, 2 + 2 + 12 + 32 + 128, true}},
    {14, {"Q6_K", 256, 128 + 64 + 16 + 2, true}},
    {15, {"Q8_K", 256, 4 + 256 + 32, false}},
    {16, {"IQ2_XXS", 256, 66, false}},
    {17, {"IQ2_XS", 256, 74, false}},
    {18, {"IQ3_XXS", 256, 98, false}},
    {19, {"IQ1_S", 256, 50, false}},
    {20, {"IQ4_NL", 32, 18, false}},
    {21, {"IQ3_S", 256, 110, false}},
    {22, {"IQ2_S", 256, 82, false}},
    {23, {"IQ4_XS", 256, 136, false}},
    {24, {"I8", 1, 1, false}},
    {25, {"I16", 1, 2, false}},
    {26, {"I32", 1, 4, false}},
    {27, {"I64", 1, 8, false}},
    {28, {"F64", 1, 8, false}},
    {29, {"IQ1_M", 256, 56, false}},
    {30, {"BF16", 1, 2, true}},
};

}  // namespace

const TypeTraits* type_traits(uint32_t type_id) {
  for (const Row& r : kTypes)
    if (r.id == type_id) return &r.traits;
  return nullptr;
}

const TypeTraits& traits(TensorType t) { return *type_traits(static_cast<uint32_t>(t)); }

}  // namespace hearth::format
