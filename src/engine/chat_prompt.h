// From chat messages to the prompt a model reads: the chat template rendered with the
// tokenizer's BOS/EOS texts and the assistant's generation prompt, then tokenized.
//
// Thread safety: pure functions of their arguments (a ChatTemplate and a Tokenizer are
// immutable).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/chat_template.h"
#include "engine/tokenizer.h"
#include "platform/status.h"

namespace hearth::engine {

// The template's text for `messages`, ending with the generation prompt.
Expected<std::string> chat_prompt_text(const ChatTemplate& tmpl, const Tokenizer& tok,
                                       const std::vector<ChatMessage>& messages);

// That text as tokens (special tokens parsed). A BOS is added when the tokenizer asks for
// one and the text does not begin with the BOS text already (templates that write
// {{ bos_token }} themselves). Errors: "chat template: <the template's error>".
Expected<std::vector<int32_t>> chat_prompt_tokens(const ChatTemplate& tmpl, const Tokenizer& tok,
                                                  const std::vector<ChatMessage>& messages);

}  // namespace hearth::engine
