// `hearth quantize`: rewrite a GGUF model with its weight matrices in another type.
//
// Every tensor readable by Hearth is dequantized row by row and requantized; 1-D tensors
// (norms, biases) stay as they are. Mixed presets follow llama.cpp's rules so the result
// has the mix users know: the output head (or tied token embedding) in Q6_K for every
// target but Q8_0 and the float types; in Q4_K_M / Q5_K_M, attn_v and ffn_down in Q6_K
// for the first and last eighth of the layers and every third layer between. K-quant
// rows whose length is not a multiple of 256 fall back to Q5_0 / Q5_1 / Q8_0.
//
// The output is written to OUT.partial, fsynced and renamed: never a half-written file,
// never the input overwritten.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "format/tensor_type.h"
#include "platform/status.h"

namespace hearth::app {

struct QuantizeOptions {
  std::string type;  // e.g. "Q4_K_M", "Q8_0", "F16"
  int n_threads = 1;
  bool overwrite = false;  // replace an existing OUT (never IN)
  std::function<void(uint64_t done, uint64_t total)> progress;  // bytes of input processed
};

struct QuantizeReport {
  uint64_t in_bytes = 0, out_bytes = 0;
  int n_quantized = 0, n_kept = 0;
};

// Names accepted by QuantizeOptions::type.
std::vector<std::string> quantize_type_names();

// The type a tensor gets under a preset (exposed for tests).
Expected<format::TensorType> quantize_target(std::string_view preset, const format::GgufTensor& t,
                                             int64_t n_layer, bool has_output_tensor);

Expected<QuantizeReport> quantize_model(const std::string& in_path, const std::string& out_path,
                                        const QuantizeOptions& options);

}  // namespace hearth::app
