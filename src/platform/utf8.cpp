#include "platform/utf8.h"

namespace hearth::platform::utf8 {

Lead lead(uint8_t b, Form form) {
  Lead l;
  if (b < 0x80) {
    l.length = 1;
  } else if (b >= 0xC2 && b <= 0xDF) {
    l.length = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    l.length = 3;
    if (form == Form::kStrict && b == 0xE0) l.second_min = 0xA0;  // overlong below U+0800
    if (form == Form::kStrict && b == 0xED) l.second_max = 0x9F;  // surrogates
  } else if (b >= 0xF0 && b <= 0xF4) {
    l.length = 4;
    if (form == Form::kStrict && b == 0xF0) l.second_min = 0x90;  // overlong below U+10000
    if (b == 0xF4) l.second_max = 0x8F;  // past U+10FFFF, which no form decodes
  } else if (form == Form::kLoose && (b == 0xC0 || b == 0xC1)) {
    l.length = 2;
  }
  return l;
}

Decoded decode(std::string_view text, Form form) {
  if (text.empty()) return {0, -1};
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const Lead l = lead(p[0], form);
  if (l.length <= 1) return {l.length == 1 ? p[0] : 0u, l.length};
  // The lead byte keeps 7 - length payload bits.
  uint32_t cp = p[0] & (0x7Fu >> l.length);
  for (int k = 1; k < l.length; ++k) {
    if (static_cast<size_t>(k) >= text.size()) return {0, -1};
    const uint8_t c = p[k];
    const bool ok = k == 1 ? (c >= l.second_min && c <= l.second_max) : (c & 0xC0) == 0x80;
    if (!ok) return {0, 0};
    cp = (cp << 6) | (c & 0x3F);
  }
  return {cp, l.length};
}

bool is_valid(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const int len = decode(text.substr(i)).length;
    if (len <= 0) return false;
    i += static_cast<size_t>(len);
  }
  return true;
}

size_t complete_prefix_length(std::string_view text) {
  const size_t n = text.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto b = static_cast<uint8_t>(text[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // a continuation byte: the lead is further back
    const auto need = static_cast<size_t>(lead(b).length);
    return need > back ? n - back : n;
  }
  return n;
}

}  // namespace hearth::platform::utf8
