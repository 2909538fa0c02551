#include "engine/jinja_lexer.h"

#include <cctype>

#include "engine/jinja_value.h"

namespace hearth::engine::jinja {
namespace {

constexpr size_t kMaxTokens = 1 << 20;

// Python's str.isspace() on a code point starting at s[k]; returns its byte length or 0.
size_t space_at(std::string_view s, size_t k) {
  unsigned char c = static_cast<unsigned char>(s[k]);
  if (c < 0x80) return is_py_space(c) ? 1 : 0;
  size_t len = (c >= 0xF0) ? 4 : (c >= 0xE0) ? 3 : (c >= 0xC0) ? 2 : 1;
  if (k + len > s.size()) return 0;
  auto cps = decode_utf8(s.substr(k, len));
  return (cps.size() == 1 && is_py_space(cps[0])) ? len : 0;
}

std::string rstrip_ws(std::string_view s) {
  // Walk forward to find the end of the last non-space code point (UTF-8 safe).
  size_t end = 0, k = 0;
  while (k < s.size()) {
    size_t n = space_at(s, k);
    if (n) {
      k += n;
    } else {
      unsigned char c = static_cast<unsigned char>(s[k]);
      size_t len = (c >= 0xF0) ? 4 : (c >= 0xE0) ? 3 : (c >= 0xC0) ? 2 : 1;
      k = std::min(s.size(), k + len);
      end = k;
    }
  }
  return std::string(s.substr(0, end));
}

size_t skip_ws(std::string_view s, size_t k) {
  while (k < s.size()) {
    size_t n = space_at(s, k);
    if (!n) break;
    k += n;
  }
  return k;
}

bool only_spaces(std::string_view s) {
  for (size_t k = 0; k < s.size();) {
    size_t n = space_at(s, k);
    if (!n) return false;
    k += n;
  }
  return true;
}

int count_lines(std::string_view s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

std::string unescape(std::string_view body, int line) {
  std::string out;
  for (size_t k = 0; k < body.size(); ++k) {
    char c = body[k];
    if (c != '\\' || k + 1 >= body.size()) {
      out += c;
      continue;
    }
    char e = body[++k];
    auto hex = [&](size_t digits) -> uint32_t {
      if (k + digits >= body.size())
        fail("line " + std::to_string(line) + ": truncated \\x/\\u escape in string literal");
      uint32_t v = 0;
      for (size_t d = 1; d <= digits; ++d) {
        char h = body[k + d];
        if (!std::isxdigit(static_cast<unsigned char>(h)))
          fail("line " + std::to_string(line) + ": bad \\x/\\u escape in string literal");
        v = v * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h))
                                               ? h - '0'
                                               : (std::tolower(h) - 'a' + 10));
      }
      k += digits;
      return v;
    };
    switch (e) {
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case '\\':
        out += '\\';
        break;
      case '\'':
        out += '\'';
        break;
      case '"':
        out += '"';
        break;
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'v':
        out += '\v';
        break;
      case '\n':
        break;
      case '0':
        out += '\0';
        break;
      case 'x':
        append_utf8(out, hex(2));
        break;
      case 'u':
        append_utf8(out, hex(4));
        break;
      case 'U': {
        uint32_t cp = hex(8);
        if (cp > 0x10FFFF) fail("line " + std::to_string(line) + ": \\U escape out of range");
        append_utf8(out, cp);
        break;
      }
      default:  // Python keeps unknown escapes as written
        out += '\\';
        out += e;
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string src) : s_(std::move(src)) {}

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < s_.size()) {
      size_t start = find_tag(pos);
      if (start == std::string::npos) {
        emit(TokType::Text, s_.substr(pos));
        break;
      }
      std::string text = s_.substr(pos, start - pos);
      char kind = s_[start + 1];  // '{', '%', '#'
      char sign = start + 2 < s_.size() ? s_[start + 2] : '\0';
      if (sign != '-' && sign != '+') sign = '\0';
      if (sign == '-') {
        text = rstrip_ws(text);
      } else if (sign != '+' && kind != '{') {
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if ((l_pos > 0 || line_starting) && only_spaces(std::string_view(text).substr(l_pos)))
          text.resize(l_pos);
      }
      if (!text.empty()) emit(TokType::Text, text);
      line_ += count_lines(s_.substr(pos, start - pos));
      size_t p = start + 2 + (sign ? 1 : 0);
      if (kind == '#') {
        pos = lex_comment(p, line_starting);
      } else if (kind == '%' && is_raw(p)) {
        pos = lex_raw(p, line_starting);
      } else {
        pos = lex_tag(p, kind == '%', line_starting);
      }
    }
    tokens_.push_back({TokType::Eof, "", line_});
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    fail("line " + std::to_string(line_) + ": " + what);
  }

  void emit(TokType t, std::string text) {
    if (tokens_.size() >= kMaxTokens) error("template too large (token limit)");
    tokens_.push_back({t, std::move(text), line_});
  }

  size_t find_tag(size_t pos) const {
    for (size_t k = s_.find('{', pos); k != std::string::npos; k = s_.find('{', k + 1)) {
      if (k + 1 < s_.size() && (s_[k + 1] == '{' || s_[k + 1] == '%' || s_[k + 1] == '#')) return k;
    }
    return std::string::npos;
  }

  // After an end marker: `-` strips all following whitespace, plain strips one newline.
  size_t after_end(size_t k, char sign, bool& line_starting) {
    size_t end = k;
    if (sign == '-')
      end = skip_ws(s_, k);
    else if (sign != '+' && k < s_.size() && s_[k] == '\n')
      end = k + 1;
    line_starting = end > 0 && s_[end - 1] == '\n';
    line_ += count_lines(std::string_view(s_).substr(k, end - k));
    return end;
  }

  size_t lex_comment(size_t p, bool& line_starting) {
    size_t e = s_.find("#}", p);
    if (e == std::string::npos) error("missing end of comment tag");
    char sign = (e > p && (s_[e - 1] == '-' || s_[e - 1] == '+')) ? s_[e - 1] : '\0';
    line_ += count_lines(std::string_view(s_).substr(p, e - p));
    return after_end(e + 2, sign, line_starting);
  }

  bool is_raw(size_t p) const {
    size_t k = skip_ws(s_, p);
    if (s_.compare(k, 3, "raw") != 0) return false;
    k += 3;
    k = skip_ws(s_, k);
    return s_.compare(k, 2, "%}") == 0 || s_.compare(k, 3, "-%}") == 0;
  }

  size_t lex_raw(size_t p, bool& line_starting) {
    size_t k = skip_ws(s_, skip_ws(s_, p) + 3);
    size_t body = s_[k] == '-' ? skip_ws(s_, k + 3) : k + 2;
    line_ += count_lines(std::string_view(s_).substr(p, body - p));
    // Find `{%[-+]? endraw [-+]?%}`.
    for (size_t t = s_.find("{%", body); t != std::string::npos; t = s_.find("{%", t + 1)) {
      size_t q = t + 2;
      char sign = (q < s_.size() && (s_[q] == '-' || s_[q] == '+')) ? s_[q++] : '\0';
      q = skip_ws(s_, q);
      if (s_.compare(q, 6, "endraw") != 0) continue;
      q = skip_ws(s_, q + 6);
      char esign = (q < s_.size() && (s_[q] == '-' || s_[q] == '+')) ? s_[q] : '\0';
      if (s_.compare(q + (esign ? 1 : 0), 2, "%}") != 0) continue;
      std::string text = s_.substr(body, t - body);
      if (sign == '-') {
        text = rstrip_ws(text);
      } else if (sign != '+') {
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if (l_pos > 0 && only_spaces(std::string_view(text).substr(l_pos))) text.resize(l_pos);
      }
      if (!text.empty()) emit(TokType::Text, text);
      line_ += count_lines(std::string_view(s_).substr(body, q - body));
      return after_end(q + (esign ? 1 : 0) + 2, esign, line_starting);
    }
    error("missing end of raw directive");
  }

  size_t lex_tag(size_t p, bool block, bool& line_starting) {
    emit(block ? TokType::BlockBegin : TokType::VarBegin, "");
    std::vector<char> braces;
    const char* end = block ? "%}" : "}}";
    size_t k = p;
    while (true) {
      if (k >= s_.size()) error(block ? "unclosed '{%' tag" : "unclosed '{{' tag");
      if (braces.empty()) {
        if (s_[k] == '-' && s_.compare(k + 1, 2, end) == 0) {
          emit(block ? TokType::BlockEnd : TokType::VarEnd, "");
          return after_end(k + 3, '-', line_starting);
        }
        if (block && s_[k] == '+' && s_.compare(k + 1, 2, end) == 0) {
          emit(TokType::BlockEnd, "");
          return after_end(k + 3, '+', line_starting);
        }
        if (s_.compare(k, 2, end) == 0) {
          emit(block ? TokType::BlockEnd : TokType::VarEnd, "");
          return after_end(k + 2, block ? '\0' : '+', line_starting);
        }
      }
      size_t ws = space_at(s_, k);
      if (ws) {
        if (s_[k] == '\n') ++line_;
        k += ws;
        continue;
      }
      char c = s_[k];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = k;
        while (e < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[e])) || s_[e] == '_'))
          ++e;
        emit(TokType::Name, s_.substr(k, e - k));
        k = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        k = lex_number(k);
      } else if (c == '\'' || c == '"') {
        size_t e = k + 1;
        while (e < s_.size() && s_[e] != c) {
          if (s_[e] == '\\') ++e;
          ++e;
        }
        if (e >= s_.size()) error("unterminated string literal");
        std::string body = s_.substr(k + 1, e - k - 1);
        emit(TokType::String, unescape(body, line_));
        line_ += count_lines(body);
        k = e + 1;
      } else {
        static const char* kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "/",
                                     "*",  "%",  "~",  "<",  ">",  "(",  ")", "[", "]",
                                     "{",  "}",  ",",  ".",  ":",  "|",  "=", ";"};
        const char* op = nullptr;
        for (const char* o : kOps)
          if (s_.compare(k, std::char_traits<char>::length(o), o) == 0) {
            op = o;
            break;
          }
        if (!op) error(std::string("unexpected character '") + c + "' in tag");
        std::string o(op);
        if (o == "(" || o == "[" || o == "{") {
          braces.push_back(o == "(" ? ')' : o == "[" ? ']' : '}');
        } else if (o == ")" || o == "]" || o == "}") {
          if (braces.empty() || braces.back() != o[0]) error("unexpected '" + o + "'");
          braces.pop_back();
        }
        emit(TokType::Op, o);
        k += o.size();
      }
    }
  }

  size_t lex_number(size_t k) {
    size_t e = k;
    auto digits = [&] {
      while (e < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[e])) ||
                               (s_[e] == '_' && e + 1 < s_.size() &&
                                std::isdigit(static_cast<unsigned char>(s_[e + 1])))))
        ++e;
    };
    digits();
    bool is_float = false;
    bool after_dot =
        !tokens_.empty() && tokens_.back().type == TokType::Op && tokens_.back().text == ".";
    if (!after_dot && e + 1 < s_.size() && s_[e] == '.' &&
        std::isdigit(static_cast<unsigned char>(s_[e + 1]))) {
      ++e;
      digits();
      is_float = true;
    }
    if (!after_dot && e < s_.size() && (s_[e] == 'e' || s_[e] == 'E')) {
      size_t m = e + 1;
      if (m < s_.size() && (s_[m] == '+' || s_[m] == '-')) ++m;
      if (m < s_.size() && std::isdigit(static_cast<unsigned char>(s_[m]))) {
        e = m;
        digits();
        is_float = true;
      }
    }
    std::string text;
    for (size_t q = k; q < e; ++q)
      if (s_[q] != '_') text += s_[q];
    emit(is_float ? TokType::Float : TokType::Int, text);
    return e;
  }

  std::string s_;
  std::vector<Token> tokens_;
  int line_ = 1;
};

// jinja2 normalises \r\n and \r to \n and drops one trailing newline.
std::string normalize(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t k = 0; k < source.size(); ++k) {
    if (source[k] == '\r') {
      out += '\n';
      if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
    } else {
      out += source[k];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

std::vector<Token> lex(std::string_view source) { return Lexer(normalize(source)).run(); }

}  // namespace hearth::engine::jinja
