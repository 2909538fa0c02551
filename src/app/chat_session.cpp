#include "app/chat_session.h"

#include <algorithm>

#include "engine/chat_prompt.h"

namespace hearth::app {

Expected<std::unique_ptr<ChatSession>> ChatSession::create(const engine::Model& model, const ChatOptions& options) {
  std::unique_ptr<ChatSession> s(new ChatSession(model, options));
  const std::string source = model.chat_template().value_or(engine::kChatMlTemplate);
  auto t = engine::ChatTemplate::parse(source);
  if (!t) return make_error("{}: the model's chat template cannot be used: {}", model.gguf().name(), t.error());
  s->template_ = std::move(*t);
  auto ctx = engine::Context::create(model, options.context);
  if (!ctx) return Error{ctx.error()};
  s->ctx_ = std::move(*ctx);
  s->set_system(options.system_prompt);
  return s;
}

void ChatSession::set_system(std::string text) {
  options_.system_prompt = std::move(text);
  messages_.erase(std::remove_if(messages_.begin(), messages_.end(),
                                 [](const engine::ChatMessage& m) { return m.role == "system"; }),
                  messages_.end());
  if (!options_.system_prompt.empty()) messages_.insert(messages_.begin(), {"system", options_.system_prompt});
}

void ChatSession::reset() {
  messages_.clear();
  dropped_ = 0;
  set_system(options_.system_prompt);
}

Expected<std::string> ChatSession::render_prompt() const {
  return engine::chat_prompt_text(template_, model_.tokenizer(), messages_);
}

Expected<std::vector<int32_t>> ChatSession::tokenize_prompt() const {
  return engine::chat_prompt_tokens(template_, model_.tokenizer(), messages_);
}

Expected<engine::GenerateResult> ChatSession::send(const std::string& user_text, const engine::TextCallback& on_text,
                                                   const std::atomic<bool>* cancel) {
  messages_.push_back({"user", user_text});
  // Room for an answer: a quarter of the context, at most the requested max tokens.
  const int64_t n_ctx = ctx_->n_ctx();
  int64_t reserve = std::max<int64_t>(1, n_ctx / 4);
  if (options_.generate.max_tokens >= 0) reserve = std::min(reserve, options_.generate.max_tokens);
  Expected<std::vector<int32_t>> prompt = tokenize_prompt();
  if (!prompt) {
    messages_.pop_back();
    return Error{prompt.error()};
  }
  if (static_cast<int64_t>(prompt->size()) + reserve > n_ctx) {
    // First check that the new message fits at all, without losing anything.
    std::vector<engine::ChatMessage> kept;
    kept.swap(messages_);
    if (!options_.system_prompt.empty()) messages_.push_back(kept.front());
    messages_.push_back(kept.back());
    auto alone = tokenize_prompt();
    messages_.swap(kept);
    if (!alone || static_cast<int64_t>(alone->size()) + reserve > n_ctx) {
      messages_.pop_back();
      if (!alone) return Error{alone.error()};
      return make_error("the message is {} tokens, too long for the context of {} (with {} kept for the answer); shorten it or raise --ctx",
                        alone->size(), n_ctx, reserve);
    }
  }
  while (static_cast<int64_t>(prompt->size()) + reserve > n_ctx) {
    // Drop the oldest non-system exchange, keeping the newest user message.
    auto first = std::find_if(messages_.begin(), messages_.end(),
                              [](const engine::ChatMessage& m) { return m.role != "system"; });
    if (first >= messages_.end() - 1) break;  // cannot happen: the message alone fits
    auto last = first + 1;
    if (last != messages_.end() - 1 && last->role == "assistant") ++last;
    dropped_ += last - first;
    messages_.erase(first, last);
    prompt = tokenize_prompt();
    if (!prompt) {
      messages_.pop_back();
      return Error{prompt.error()};
    }
  }
  auto res = engine::generate(*ctx_, *prompt, options_.generate, on_text, cancel);
  if (!res) {
    messages_.pop_back();
    return res;
  }
  messages_.push_back({"assistant", res->text});
  return res;
}

}  // namespace hearth::app
