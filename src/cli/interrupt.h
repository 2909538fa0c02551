// Ctrl-C handling for the CLI: while a guard lives, SIGINT sets a flag instead of
// killing the process, so it can stop the current answer and not the program.
#pragma once

#include <atomic>
#include <string>

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

// Reads one line from standard input for the interactive prompt, without stdio's
// buffering, so that Ctrl-C is seen however it races with the read: a SIGINT that arrives
// before or during the wait makes it return kInterrupted (the guard's flag is cleared).
enum class ReadLine { kLine, kEof, kInterrupted };
ReadLine read_line(InterruptGuard& guard, std::string& line);

// One line of timing to stderr: prompt and answer tokens and tokens/s.
void print_stats(const engine::GenerateResult& r);

}  // namespace hearth::cli
