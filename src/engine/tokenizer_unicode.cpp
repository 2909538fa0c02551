#include "engine/tokenizer_unicode.h"

#include <utf8proc.h>

#include <array>

#include "platform/utf8.h"

namespace hearth::engine::unicode {

namespace {

constexpr uint32_t kReplacement = 0xFFFD;
constexpr uint32_t kNoCpt = 0xFFFFFFFF;  // position outside the current segment

bool is_white_space(uint32_t c) {
  // Unicode White_Space (PropList.txt), the set llama.cpp's tables use.
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

uint8_t category_flag(uint32_t cpt) {
  if (cpt > 0x10FFFF) return kUndefined;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cpt))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return kLetter;
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
      return kMark;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return kNumber;
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return kPunct;
    case UTF8PROC_CATEGORY_SM:
    case UTF8PROC_CATEGORY_SC:
    case UTF8PROC_CATEGORY_SK:
    case UTF8PROC_CATEGORY_SO:
      return kSymbol;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
      return kSeparator;
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
      return kControl;
    default:
      return kUndefined;
  }
}

struct ByteMap {
  std::array<std::string, 256> to_unicode;
  std::array<int16_t, 512> from_unicode;  // images are all below U+0200
  ByteMap() {
    from_unicode.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cpt = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++);
      append_utf8(to_unicode[b], cpt);
      from_unicode[cpt] = static_cast<int16_t>(b);
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

// A view of one segment [ini, end) of the code points; positions past the end read as
// "no code point" (category 0), which no pattern class matches.
struct Segment {
  const std::vector<uint32_t>& cpts;
  size_t ini, end;
  std::vector<size_t>& out;
  size_t prev_end;

  uint32_t cpt(size_t p) const { return p < end ? cpts[p] : kNoCpt; }
  CptInfo info(size_t p) const { return p < end ? cpt_info(cpts[p]) : CptInfo{}; }
  void emit(size_t upto) {
    if (upto > prev_end) out.push_back(upto - prev_end);
    prev_end = upto;
  }
};

bool is_letter(const CptInfo& i) { return i.category == kLetter; }
bool is_number(const CptInfo& i) { return i.category == kNumber; }
// [^\s\p{L}\p{N}] over a real code point
bool is_other(const CptInfo& i) {
  return !i.whitespace && i.category != kLetter && i.category != kNumber && i.category != 0;
}

// Length of 's|'t|'re|'ve|'m|'ll|'d at p (0 if none); case-insensitive when `fold`.
size_t contraction_len(const Segment& s, size_t p, bool fold) {
  if (s.cpt(p) != '\'' || p + 1 >= s.end) return 0;
  auto low = [&](uint32_t c) { return fold ? to_lower(c) : c; };
  const uint32_t c1 = low(s.cpt(p + 1));
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  if (p + 2 >= s.end) return 0;
  const uint32_t c2 = low(s.cpt(p + 2));
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

void split_gpt2(Segment& s) {
  size_t pos = s.ini;
  while (pos < s.end) {
    const uint32_t c = s.cpt(pos);
    if (size_t n = contraction_len(s, pos, false)) {
      pos += n;
      s.emit(pos);
      continue;
    }
    const CptInfo f2 = c == ' ' ? s.info(pos + 1) : s.info(pos);
    if (is_letter(f2) || is_number(f2) ||
        is_other(f2)) {  //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+
      const auto same = is_letter(f2) ? is_letter : is_number(f2) ? is_number : is_other;
      pos += (c == ' ');
      while (same(s.info(pos))) ++pos;
      s.emit(pos);
      continue;
    }
    size_t n_ws = 0;
    while (s.info(pos + n_ws).whitespace) ++n_ws;
    if (n_ws > 1 && s.cpt(pos + n_ws) != kNoCpt) {  // \s+(?!\S): leave the last one
      pos += n_ws - 1;
    } else if (n_ws > 0) {
      pos += n_ws;
    } else {
      ++pos;  // matched by nothing: a piece of its own
    }
    s.emit(pos);
  }
}

void split_llama3(Segment& s, size_t max_digits) {
  size_t pos = s.ini;
  while (pos < s.end) {
    const uint32_t c = s.cpt(pos);
    const CptInfo f = s.info(pos);
    if (size_t n = contraction_len(s, pos, true)) {
      pos += n;
      s.emit(pos);
      continue;
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (!(c == '\r' || c == '\n' || is_number(f)) && (is_letter(f) || is_letter(s.info(pos + 1)))) {
      ++pos;
      while (is_letter(s.info(pos))) ++pos;
      s.emit(pos);
      continue;
    }
    // \p{N}{1,max_digits}
    if (is_number(f)) {
      size_t run_start = pos;
      while (is_number(s.info(pos))) {
        ++pos;
        if (pos - run_start >= max_digits) {
          s.emit(pos);
          run_start = pos;
        }
      }
      s.emit(pos);
      continue;
    }
    //  ?[^\s\p{L}\p{N}]+[\r\n]*  (a lone space at the segment's end also lands here)
    const CptInfo f2 = c == ' ' ? s.info(pos + 1) : f;
    if (!f2.whitespace && !is_letter(f2) && !is_number(f2)) {
      pos += (c == ' ');
      while (is_other(s.info(pos))) ++pos;
      while (s.cpt(pos) == '\r' || s.cpt(pos) == '\n') ++pos;
      s.emit(pos);
      continue;
    }
    size_t n_ws = 0, last_newline_end = 0;
    while (s.info(pos + n_ws).whitespace) {
      const uint32_t w = s.cpt(pos + n_ws);
      if (w == '\r' || w == '\n') last_newline_end = pos + n_ws + 1;
      ++n_ws;
    }
    if (last_newline_end > 0) {  // \s*[\r\n]+
      pos = last_newline_end;
    } else if (n_ws > 1 && s.cpt(pos + n_ws) != kNoCpt) {  // \s+(?!\S)
      pos += n_ws - 1;
    } else if (n_ws > 0) {  // \s+
      pos += n_ws;
    } else {
      ++pos;
    }
    s.emit(pos);
  }
}

// Leftmost-first matching of a pattern without alternation: matched runs and the text
// between them become pieces.
template <typename MatchLen>
void split_matches(Segment& s, MatchLen match_len) {
  size_t pos = s.ini;
  while (pos < s.end) {
    const size_t n = match_len(s, pos);
    if (n == 0) {
      ++pos;
      continue;
    }
    s.emit(pos);
    pos += n;
    s.emit(pos);
  }
  s.emit(s.end);
}

bool is_ascii_digit(uint32_t c) { return c >= '0' && c <= '9'; }

}  // namespace

std::vector<uint32_t> decode_utf8(std::string_view text) {
  std::vector<uint32_t> out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const platform::utf8::Decoded d =
        platform::utf8::decode(text.substr(i), platform::utf8::Form::kLoose);
    if (d.length > 0) {
      out.push_back(d.code_point);
      i += static_cast<size_t>(d.length);
    } else {  // invalid or cut short by the end: one byte becomes U+FFFD
      out.push_back(kReplacement);
      i += 1;
    }
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cpt) {
  if (cpt <= 0x7F) {
    out.push_back(static_cast<char>(cpt));
  } else if (cpt <= 0x7FF) {
    out.push_back(static_cast<char>(0xC0 | (cpt >> 6)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt <= 0xFFFF) {
    out.push_back(static_cast<char>(0xE0 | (cpt >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt <= 0x10FFFF) {
    out.push_back(static_cast<char>(0xF0 | (cpt >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else {
    append_utf8(out, kReplacement);
  }
}

CptInfo cpt_info(uint32_t cpt) {
  static const std::array<CptInfo, 128> ascii = [] {
    std::array<CptInfo, 128> t{};
    for (uint32_t c = 0; c < 128; ++c) t[c] = CptInfo{category_flag(c), is_white_space(c)};
    return t;
  }();
  if (cpt < 128) return ascii[cpt];
  return CptInfo{category_flag(cpt), is_white_space(cpt)};
}

uint32_t to_lower(uint32_t cpt) {
  if (cpt < 0x80) return (cpt >= 'A' && cpt <= 'Z') ? cpt + 32 : cpt;
  if (cpt > 0x10FFFF) return cpt;
  return static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cpt)));
}

const std::string& byte_to_unicode(uint8_t byte) { return byte_map().to_unicode[byte]; }

int unicode_to_byte(uint32_t cpt) { return cpt < 512 ? byte_map().from_unicode[cpt] : -1; }

std::vector<size_t> split(const std::vector<uint32_t>& cpts, const std::vector<size_t>& segments,
                          SplitPass pass) {
  std::vector<size_t> out;
  out.reserve(segments.size() + cpts.size() / 3);
  size_t start = 0;
  for (size_t len : segments) {
    Segment s{cpts, start, start + len, out, start};
    switch (pass) {
      case SplitPass::kGpt2:
        split_gpt2(s);
        break;
      case SplitPass::kLlama3:
        split_llama3(s, 3);
        break;
      case SplitPass::kQwen2:
        split_llama3(s, 1);
        break;
      case SplitPass::kEachNumber:
        split_matches(s, [](const Segment& g, size_t p) -> size_t { return is_number(g.info(p)); });
        break;
      case SplitPass::kNumberRuns:
        split_matches(s, [](const Segment& g, size_t p) -> size_t {
          size_t q = p;
          while (is_number(g.info(q))) ++q;
          return q - p;
        });
        break;
      case SplitPass::kPunctRuns:
        split_matches(s, [](const Segment& g, size_t p) -> size_t {
          auto in_class = [&](size_t q) {
            const uint32_t c = g.cpt(q);
            return g.info(q).category == kPunct || c == '$' || c == '+' || c == '<' || c == '=' ||
                   c == '>' || c == '^' || c == '~' || c == '|';
          };
          size_t q = p;
          while (in_class(q)) ++q;
          return q - p;
        });
        break;
      case SplitPass::kAsciiDigits3:
        split_matches(s, [](const Segment& g, size_t p) -> size_t {
          return is_ascii_digit(g.cpt(p)) && is_ascii_digit(g.cpt(p + 1)) &&
                         is_ascii_digit(g.cpt(p + 2))
                     ? 3
                     : 0;
        });
        break;
    }
    start += len;
  }
  return out;
}

}  // namespace hearth::engine::unicode
