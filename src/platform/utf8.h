// UTF-8 decoding and validation: the one place that knows which byte sequences are UTF-8.
//
// Strict form (RFC 3629, Unicode Table 3-7 "well-formed byte sequences"): no overlong
// forms, no surrogates (U+D800..U+DFFF), nothing past U+10FFFF, no lead bytes C0, C1,
// F5..FF. This is what user text must be (prompts, request bodies, streamed answers).
//
// Loose form: overlong forms and surrogates decode to their code point, as llama.cpp's
// tokenizers do (unicode_cpts_from_utf8), so that token ids match theirs on odd input; C0
// and C1 lead 2-byte sequences; still nothing past U+10FFFF, no lead bytes F5..FF.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace hearth::platform::utf8 {

enum class Form { kStrict, kLoose };

// What a lead byte announces.
struct Lead {
  int length = 0;  // bytes of the whole sequence, 1..4; 0: the byte cannot start one
  // The range the second byte must fall in (for length >= 2); later bytes are 80..BF.
  // Strictly, E0, ED, F0 and F4 narrow it, which is what excludes overlongs, surrogates
  // and code points past U+10FFFF without decoding.
  uint8_t second_min = 0x80, second_max = 0xBF;
};
Lead lead(uint8_t b, Form form = Form::kStrict);

struct Decoded {
  uint32_t code_point = 0;  // meaningful only when length > 0
  // Bytes of the sequence at the start of the text, 1..4; 0 when the text does not start
  // with a valid sequence; -1 when everything it has is a valid sequence's beginning, cut
  // short by the end of the text (streaming callers wait for more; an empty text is -1).
  int length = 0;
};
Decoded decode(std::string_view text, Form form = Form::kStrict);

// True when the whole of `text` is strict UTF-8.
bool is_valid(std::string_view text);

// The length of `text` less a trailing lead byte that is followed by fewer continuation
// bytes than it announces, so that a stream never cuts a character in two. Judged by the
// lead byte alone: the held bytes need not be a valid beginning, and other invalid bytes
// pass through (they are the reader's to replace or reject).
size_t complete_prefix_length(std::string_view text);

}  // namespace hearth::platform::utf8
