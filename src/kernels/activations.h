// Gated activations of feed-forward blocks, beyond ops.h's SwiGLU.
#pragma once

#include <cstdint>

namespace hearth::kernels {

// GELU with the tanh approximation (as Gemma is trained):
//   gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
float gelu_tanh(float x);

// out[i] = gelu_tanh(gate[i]) * up[i]   (GeGLU; n elements; out may alias gate or up)
void geglu(const float* gate, const float* up, float* out, int64_t n);

}  // namespace hearth::kernels
