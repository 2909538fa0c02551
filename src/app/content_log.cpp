#include "app/content_log.h"

#include <fmt/format.h>

#include <cstdio>
#include <mutex>
#include <string>

namespace hearth::app {

void log_content(uint64_t request, std::string_view what, std::string_view json_text) {
  static std::mutex mutex;  // one line at a time, whole, from any thread
  const std::string line =
      fmt::format("hearth: [content] request {} {}: {}\n", request, what, json_text);
  const std::lock_guard<std::mutex> lock(mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace hearth::app
