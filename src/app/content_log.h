// User content in the log, only when the user asked for it (--log-content).
//
// By default Hearth writes no prompt or answer text to any log: not to stderr, not to the
// audit log, not to any file under the data directory (tests/python/test_log_canary.py
// searches them all for a canary phrase). With `hearth serve --log-content` each request's
// prompt and each answer go to stderr, one line each, marked so they cannot be mistaken
// for anything else:
//   hearth: [content] request 7 prompt: [{"role":"user","content":"..."}]
//   hearth: [content] request 7 answer: "..."
// The text is a JSON value, so a newline in it cannot forge another log line.
// Thread safety: log_content may be called from any thread; each call writes one whole line.
#pragma once

#include <cstdint>
#include <string_view>

namespace hearth::app {

// Writes `json_text` (a JSON value) as the `what` of request `request` to stderr.
void log_content(uint64_t request, std::string_view what, std::string_view json_text);

}  // namespace hearth::app
