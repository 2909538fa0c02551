// Chat templates: a small Jinja2 interpreter for the subset that real chat templates
// use (tokenizer.chat_template in GGUF), rendering byte for byte as Python's jinja2.
//
// An unsupported construct is an error at parse or render time, never a wrong prompt.
// Environment as transformers' apply_chat_template: trim_blocks, lstrip_blocks, loop
// controls, raise_exception/strftime_now globals, tojson as json.dumps (no HTML escaping).
// Hostile templates hit step, depth and size limits (jinja_interpreter.h), never hang.
// Thread safety: a parsed ChatTemplate is immutable; render() may run concurrently.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "platform/status.h"

namespace hearth::engine {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

class ChatTemplate {
 public:
  static Expected<ChatTemplate> parse(std::string_view source);

  // Renders with the given variables (e.g. messages, add_generation_prompt, bos_token).
  // Errors (raise_exception in the template, undefined values used in arithmetic, a resource
  // limit hit) come back as "chat template: line N: <message>".
  Expected<std::string> render(const nlohmann::json& context) const;
  // Same, keeping the context's key order: dicts the template prints or passes to tojson
  // (tool schemas) come out in insertion order, as in Python. nlohmann::json sorts keys.
  Expected<std::string> render(const nlohmann::ordered_json& context) const;
  // The usual call: messages + add_generation_prompt + bos/eos token texts.
  Expected<std::string> apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                              std::string_view bos_token, std::string_view eos_token) const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

// The chat template to use for an architecture whose GGUF has no tokenizer.chat_template
// (gemma3: Google's Gemma 3 template), or empty when Hearth knows none for it.
std::string_view default_chat_template(std::string_view arch);
// ChatML, for a model that has no template of its own and no default for its architecture.
extern const char* const kChatMlTemplate;

}  // namespace hearth::engine
