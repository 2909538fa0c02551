// Lexer for the chat-template Jinja subset. Applies the environment transformers uses
// (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False) and the `-`/`+`
// whitespace-control markers exactly as jinja2's lexer does, so the parser sees the
// final template text.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hearth::engine::jinja {

enum class TokType {
  Text,        // template data, already whitespace-controlled
  VarBegin,    // {{
  VarEnd,      // }}
  BlockBegin,  // {%
  BlockEnd,    // %}
  Name,
  String,  // value already unescaped
  Int,
  Float,
  Op,
  Eof
};

struct Token {
  TokType type;
  std::string text;
  int line;
};

// Throws JinjaError ("line N: ...") on an unclosed tag or a character it cannot lex.
std::vector<Token> lex(std::string_view source);

}  // namespace hearth::engine::jinja
