// GeGLU against values of the tanh-approximated GELU computed in double from its formula.
#include "kernels/activations.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace hearth::kernels {
namespace {

double gelu_tanh_f64(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

TEST(Activations, GeluTanhMatchesFormulaInDouble) {
  for (double x = -12.0; x <= 12.0; x += 0.01) {
    const double want = gelu_tanh_f64(x);
    EXPECT_NEAR(gelu_tanh(static_cast<float>(x)), want, 1e-6 + 2e-6 * std::fabs(want)) << "x=" << x;
  }
  EXPECT_NEAR(gelu_tanh(1.0f), 0.8411920, 1e-6);  // GELU(1) with the tanh approximation
  EXPECT_NEAR(gelu_tanh(-1.0f), -0.1588080, 1e-6);
}

TEST(Activations, GeluTanhIsFiniteAtTheExtremes) {
  const float big = std::numeric_limits<float>::max();
  EXPECT_EQ(gelu_tanh(0.0f), 0.0f);
  EXPECT_EQ(gelu_tanh(-1000.0f), 0.0f);
  EXPECT_EQ(gelu_tanh(1000.0f), 1000.0f);
  EXPECT_EQ(gelu_tanh(-big), 0.0f);
  EXPECT_TRUE(std::isfinite(gelu_tanh(big)));
}

TEST(Activations, GegluMultipliesByUpAndAllowsAliasing) {
  std::vector<float> gate, up, out(37);
  for (int i = 0; i < 37; ++i) {
    gate.push_back(0.25f * static_cast<float>(i - 18));
    up.push_back(1.0f + 0.1f * static_cast<float>(i));
  }
  geglu(gate.data(), up.data(), out.data(), 37);
  for (int i = 0; i < 37; ++i) EXPECT_FLOAT_EQ(out[i], gelu_tanh(gate[i]) * up[i]) << i;
  geglu(gate.data(), up.data(), gate.data(), 37);  // in place, as the forward pass calls it
  EXPECT_EQ(gate, out);
}

}  // namespace
}  // namespace hearth::kernels
