#include "engine/chat_prompt.h"

namespace hearth::engine {

Expected<std::string> chat_prompt_text(const ChatTemplate& tmpl, const Tokenizer& tok,
                                       const std::vector<ChatMessage>& messages) {
  const std::string bos = tok.bos() >= 0 ? std::string(tok.token_text(tok.bos())) : "";
  const std::string eos = tok.eos() >= 0 ? std::string(tok.token_text(tok.eos())) : "";
  return tmpl.apply(messages, true, bos, eos);
}

Expected<std::vector<int32_t>> chat_prompt_tokens(const ChatTemplate& tmpl, const Tokenizer& tok,
                                                  const std::vector<ChatMessage>& messages) {
  auto text = chat_prompt_text(tmpl, tok, messages);
  if (!text) return make_error("chat template: {}", text.error());
  // Templates that write the BOS text themselves must not get a second BOS.
  const bool has_bos_text = tok.bos() >= 0 && text->rfind(tok.token_text(tok.bos()), 0) == 0;
  return tok.encode(*text, tok.add_bos() && !has_bos_text, true);
}

}  // namespace hearth::engine
