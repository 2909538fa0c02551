#include "cli/progress.h"

#include <fmt/core.h>
#include <unistd.h>

#include <cstdio>

namespace hearth::cli {
namespace {
bool g_drawn = false;
}

app::Progress progress_bar(std::string label) {
  if (!isatty(STDERR_FILENO)) return nullptr;
  return [label = std::move(label)](uint64_t done, uint64_t total) {
    const double frac = total ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
    const int width = 30, filled = static_cast<int>(frac * width + 0.5);
    fmt::print(stderr, "\r{} [{}{}] {:3.0f}%  {:.0f}/{:.0f} MB", label, std::string(filled, '#'),
               std::string(width - filled, '.'), frac * 100, done / 1e6, total / 1e6);
    std::fflush(stderr);
    g_drawn = true;
  };
}

void finish_progress() {
  if (g_drawn) fmt::print(stderr, "\n");
  g_drawn = false;
}

}  // namespace hearth::cli
