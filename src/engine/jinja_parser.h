// Parser for the chat-template Jinja subset: token stream -> syntax tree. Constructs
// outside the subset (extends, include, import, block, ...) are errors naming the tag and
// line, never silently ignored.
#pragma once

#include <memory>
#include <string_view>

#include "engine/jinja_ast.h"

namespace hearth::engine::jinja {

// Throws JinjaError ("line N: ...") on a syntax error or an unsupported construct.
std::shared_ptr<const Template> parse_template(std::string_view source);

}  // namespace hearth::engine::jinja
