#include "kernels/activations.h"

#include <cmath>

namespace hearth::kernels {

// 0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u)), so gelu is x * sigmoid(2u): one exp, the
// same cost as SiLU. For very negative x, exp overflows to inf and the result is -0,
// the correct limit; for very positive x it is x.
float gelu_tanh(float x) {
  constexpr float kTwoSqrt2OverPi = 1.5957691216057308f;  // 2 * sqrt(2 / pi)
  const float two_u = kTwoSqrt2OverPi * (x + 0.044715f * x * x * x);
  return x / (1.0f + std::exp(-two_u));
}

void geglu(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gelu_tanh(gate[i]) * up[i];
}

}  // namespace hearth::kernels
