// The default model's path for tests that need a real model: $HEARTH_MODELS, else
// ~/.local/share/hearth/models (where scripts/fetch_models.py puts it). Tests skip when it
// is absent. Included by relative path (the build adds only src/ to the include path).
#pragma once

#include <cstdlib>
#include <string>

namespace hearth::test_support {

inline std::string default_model() {
  const char* d = std::getenv("HEARTH_MODELS");
  const char* home = std::getenv("HOME");
  const std::string dir =
      d ? d : std::string(home ? home : "") + "/.local/share/hearth/models";
  return dir + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

}  // namespace hearth::test_support
