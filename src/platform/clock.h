// The clocks: wall time for what is recorded (Unix seconds, UTC text), a steady clock for
// durations and deadlines (never set back, so a timeout cannot jump).
//
// Thread safety: all functions may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace hearth::platform {

// Seconds since 1970-01-01 00:00:00 UTC, from the system (wall) clock.
int64_t unix_seconds();
// Microseconds since 1970-01-01 00:00:00 UTC, for timestamps that show a fraction.
int64_t unix_microseconds();
// `unix_seconds` as UTC text in a strftime(3) `format` ("%Y-%m-%dT%H:%M:%SZ"); empty when
// the text would be longer than 31 characters.
std::string utc_text(int64_t unix_seconds, const char* format);

using SteadyClock = std::chrono::steady_clock;
// Seconds from `start` to now on the steady clock.
double seconds_since(SteadyClock::time_point start);
// The steady-clock time `seconds` from now.
SteadyClock::time_point deadline_after(double seconds);

}  // namespace hearth::platform
