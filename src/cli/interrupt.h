// Ctrl-C handling for the CLI: while a guard lives, SIGINT sets a flag instead of
// killing the process, so it can stop the current answer and not the program.
#pragma once

#include <atomic>

#include "engine/generator.h"

namespace hearth::cli {

class InterruptGuard {
 public:
  InterruptGuard();
  ~InterruptGuard();
  const std::atomic<bool>& flag() const;
  // Clears the flag; returns whether it was set.
  bool take();
};

// One line of timing to stderr: prompt and answer tokens and tokens/s.
void print_stats(const engine::GenerateResult& r);

}  // namespace hearth::cli
