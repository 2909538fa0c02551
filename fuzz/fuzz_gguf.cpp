// libFuzzer target: the GGUF reader must reject any malformed input cleanly.
#include <cstddef>
#include <cstdint>

#include "format/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = hearth::format::GgufFile::from_memory(data, size, "fuzz.gguf");
  if (f) {
    // Touch what a loader would: every metadata getter and every tensor's bytes.
    for (const auto& kv : (*f)->kvs()) {
      (void)(*f)->get_string(kv.key);
      (void)(*f)->get_f32_array(kv.key);
      (void)(*f)->get_i32_array(kv.key);
    }
    volatile uint8_t sink = 0;
    for (const auto& t : (*f)->tensors())
      if (t.n_bytes) sink = sink + t.data[0] + t.data[t.n_bytes - 1];
  }
  return 0;
}
