// StopMatcher: finds stop strings in streamed text without emitting any part of them.
//
// The generator feeds each decoded piece to feed() and streams what it returns. Text is
// released only when it can no longer be the start of a stop string, and never ends inside
// a UTF-8 character:
//   - a suffix of the text so far that is a proper prefix of some stop string is held back
//     until a later piece either completes the stop string or breaks the match;
//   - a trailing incomplete UTF-8 sequence (a lead byte missing some continuation bytes) is
//     held back until it completes. Bytes that can never start a valid sequence are
//     passed through, so malformed input is never held forever.
// When a stop string completes, feed() releases the text before its first byte (the
// earliest match wins when several stop strings occur) and reports stopped; the stop
// string itself and everything after it are dropped, and later feeds return nothing.
// At the end of generation without a stop, flush() releases whatever is held back.
// Matching is byte-wise and case-sensitive; empty stop strings are ignored.
//
// No allocation per piece once the internal buffers have grown to their working size.
// Returned views point into the matcher and stay valid until its next non-const call.
//
// Thread safety: one StopMatcher per generation stream; not shared.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::engine {

class StopMatcher {
 public:
  struct Result {
    std::string_view text;  // safe to emit now (may be empty)
    bool stopped = false;   // a stop string completed; `text` ends right before it
  };

  StopMatcher() = default;
  explicit StopMatcher(std::vector<std::string> stop_strings);

  Result feed(std::string_view piece);
  // End of stream: releases the held-back text (empty after a stop).
  std::string_view flush();
  // Forgets the held-back text and the stopped state; keeps the stop strings.
  void reset();

  bool stopped() const { return stopped_; }
  // Bytes currently held back.
  size_t held_size() const { return held_.size(); }
  const std::vector<std::string>& stop_strings() const { return stops_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;  // text not yet released
  std::string work_;  // held_ + the new piece
  std::string out_;   // what the last call released
  bool stopped_ = false;
};

}  // namespace hearth::engine
