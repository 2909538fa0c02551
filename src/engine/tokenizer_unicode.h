// Unicode helpers for the tokenizers: UTF-8 decoding the way llama.cpp does it, code point
// categories, the GPT-2 byte <-> unicode mapping, and the pre-tokenizer splitters.
//
// Thread safety: all functions are pure; the lazily built tables are initialized once
// (function-local statics) and read-only afterwards.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::engine::unicode {

// Decodes UTF-8 like llama.cpp's unicode_cpts_from_utf8 (platform/utf8.h's loose form):
// overlong forms and surrogates decode to their code point; a byte that starts no
// decodable sequence (stray continuation byte, truncated sequence, 0xF8..0xFF) becomes
// U+FFFD and decoding resumes at the next byte. Lead bytes 0xF5..0xF7 (which would decode
// past U+10FFFF) are treated as invalid too, where llama.cpp throws.
std::vector<uint32_t> decode_utf8(std::string_view text);
void append_utf8(std::string& out, uint32_t cpt);  // cpt <= 0x10FFFF (others: U+FFFD)
// Bytes of the UTF-8 sequence that starts with `lead`, from its high nibble (1 for stray
// continuation bytes), as llama.cpp's unicode_len_utf8.
inline size_t utf8_len(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

// Category of a code point as one bit; whitespace (Unicode White_Space) is separate.
enum CptFlag : uint8_t {
  kUndefined = 1 << 0,  // Cn, or past U+10FFFF
  kNumber = 1 << 1,     // N*
  kLetter = 1 << 2,     // L*
  kSeparator = 1 << 3,  // Z*
  kMark = 1 << 4,       // M*
  kPunct = 1 << 5,      // P*
  kSymbol = 1 << 6,     // S*
  kControl = 1 << 7,    // Cc Cf Co Cs
};
struct CptInfo {
  uint8_t category = 0;  // one CptFlag; 0 only for "no code point" (outside a segment)
  bool whitespace = false;
};
CptInfo cpt_info(uint32_t cpt);
uint32_t to_lower(uint32_t cpt);

// GPT-2 byte-level mapping: each byte to one printable code point, as UTF-8.
const std::string& byte_to_unicode(uint8_t byte);
// Inverse on code points; -1 when `cpt` is no image of a byte.
int unicode_to_byte(uint32_t cpt);

// One pre-tokenizer pass over code points. Each pass refines the segmentation left by the
// previous one (segments are lengths in code points, summing to the text's length).
enum class SplitPass {
  kGpt2,          // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
  kLlama3,        // (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
                  // ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  kQwen2,         // as kLlama3 with \p{N} single digits
  kEachNumber,    // \p{N}
  kNumberRuns,    // \p{N}+
  kPunctRuns,     // [\p{P}\$\+<=>\^~\|]+
  kAsciiDigits3,  // [0-9][0-9][0-9]
};
std::vector<size_t> split(const std::vector<uint32_t>& cpts, const std::vector<size_t>& segments,
                          SplitPass pass);

}  // namespace hearth::engine::unicode
