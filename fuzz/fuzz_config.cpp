// libFuzzer target: any bytes as the config file (app/config.h). Must never
// crash, hang or leak; every rejection is a one-line message naming the file.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "app/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1u << 20))
    return 0;
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  const auto c = hearth::app::parse_config(text, "fuzz.toml");
  if (c) {
    // What the commands rely on.
    if (c->threads && (*c->threads < 1 || *c->threads > 1024))
      std::abort();
    if (c->ctx && *c->ctx < 1)
      std::abort();
    if (c->serve.port && (*c->serve.port < 0 || *c->serve.port > 65535))
      std::abort();
    if (c->serve.parallel &&
        (*c->serve.parallel < 1 || *c->serve.parallel > 64))
      std::abort();
    if (c->default_model && c->default_model->empty())
      std::abort();
  } else if (c.error().rfind("fuzz.toml:", 0) != 0 ||
             c.error().find('\n') != std::string::npos) {
    std::abort();
  }
  return 0;
}
